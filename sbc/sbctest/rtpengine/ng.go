//go:build linux

package rtpengine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Client speaks rtpengine's ng control protocol over UDP
// (docs/ng_control_protocol.md in rtpengine): a request is one datagram
// "<cookie> <bencoded dict>" with a "command" key, the reply "<cookie>
// <bencoded dict>" with a "result" key. It is safe for concurrent use:
// every request has its own cookie and one reader goroutine hands each reply
// to whoever waits for it. Close ends that goroutine.
type Client struct {
	conn   *net.UDPConn
	prefix string        // cookie prefix, unique per client
	resend time.Duration // retransmission interval
	seq    atomic.Uint64

	mu      sync.Mutex
	waiting map[string]chan Dict
	closed  bool
	read    sync.WaitGroup
}

// resendInterval is how often an unanswered request is sent again, with the
// same cookie: rtpengine keeps its replies by cookie and answers a
// retransmission with the first reply, never running a command twice. It
// is the default of Kamailio's rtpengine module (rtpengine_tout_ms).
const resendInterval = time.Second

// maxReply is the largest datagram the client reads; a query or delete
// reply of a one-stream call is a few KiB.
const maxReply = 65535

// Dial returns a client of the ng listener at addr.
func Dial(addr netip.AddrPort) (*Client, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("dial ng %v: %w", addr, err)
	}
	var r [4]byte
	rand.Read(r[:])
	c := &Client{conn: conn, prefix: hex.EncodeToString(r[:]), resend: resendInterval, waiting: map[string]chan Dict{}}
	c.read.Go(c.readLoop)
	return c, nil
}

// Close stops the client; requests waiting fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	err := c.conn.Close()
	c.read.Wait()
	return err
}

// readLoop hands each reply to the request with its cookie. Replies nobody
// waits for (a retransmission answered twice, a request given up) and
// datagrams that do not parse are dropped.
func (c *Client) readLoop() {
	buf := make([]byte, maxReply)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				c.mu.Lock()
				for cookie, ch := range c.waiting {
					close(ch)
					delete(c.waiting, cookie)
				}
				c.mu.Unlock()
				return
			}
			continue // ECONNREFUSED from an earlier send: nobody listens yet
		}
		cookie, d, err := parseMessage(buf[:n])
		if err != nil {
			continue
		}
		c.mu.Lock()
		ch := c.waiting[cookie]
		delete(c.waiting, cookie)
		c.mu.Unlock()
		if ch != nil {
			ch <- d // buffered: never blocks
		}
	}
}

// Do sends req and returns the reply, resending until ctx ends. A reply
// with "result": "error" is an *Error.
func (c *Client) Do(ctx context.Context, req Dict) (Dict, error) {
	cmd, _ := req["command"].(string)
	cookie := c.prefix + "_" + strconv.FormatUint(c.seq.Add(1), 10)
	msg, err := appendBencode(append([]byte(cookie), ' '), req)
	if err != nil {
		return nil, fmt.Errorf("ng %s: %w", cmd, err)
	}
	ch := make(chan Dict, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("ng %s: %w", cmd, ErrClosed)
	}
	c.waiting[cookie] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, cookie)
		c.mu.Unlock()
	}()

	t := time.NewTicker(c.resend)
	defer t.Stop()
	for {
		// A send error (ECONNREFUSED: nothing listening yet) is retried
		// like a lost datagram.
		c.conn.Write(msg)
		select {
		case rep, ok := <-ch:
			if !ok {
				return nil, fmt.Errorf("ng %s: %w", cmd, ErrClosed)
			}
			if res, _ := rep["result"].(string); res == "error" {
				reason, _ := rep["error-reason"].(string)
				return nil, &Error{Command: cmd, Reason: reason}
			}
			return rep, nil
		case <-t.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("ng %s: no reply: %w", cmd, context.Cause(ctx))
		}
	}
}

// parseMessage splits "<cookie> <bencoded dict>".
func parseMessage(b []byte) (string, Dict, error) {
	for i, c := range b {
		if c != ' ' {
			continue
		}
		v, err := decodeBencode(b[i+1:])
		if err != nil {
			return "", nil, err
		}
		d, ok := v.(Dict)
		if !ok {
			return "", nil, fmt.Errorf("ng message: %T, want a dictionary", v)
		}
		return string(b[:i]), d, nil
	}
	return "", nil, fmt.Errorf("ng message: no space after the cookie")
}

// Ping checks that rtpengine answers.
func (c *Client) Ping(ctx context.Context) error {
	rep, err := c.Do(ctx, Dict{"command": "ping"})
	if err != nil {
		return err
	}
	if res, _ := rep["result"].(string); res != "pong" {
		return fmt.Errorf("ng ping: result %q, want pong", res)
	}
	return nil
}

// Dialog names a call to rtpengine as SIP does: its Call-ID, the From tag
// and, once answered, the To tag.
type Dialog struct {
	CallID, FromTag, ToTag string
}

// offerFlags are what Kamailio's rtpengine_offer("replace-origin
// replace-session-connection ICE=remove") sends: rtpengine's address
// replaces the o= and session c= lines, and no ICE candidates are kept.
func offerFlags(d Dict) Dict {
	d["replace"] = []string{"origin", "session-connection"}
	d["ICE"] = "remove"
	return d
}

// Offer passes the caller's SDP offer through rtpengine and returns the
// offer to send on, with rtpengine's media address in it.
func (c *Client) Offer(ctx context.Context, dlg Dialog, sdp []byte) ([]byte, error) {
	return c.sdp(ctx, offerFlags(Dict{"command": "offer", "call-id": dlg.CallID, "from-tag": dlg.FromTag, "sdp": sdp}))
}

// OfferWith is Offer with more ng flags (e.g. "transport-protocol").
func (c *Client) OfferWith(ctx context.Context, dlg Dialog, sdp []byte, flags Dict) ([]byte, error) {
	req := offerFlags(Dict{"command": "offer", "call-id": dlg.CallID, "from-tag": dlg.FromTag, "sdp": sdp})
	for k, v := range flags {
		req[k] = v
	}
	return c.sdp(ctx, req)
}

// Answer passes the callee's SDP answer through rtpengine and returns the
// answer to send on.
func (c *Client) Answer(ctx context.Context, dlg Dialog, sdp []byte) ([]byte, error) {
	return c.sdp(ctx, offerFlags(Dict{"command": "answer", "call-id": dlg.CallID, "from-tag": dlg.FromTag,
		"to-tag": dlg.ToTag, "sdp": sdp}))
}

func (c *Client) sdp(ctx context.Context, req Dict) ([]byte, error) {
	rep, err := c.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	s, ok := rep["sdp"].(string)
	if !ok {
		return nil, fmt.Errorf("ng %s: reply without sdp", req["command"])
	}
	return []byte(s), nil
}

// Delete ends the call. Unlike Kamailio's default, a call rtpengine does
// not know is an error ("fatal").
func (c *Client) Delete(ctx context.Context, dlg Dialog) error {
	req := Dict{"command": "delete", "call-id": dlg.CallID, "from-tag": dlg.FromTag, "flags": []string{"fatal"}}
	if dlg.ToTag != "" {
		req["to-tag"] = dlg.ToTag
	}
	_, err := c.Do(ctx, req)
	return err
}
