package control

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sbc/control/messaging"
	"sbc/control/store"
)

// instantCarrier takes every message at once (200).
type instantCarrier struct{ n atomic.Int64 }

func (c *instantCarrier) SendSMS(ctx context.Context, m *store.Message) (int, string, error) {
	c.n.Add(1)
	return 200, "OK", nil
}

// BenchmarkSMSQueue: messages accepted (SendMessage: checks, row) and
// sent through the queue to a carrier that answers at once, the
// account's rate lifted: what the store's writes allow.
func BenchmarkSMSQueue(b *testing.B) {
	p, _ := testPlane(b, Config{})
	p.now = time.Now
	ctx := context.Background()
	a := mustAccount(b, p, "bulk", AccountSpec{SMSPerSecond: ptr(10000)})
	sms := true
	num := "+14155550100"
	if _, err := p.CreateNumber(ctx, "cli", a.SID, NumberSpec{PhoneNumber: &num, SMS: &sms}); err != nil {
		b.Fatal(err)
	}
	carrier := &instantCarrier{}
	q := messaging.NewQueue(p, carrier, p.SMSRate, slog.New(slog.NewTextHandler(io.Discard, nil)))
	q.Start(nil)
	defer q.Stop()
	p.SetMessageQueue(q)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := b.N/32 + 1
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := p.SendMessage(ctx, a.SID, num, fmt.Sprintf("+1415666%02d%02d", w, i%100), "hello", ""); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for carrier.n.Load() < int64(32*per) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(32*per)/time.Since(start).Seconds(), "msgs/s")
}
