package webhook

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDelivery posts b.N signed requests over 256 keys to a loopback
// receiver that reads each body and answers 204, and reports delivered
// webhooks per second and the connections it took (keep-alive: about
// Workers, not b.N).
func BenchmarkDelivery(b *testing.B) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s := New(Options{QueueSize: b.N}, testLogger(b))
	defer s.Close()
	params := url.Values{
		"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "MessageStatus": {"delivered"},
		"From": {"+14155550100"}, "To": {"+14155550199"}, "AccountSid": {"AC0123456789abcdef"},
	}
	keys := make([]string, 256)
	for i := range keys {
		keys[i] = fmt.Sprint("SM", i)
	}

	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if !s.Post(srv.URL+"/status", params, keys[i%len(keys)], "token") {
			b.Fatal("Post dropped")
		}
	}
	for s.Stats().Pending > 0 {
		time.Sleep(100 * time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "hooks/s")
	b.ReportMetric(float64(conns.Load()), "conns") // keep-alive: about Workers, not b.N
	if st := s.Stats(); st.Delivered != uint64(b.N) {
		b.Fatalf("stats %+v, want all %d delivered", st, b.N)
	}
}
