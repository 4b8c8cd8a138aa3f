package media

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Relay owns the port range and every live Session. Safe for concurrent use.
type Relay struct {
	bindIP   netip.Addr
	publicIP netip.Addr
	strict   bool
	log      *slog.Logger
	ports    *portAllocator

	mu       sync.Mutex // guards sessions and closed
	sessions map[*Session]struct{}
	closed   bool
}

// NewRelay makes a Relay from a defaulted Config. It validates cfg again
// (cheap, and NewRelay must not run on a bad one) but binds nothing yet:
// sockets are bound per stream. A nil log discards.
func NewRelay(cfg Config, log *slog.Logger) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new media relay: %w", err)
	}
	bind, _ := parseIP(cfg.BindIP) // valid: checked above
	public := bind
	if cfg.PublicIP != "" {
		public, _ = parseIP(cfg.PublicIP)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{
		bindIP:   bind,
		publicIP: public,
		strict:   cfg.Latching == LatchingStrict,
		log:      log,
		ports:    newPortAllocator(cfg.PortMin, cfg.PortMax),
		sessions: make(map[*Session]struct{}),
	}, nil
}

// PublicIP is the address to write into SDP.
func (r *Relay) PublicIP() netip.Addr { return r.publicIP }

// FreePairs is the number of port pairs currently free.
func (r *Relay) FreePairs() int { return r.ports.freePairs() }

// TotalPairs is the number of port pairs in the range. Each stream takes two.
func (r *Relay) TotalPairs() int { return r.ports.totalPairs() }

// NewSession starts the media of call id (used in logs). After Close it
// returns a closed session, whose AddStream fails with ErrClosed.
func (r *Relay) NewSession(id string) *Session {
	s := &Session{id: id, relay: r, log: r.log.With("call_id", id), created: time.Now()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		s.closed = true
		return s
	}
	r.sessions[s] = struct{}{}
	return s
}

// Close closes every session and waits for their goroutines.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	open := make([]*Session, 0, len(r.sessions))
	for s := range r.sessions {
		open = append(open, s)
	}
	r.mu.Unlock()
	for _, s := range open {
		s.Close()
	}
	return nil
}

func (r *Relay) forget(s *Session) {
	r.mu.Lock()
	delete(r.sessions, s)
	r.mu.Unlock()
}

// bindPair allocates a port pair and binds it. A pair held by another
// process is returned to the back of the queue and the next one is tried,
// at most once per free pair.
func (r *Relay) bindPair() (port int, rtp, rtcp *socket, err error) {
	var busy error
	for tries := r.ports.freePairs(); tries > 0; tries-- {
		port, ok := r.ports.alloc()
		if !ok {
			break
		}
		rtp, rtcp, err := listenPair(r.bindIP, port)
		if err == nil {
			return port, rtp, rtcp, nil
		}
		r.ports.free(port)
		if !isAddrInUse(err) {
			return 0, nil, nil, fmt.Errorf("bind media ports %d-%d: %w", port, port+1, err)
		}
		r.log.Debug("media port pair busy, skipping", "port", port, "err", err)
		busy = err
	}
	if busy != nil {
		return 0, nil, nil, fmt.Errorf("%w: the free pairs are held by other processes (last: %v)", ErrNoPorts, busy)
	}
	return 0, nil, nil, ErrNoPorts
}
