package webhook

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// newClient is the HTTP client of a Sender: no proxy (a proxy would dial on
// our behalf and bypass the address guard), no redirects (a 3xx could point
// a signed request anywhere), idle connections kept per host for as many
// workers as may post to one receiver.
func newClient(o Options) *http.Client {
	d := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second, Control: guard(o.Allowed)}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: o.Timeout,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4 * o.Workers,
		MaxIdleConnsPerHost: o.Workers,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// guard is a net.Dialer Control refusing addresses allowed refuses. It runs
// after name resolution, on the very address about to be connected, so a
// name resolving to a private address is refused as well (SSRF).
func guard(allowed func(netip.Addr) bool) func(network, address string, c syscall.RawConn) error {
	if allowed == nil {
		return nil
	}
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: parse %q: %w", errRefused, address, err)
		}
		if a := ap.Addr().Unmap(); !allowed(a) {
			return fmt.Errorf("%w: %s", errRefused, a)
		}
		return nil
	}
}
