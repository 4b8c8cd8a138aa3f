package messaging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"sbc/control/store"
)

// carrier answers each message with code after delay, and records what it
// got, when, and how many were in flight at most.
type carrier struct {
	mu       sync.Mutex
	delay    time.Duration
	code     func(m *store.Message) int
	got      []string // SIDs, in arrival order
	at       []time.Time
	inFlight map[string]int // per recipient
	overlap  bool           // two to one recipient at once
}

func (c *carrier) SendSMS(ctx context.Context, m *store.Message) (int, string, error) {
	c.mu.Lock()
	c.got, c.at = append(c.got, m.SID), append(c.at, time.Now())
	c.inFlight[m.To]++
	c.overlap = c.overlap || c.inFlight[m.To] > 1
	c.mu.Unlock()
	time.Sleep(c.delay)
	c.mu.Lock()
	c.inFlight[m.To]--
	c.mu.Unlock()
	if c.code != nil {
		return c.code(m), "Forbidden", nil
	}
	return 200, "OK", nil
}

// rows records the statuses each message's row went through.
type rows struct {
	mu sync.Mutex
	st map[string][]string
}

func (r *rows) SetMessageStatus(_ context.Context, m *store.Message) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st[m.SID] = append(r.st[m.SID], m.Status)
	return true, nil
}

func newQueue(c *carrier, rate float64) (*Queue, *rows) {
	r := &rows{st: map[string][]string{}}
	q := NewQueue(r, c, func(string) float64 { return rate }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return q, r
}

func messages(account string, n int, to func(i int) string) []*store.Message {
	var out []*store.Message
	for i := range n {
		out = append(out, &store.Message{SID: fmt.Sprintf("SM%02d", i), AccountSID: account, To: to(i), Status: string(Queued)})
	}
	return out
}

func waitSent(t *testing.T, c *carrier, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		c.mu.Lock()
		got := len(c.got)
		c.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("%d of %d sent", len(c.got), n)
}

// At 5 a second, 12 messages take their time: 5 at once, then one each
// 200 ms; none is dropped.
func TestQueueRate(t *testing.T) {
	c := &carrier{inFlight: map[string]int{}}
	q, r := newQueue(c, 5)
	start := time.Now()
	q.Start(nil)
	defer q.Stop()
	for _, m := range messages("AC1", 12, func(i int) string { return "+1415555" + fmt.Sprint(1000+i) }) {
		q.Add(m)
	}
	waitSent(t, c, 12)
	for i := range c.got {
		// The bucket: at most 5 + 5/s × elapsed by then (10 ms slack).
		if allowed := 5 + 5*(c.at[i].Sub(start)+10*time.Millisecond).Seconds(); float64(i+1) > allowed {
			t.Fatalf("message %d sent at %v: over the rate", i+1, c.at[i].Sub(start))
		}
	}
	if d := c.at[11].Sub(start); d < 1300*time.Millisecond {
		t.Fatalf("12 messages at 5/s in %v; want ≥ 1.4 s", d)
	}
	time.Sleep(50 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	for sid, st := range r.st {
		if fmt.Sprint(st) != "[sending sent]" {
			t.Errorf("%s went %v; want sending, sent", sid, st)
		}
	}
}

// The rate counts segments: at 5 a second, three texts of 4 segments
// take about 1.4 s (5 at once, then 5 a second), not an instant.
func TestQueueRateInSegments(t *testing.T) {
	c := &carrier{inFlight: map[string]int{}}
	q, _ := newQueue(c, 5)
	start := time.Now()
	q.Start(nil)
	defer q.Stop()
	for _, m := range messages("AC1", 3, func(i int) string { return "+1415555" + fmt.Sprint(1000+i) }) {
		m.Segments = 4
		q.Add(m)
	}
	waitSent(t, c, 3)
	// The bucket holds 5: the first at once, the next two 0.6 and 1.4 s
	// later (4 tokens each, at 5 a second).
	for i, want := range []time.Duration{0, 600 * time.Millisecond, 1400 * time.Millisecond} {
		if d := c.at[i].Sub(start); d < want-50*time.Millisecond || d > want+300*time.Millisecond {
			t.Errorf("text %d after %v; want about %v (12 segments at 5/s with a burst of 5)", i+1, d, want)
		}
	}
}

// With the limit lifted, messages to different recipients go at once, but
// one recipient's one after another, in order.
func TestQueueOneRecipientAtATime(t *testing.T) {
	c := &carrier{inFlight: map[string]int{}, delay: 20 * time.Millisecond}
	q, _ := newQueue(c, 0)
	q.Start(nil)
	defer q.Stop()
	start := time.Now()
	for _, m := range messages("AC1", 20, func(i int) string { return fmt.Sprintf("+1415555%04d", i%4) }) {
		q.Add(m)
	}
	waitSent(t, c, 20)
	if c.overlap {
		t.Fatal("two messages to one recipient in flight at once")
	}
	// Five rounds of four recipients at 20 ms each: ~100 ms, not 400.
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("20 messages to 4 recipients took %v", d)
	}
	last := map[string]string{}
	for _, sid := range c.got {
		var i int
		fmt.Sscanf(sid, "SM%02d", &i)
		to := fmt.Sprintf("+1415555%04d", i%4)
		if last[to] > sid {
			t.Fatalf("%s after %s to %s", sid, last[to], to)
		}
		last[to] = sid
	}
}

// A carrier's refusal fails the message, saying so; pending messages of a
// previous run go too.
func TestQueueRefusedAndPending(t *testing.T) {
	c := &carrier{inFlight: map[string]int{}, code: func(m *store.Message) int {
		if m.SID == "SM01" {
			return 403
		}
		return 202
	}}
	q, r := newQueue(c, 0)
	q.Start([]store.Message{{SID: "SM00", AccountSID: "AC1", To: "+14155550000", Status: string(Sending)}})
	defer q.Stop()
	q.Add(&store.Message{SID: "SM01", AccountSID: "AC1", To: "+14155550001", Status: string(Queued)})
	waitSent(t, c, 2)
	time.Sleep(50 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	if fmt.Sprint(r.st["SM00"]) != "[sending sent]" || fmt.Sprint(r.st["SM01"]) != "[sending failed]" {
		t.Fatalf("got %v, rows %v", c.got, r.st)
	}
}

// A message the check refuses fails with its reason, never reaching the
// carrier; the others go.
func TestQueueCheck(t *testing.T) {
	c := &carrier{inFlight: map[string]int{}}
	q, r := newQueue(c, 0)
	q.SetCheck(func(_ context.Context, m *store.Message) (string, int) {
		if m.To == "+14155551001" {
			return "Failed - Recipient Opted Out (STOP)", ErrOptedOut
		}
		return "", 0
	})
	q.Start(nil)
	defer q.Stop()
	for _, m := range messages("AC1", 3, func(i int) string { return "+1415555" + fmt.Sprint(1000+i) }) {
		q.Add(m)
	}
	waitSent(t, c, 2)
	time.Sleep(50 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	if got := fmt.Sprint(r.st["SM01"]); got != "[failed]" {
		t.Fatalf("refused message went %s; want failed", got)
	}
	for _, sid := range c.got {
		if sid == "SM01" {
			t.Fatal("the refused message reached the carrier")
		}
	}
}
