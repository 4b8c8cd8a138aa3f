package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"sbc/bpf"
)

// Relay owns the port range and every live Session. Safe for concurrent use.
type Relay struct {
	bindIP   netip.Addr
	publicIP netip.Addr
	strict   bool
	timeout  time.Duration // media.timeout
	log      *slog.Logger
	ports    *portAllocator
	tr       transport
	epoch    time.Time // zero of clock
	// unreserve gives back the ephemeral ports NewRelay reserved; nil if
	// none or given back. Guarded by mu.
	unreserve func() error
	// pinholes, when set, opens a port in the kernel's filter while a
	// stream holds it.
	pinholes Pinholes
	offloadState
	// inherited are the kernel's entries a previous run left, by port,
	// until a stream takes them (adopt.go); guarded by mu.
	inherited map[uint16]bpf.Pinhole

	mu       sync.Mutex // guards sessions and closed
	sessions map[*Session]struct{}
	closed   bool

	closeOnce sync.Once
}

// Pinholes is a packet filter in front of the relay that drops UDP to
// media ports of no call (package firewall's kernel fast path). The relay
// opens a port pair's pinholes when a stream takes the pair, at call
// set-up, and shuts them before it lets go of the pair.
type Pinholes interface {
	Open(port uint16) error
	Shut(port uint16) error
}

// SetPinholes puts p in front of the relay. Call it before the first
// session: ports of streams opened earlier would stay closed.
func (r *Relay) SetPinholes(p Pinholes) { r.pinholes = p }

// transport opens and shuts the ports of a leg: one socket per port
// (socket.go) or steered to a few workers (steered.go).
type transport interface {
	// open allocates the leg's port pair (or takes port, the RTP port of
	// a pair already allocated, when not 0) and starts receiving on it;
	// goroutines it starts for the leg join wg.
	open(st *Stream, l *leg, wg *sync.WaitGroup, port int) error
	// shut stops receiving on the leg's ports; what runs for them ends soon
	// after (wg).
	shut(l *leg)
	// quiesce returns once nothing runs any more for legs already shut.
	quiesce()
	// remoteChanged tells that the signalled address of l's peer is now rtp.
	remoteChanged(l *leg, rtp netip.AddrPort)
	// close ends what the transport runs itself, once every session is closed.
	close()
}

// NewRelay makes a Relay from a defaulted Config. It validates cfg again
// (cheap, and NewRelay must not run on a bad one), then sets up the
// transport Config.Steering asks for; with "auto" it logs once which one it
// took and why. A nil log discards.
func NewRelay(cfg Config, log *slog.Logger) (*Relay, error) {
	return newRelay(cfg, log, DefaultMarkerDir)
}

// DefaultMarkerDir is where a relay writes down the ports it reserved
// (reservePorts).
const DefaultMarkerDir = "/run/sbc"

// newRelay is NewRelay with the reservation's markers in markerDir.
func newRelay(cfg Config, log *slog.Logger, markerDir string) (*Relay, error) {
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
	r := &Relay{
		bindIP:   bind,
		publicIP: public,
		strict:   cfg.Latching == LatchingStrict,
		timeout:  cfg.Timeout,
		log:      log,
		ports:    newPortAllocator(cfg.PortMin, cfg.PortMax),
		sessions: make(map[*Session]struct{}),
		epoch:    time.Now(),
	}
	r.tr = &perPort{bindIP: bind, ports: r.ports, log: log}
	if cfg.Steering == SteeringOff {
		log.Info("media relay: one socket per port (media.steering = \"off\")")
		return r, nil
	}
	workers := cfg.Workers
	if workers == 0 {
		workers = min(runtime.GOMAXPROCS(0), maxWorkers)
	}
	st, err := newSteered(bind, r.ports, cfg.PortMin, cfg.PortMax, workers, r.clock)
	switch {
	case err == nil:
		r.tr = st
		log.Info("media relay: port range steered to a few sockets", "workers", workers)
		if n := st.others(); n > 0 {
			log.Warn("media relay: another sk_lookup program is attached to this network namespace (another sbc?); one that steers the same address and ports takes their datagrams first",
				"programs", n)
		}
		if cfg.ReservePorts == nil || *cfg.ReservePorts {
			r.reserve(cfg.PortMin, cfg.PortMax, markerDir)
		}
		return r, nil
	case cfg.Steering == SteeringOn:
		return nil, fmt.Errorf("new media relay: media.steering = \"on\" but steering is unavailable: %w", err)
	}
	log.Warn("media relay: steering unavailable, one socket per port instead (more CPU per packet, a file descriptor per port)", "reason", err)
	return r, nil
}

