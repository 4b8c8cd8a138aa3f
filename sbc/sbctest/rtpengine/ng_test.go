//go:build linux

package rtpengine

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// noLeaks checks, after the test's cleanups, that it left no goroutine.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// fakeNG is an ng listener on loopback that records each request and
// answers it with reply(request); a nil reply answers nothing.
type fakeNG struct {
	conn  *net.UDPConn
	reply func(req Dict) Dict
	mu    sync.Mutex
	got   []string // raw requests, cookie and all
	wg    sync.WaitGroup
}

func newFakeNG(t *testing.T, reply func(Dict) Dict) *fakeNG {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNG{conn: conn, reply: reply}
	f.wg.Go(func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			f.mu.Lock()
			f.got = append(f.got, string(buf[:n]))
			f.mu.Unlock()
			cookie, req, err := parseMessage(buf[:n])
			if err != nil {
				t.Errorf("fake ng: %v", err)
				continue
			}
			if rep := f.reply(req); rep != nil {
				msg, err := appendBencode([]byte(cookie+" "), rep)
				if err != nil {
					t.Errorf("fake ng: %v", err)
					continue
				}
				conn.WriteToUDPAddrPort(msg, from)
			}
		}
	})
	t.Cleanup(func() { conn.Close(); f.wg.Wait() })
	return f
}

func (f *fakeNG) addr() netip.AddrPort { return f.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (f *fakeNG) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func dial(t *testing.T, f *fakeNG) *Client {
	t.Helper()
	c, err := Dial(f.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestNGRequests checks each command's request on the wire and what the
// client makes of the reply.
func TestNGRequests(t *testing.T) {
	noLeaks(t)
	const offerSDP, answerSDP = "v=0\r\nm=audio 4000 RTP/AVP 8\r\n", "v=0\r\nm=audio 5000 RTP/AVP 8\r\n"
	f := newFakeNG(t, func(req Dict) Dict {
		switch req["command"] {
		case "ping":
			return Dict{"result": "pong"}
		case "offer", "answer":
			return Dict{"result": "ok", "sdp": "rewritten " + req["sdp"].(string)}
		case "delete":
			return Dict{"result": "error", "error-reason": "Unknown call-ID"}
		}
		return Dict{"result": "error", "error-reason": "Unrecognized command"}
	})
	c := dial(t, f)
	ctx := t.Context()
	dlg := Dialog{CallID: "call-1@127.0.0.10", FromTag: "ft", ToTag: "tt"}

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	got, err := c.Offer(ctx, Dialog{CallID: dlg.CallID, FromTag: dlg.FromTag}, []byte(offerSDP))
	if err != nil || string(got) != "rewritten "+offerSDP {
		t.Errorf("offer = %q, %v", got, err)
	}
	if got, err = c.Answer(ctx, dlg, []byte(answerSDP)); err != nil || string(got) != "rewritten "+answerSDP {
		t.Errorf("answer = %q, %v", got, err)
	}
	err = c.Delete(ctx, dlg)
	var ngErr *Error
	if !errors.As(err, &ngErr) || ngErr.Command != "delete" || ngErr.Reason != "Unknown call-ID" {
		t.Errorf("delete: error %v; want rtpengine's error reply", err)
	}

	// The dictionaries as sent: keys sorted, after "<cookie> ".
	want := []string{
		"d7:command4:pinge",
		"d3:ICE6:remove7:call-id17:call-1@127.0.0.107:command5:offer8:from-tag2:ft7:replacel6:origin18:session-connectione3:sdp" + "29:" + offerSDP + "e",
		"d3:ICE6:remove7:call-id17:call-1@127.0.0.107:command6:answer8:from-tag2:ft7:replacel6:origin18:session-connectione3:sdp" + "29:" + answerSDP + "6:to-tag2:tte",
		"d7:call-id17:call-1@127.0.0.107:command6:delete5:flagsl5:fatale8:from-tag2:ft6:to-tag2:tte",
	}
	reqs := f.requests()
	cookies := map[string]bool{}
	for i, r := range reqs {
		cookie, body, ok := strings.Cut(r, " ")
		if !ok || cookie == "" || cookies[cookie] {
			t.Errorf("request %d: cookie %q, empty or reused", i, cookie)
		}
		cookies[cookie] = true
		if i < len(want) && body != want[i] {
			t.Errorf("request %d:\n got %q\nwant %q", i, body, want[i])
		}
	}
	if len(reqs) != len(want) {
		t.Errorf("%d requests sent; want %d", len(reqs), len(want))
	}
}

// TestNGRetransmits: a lost request is sent again with the same cookie, and
// a reply that never comes ends with the context.
func TestNGRetransmits(t *testing.T) {
	noLeaks(t)
	var mu sync.Mutex
	seen := 0
	f := newFakeNG(t, func(Dict) Dict {
		mu.Lock()
		defer mu.Unlock()
		if seen++; seen == 1 {
			return nil // the first datagram is "lost"
		}
		return Dict{"result": "pong"}
	})
	c := dial(t, f)
	c.resend = 20 * time.Millisecond
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	reqs := f.requests()
	if len(reqs) != 2 || reqs[0] != reqs[1] {
		t.Errorf("requests %q; want the same datagram twice", reqs)
	}

	silent := newFakeNG(t, func(Dict) Dict { return nil })
	c = dial(t, silent)
	c.resend = 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "ng ping: no reply") {
		t.Errorf("ping of a silent listener: %v; want no reply by the deadline", err)
	}
}

// TestNGConcurrent: replies, in whatever order, reach their own requests.
func TestNGConcurrent(t *testing.T) {
	noLeaks(t)
	f := newFakeNG(t, func(req Dict) Dict { return Dict{"result": "ok", "sdp": req["call-id"]} })
	c := dial(t, f)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			id := strings.Repeat("x", i)
			got, err := c.Offer(t.Context(), Dialog{CallID: id, FromTag: "f"}, nil)
			if err != nil || string(got) != id {
				t.Errorf("offer %d = %q, %v", i, got, err)
			}
		})
	}
	wg.Wait()
}

// TestNGClose: a request waiting when the client closes fails at once.
func TestNGClose(t *testing.T) {
	noLeaks(t)
	f := newFakeNG(t, func(Dict) Dict { return nil })
	c, err := Dial(f.addr())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- c.Ping(t.Context()) }()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("ping: %v; want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ping still waiting after Close")
	}
	if err := c.Ping(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("ping after Close: %v; want ErrClosed", err)
	}
}

// TestParseStatistics reads a real reply of rtpengine 10.5 (Debian 12)
// with one call up that relayed 10 packets each way.
func TestParseStatistics(t *testing.T) {
	b, err := os.ReadFile("testdata/statistics-10.5.ng")
	if err != nil {
		t.Fatal(err)
	}
	_, rep, err := parseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStatistics(rep)
	if err != nil {
		t.Fatal(err)
	}
	want := Statistics{Packets: 20, Bytes: 20 * 172, Sessions: 1,
		Ended: map[string]uint64{"delete": 0, "timeout": 0, "silent-timeout": 0, "final-timeout": 0, "offer-timeout": 0, "forced": 0},
		Ports: []PortUsage{{Name: "default", Address: "127.0.0.3", Free: 96, Used: 4, Total: 100}}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("parseStatistics =\n%+v\nwant\n%+v", st, want)
	}

	delete(rep["statistics"].(Dict)["totalstatistics"].(Dict), "relayedpackets")
	if _, err := parseStatistics(rep); !errors.Is(err, ErrNoCounters) || !strings.Contains(err.Error(), "relayedpackets") {
		t.Errorf("without relayedpackets: %v; want ErrNoCounters naming it", err)
	}
}