// reserve keeps the kernel from handing ports of the range to other sockets
// as ephemeral ports while the relay runs: a steered port takes every
// datagram to it, so such a socket would lose its replies. It logs what it
// did or why it could not.
func (r *Relay) reserve(first, last int, markerDir string) {
	n, err := ephemeralClash(first, last)
	if err != nil || (n == 0 && !reservationLeft(markerDir, first, last)) {
		return
	}
	undo, err := reservePorts(first, last, markerDir)
	if err != nil {
		r.log.Warn("media port range overlaps the kernel's ephemeral ports and could not be reserved: another program's socket on one of them would lose datagrams to the relay",
			"unreserved_ports", n, "error", err, "fix", fmt.Sprintf("sysctl -w net.ipv4.ip_local_reserved_ports=%d-%d", first, last))
		return
	}
	r.unreserve = undo
	r.log.Info("media port range reserved while the relay runs: the kernel gives none of its ports to other sockets as ephemeral ports (net.ipv4.ip_local_reserved_ports)",
		"ports", fmt.Sprintf("%d-%d", first, last), "were_unreserved", n)
}

// Release gives back what the relay reserved in the kernel (its port range
// in net.ipv4.ip_local_reserved_ports), for a process about to exit without
// Close. Close does it too; it is idempotent.
func (r *Relay) Release() error {
	r.mu.Lock()
	undo := r.unreserve
	r.unreserve = nil
	r.mu.Unlock()
	if undo == nil {
		return nil
	}
	if err := undo(); err != nil {
		return fmt.Errorf("media relay: give back the reserved ports: %w", err)
	}
	return nil
}

// clock is the relay's monotonic time: nanoseconds since epoch.
func (r *Relay) clock() int64 { return int64(time.Since(r.epoch)) }

// Unrouted is how many datagrams reached the steered relay but no stream:
// sent to a port just closed, or lost to socket errors.
func (r *Relay) Unrouted() uint64 {
	if st, ok := r.tr.(*steered); ok {
		return st.unrouted()
	}
	return 0
}

// Steered tells whether the port range is steered to a few sockets (else
// one socket per port).
func (r *Relay) Steered() bool { _, ok := r.tr.(*steered); return ok }

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
	s.active.Store(r.clock())
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		s.closed = true
		return s
	}
	r.sessions[s] = struct{}{}
	return s
}

// Close closes every session, waits for their goroutines, and stops the
// transport.
func (r *Relay) Close() error {
	r.stopOffloader()
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
	r.closeOnce.Do(r.tr.close)
	return r.Release()
}

func (r *Relay) forget(s *Session) {
	r.mu.Lock()
	delete(r.sessions, s)
	r.mu.Unlock()
}

// openPinholes opens the leg's RTP and RTCP ports in the filter, if any;
// one that fails does not keep the other shut.
func (r *Relay) openPinholes(l *leg) error {
	if r.pinholes == nil {
		return nil
	}
	var errs []error
	for p := l.rtpPort; p <= l.rtpPort+1; p++ {
		errs = append(errs, r.openPinhole(uint16(p)))
	}
	return errors.Join(errs...)
}

func (r *Relay) openPinhole(port uint16) error {
	if r.pinholes == nil {
		return nil
	}
	if err := r.pinholes.Open(port); err != nil {
		return fmt.Errorf("open the pinhole of media port %d: %w", port, err)
	}
	return nil
}

// shutPinholes closes them; a port the filter cannot close is logged, and
// stays open to the stack, where no socket or steering takes it any more.
func (r *Relay) shutPinholes(l *leg) {
	if r.pinholes == nil {
		return
	}
	for p := l.rtpPort; p <= l.rtpPort+1; p++ {
		if err := r.pinholes.Shut(uint16(p)); err != nil {
			r.log.Warn("shut a media port's pinhole", "port", p, "error", err)
		}
	}
}
