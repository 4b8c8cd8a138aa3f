//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// The media generator. Call i has two stream ends, each its own socket:
// ends[2i] on the UAC's address (the call's A side) and ends[2i+1] on the
// UAS's (B side). Stream 2i goes A→B: sent from ends[2i], received on
// ends[2i+1]; stream 2i+1 goes B→A. So end e receives stream e^1, and a
// packet of any other stream arriving there was misrouted by the relay.
//
// A fixed set of sender goroutines each own a contiguous range of streams
// and walk it every 20 ms tick, spread over the tick in slots so the relay
// sees a steady flow rather than a burst every 20 ms. A fixed set of
// receivers each own a range of ends, wait with epoll and drain with
// recvmmsg. Nothing on the hot path allocates or locks.

const (
	tick  = 20 * time.Millisecond // G.711 packetisation: 50 packets/s per stream
	slots = 20                    // each tick is cut into slots of 1 ms
)

// latencies are the two one-way latencies of every packet received:
//
//   - kernel: send time (wall clock, just before write) to the kernel's
//     receive timestamp at the harness's socket (SO_TIMESTAMPNS, wall
//     clock). On loopback a packet is timestamped as the relay's sendto
//     queues it, so this is the delay the relay adds, and nothing of the
//     harness's receiver.
//   - user: send time to the moment the receiver goroutine reads it, both on
//     the one monotonic clock of this process. It adds the receiver's own
//     scheduling delay, which on a loaded 2-core machine dominates.
type latencies struct{ kernel, user *histogram }

func newLatencies() latencies { return latencies{kernel: newHistogram(), user: newHistogram()} }

// txState is what a sender knows of one stream; its sender owns it.
type txState struct {
	sent    uint64
	sendErr uint64 // write failed (send buffer full, ICMP error): not sent
	_       [48]byte
}

type generator struct {
	epoch time.Time // the monotonic clock packets carry: ns since epoch
	ends  []udpSocket
	tx    []txState
	rx    []rxState

	senders, receivers int
	// rawFD is an IPPROTO_RAW socket the senders batch their packets on,
	// or -1 when the process may not open one (then: a write per packet).
	rawFD     int
	sendBatch int

	sent      atomic.Uint64 // running totals for the progress line
	received  atomic.Uint64
	misrouted atomic.Uint64 // our packet on the wrong end
	foreign   atomic.Uint64 // not our packet at all
	recvErr   atomic.Uint64
	unstamped atomic.Uint64 // received without a kernel timestamp

	// srtpTx and srtpRx are call i's SRTP contexts with -srtp (nil
	// slices without): the one its A end encrypts with, owned by the
	// sender of stream 2i, and the one it decrypts with, owned by the
	// receiver of end 2i. srtpFail counts packets that did not decrypt.
	srtpTx, srtpRx []*srtp.Context
	srtpFail       atomic.Uint64

	// latency is merged from the receivers' when they stop.
	latency latencies
	lag     *histogram // how late senders were against the schedule
	started time.Time
	ended   time.Time
}

// newGenerator opens both ends of calls calls, on uacIP and uasIP.
func newGenerator(calls int, uacIP, uasIP netip.Addr, senders, receivers, sendBatch int) (*generator, error) {
	g := &generator{
		epoch:     time.Now(),
		ends:      make([]udpSocket, 0, 2*calls),
		tx:        make([]txState, 2*calls),
		rx:        make([]rxState, 2*calls),
		senders:   max(1, min(senders, 2*calls)),
		receivers: max(1, min(receivers, 2*calls)),
		latency:   newLatencies(),
		lag:       newHistogram(),
		rawFD:     -1,
		sendBatch: sendBatch,
	}
	if sendBatch > 0 {
		g.rawFD = openRaw()
	}
	for i := range calls {
		for _, ip := range []netip.Addr{uacIP, uasIP} {
			s, err := listenUDP(ip)
			if err != nil {
				g.close()
				return nil, fmt.Errorf("media sockets for call %d of %d: %w", i+1, calls, err)
			}
			g.ends = append(g.ends, s)
		}
	}
	return g, nil
}

// useSRTP makes the calls' A legs SRTP: setupCalls fills the contexts.
func (g *generator) useSRTP() {
	n := len(g.ends) / 2
	g.srtpTx, g.srtpRx = make([]*srtp.Context, n), make([]*srtp.Context, n)
}

// seal encrypts plain, a packet of stream st, into dst when st leaves an A
// end of an SRTP run; else it returns plain. hdr is the sender's scratch.
func (g *generator) seal(st int, dst, plain []byte, hdr *rtp.Header) ([]byte, error) {
	if g.srtpTx == nil || st%2 != 0 {
		return plain, nil
	}
	return g.srtpTx[st/2].EncryptRTP(dst[:0], plain, hdr)
}

func (g *generator) close() {
	for _, s := range g.ends {
		s.close()
	}
	g.ends = nil
	if g.rawFD >= 0 {
		syscall.Close(g.rawFD)
		g.rawFD = -1
	}
}

// batched tells whether the senders batch (raw socket) or write per packet.
func (g *generator) batched() bool { return g.rawFD >= 0 }

// now is the harness's clock: monotonic, shared by senders and receivers.
func (g *generator) now() int64 { return int64(time.Since(g.epoch)) }

// endA and endB are call i's stream ends.
func (g *generator) endA(i int) *udpSocket { return &g.ends[2*i] }
func (g *generator) endB(i int) *udpSocket { return &g.ends[2*i+1] }

// shard returns the k-th of n contiguous ranges of [0, total).
func shard(k, n, total int) (lo, hi int) { return k * total / n, (k + 1) * total / n }

// run sends for d (rounded down to whole ticks), waits drain for packets in
// flight, and stops. It returns early, with the context's cause, when ctx
// ends. Call it once; the ends must be connected.
func (g *generator) run(ctx context.Context, d, drain time.Duration) error {
	ticks := int(d / tick)
	if ticks < 1 {
		return fmt.Errorf("media duration %v is shorter than one %v tick", d, tick)
	}
	var stopSend, stopRecv atomic.Bool
	watch := make(chan struct{})
	go func() { // ends with run: watch is closed on return
		select {
		case <-ctx.Done():
			stopSend.Store(true)
			stopRecv.Store(true)
		case <-watch:
		}
	}()
	defer close(watch)

	var rwg sync.WaitGroup
	hists := make([]latencies, g.receivers)
	pollers := make([]*poller, 0, g.receivers)
	defer func() {
		for _, p := range pollers {
			p.close()
		}
	}()
	for r := range g.receivers {
		p, err := newPoller()
		if err != nil {
			return err
		}
		pollers = append(pollers, p)
		lo, hi := shard(r, g.receivers, len(g.ends))
		for e := lo; e < hi; e++ {
			if err := p.add(g.ends[e].fd, int32(e)); err != nil {
				return err
			}
		}
		hists[r] = newLatencies()
	}
	for r := range g.receivers {
		rwg.Go(func() { g.receive(pollers[r], hists[r], &stopRecv) })
	}

	// Start a little ahead, so every sender is ready for the first slot.
	t0 := time.Now().Add(20 * time.Millisecond)
	g.started = t0
	var swg sync.WaitGroup
	lags := make([]*histogram, g.senders)
	for s := range g.senders {
		lags[s] = newHistogram()
		lo, hi := shard(s, g.senders, len(g.tx))
		// Senders are staggered within a slot so they do not all wake at once.
		offset := time.Duration(s) * (tick / slots) / time.Duration(g.senders)
		swg.Go(func() { g.send(lo, hi, t0.Add(offset), ticks, lags[s], &stopSend) })
	}
	swg.Wait()
	g.ended = time.Now()
	// Packets in flight arrive, or count as lost.
	select {
	case <-ctx.Done():
	case <-time.After(drain):
	}
	stopRecv.Store(true)
	for _, p := range pollers {
		p.wake()
	}
	rwg.Wait()
	for _, h := range hists {
		g.latency.user.merge(h.user)
		g.latency.kernel.merge(h.kernel)
	}
	for _, h := range lags {
		g.lag.merge(h)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// send is one sender: streams [lo, hi), ticks ticks from t0. With a raw
// socket a slot's packets leave in one sendmmsg; else one write each.
func (g *generator) send(lo, hi int, t0 time.Time, ticks int, lag *histogram, stop *atomic.Bool) {
	buf, sealed := newPacket(), make([]byte, packetLen+srtpOverhead)
	var hdr rtp.Header
	var rb *rawBatch
	if g.rawFD >= 0 {
		rb = newRawBatch(g.rawFD, g.sendBatch)
	}
	n := hi - lo
	for k := range ticks {
		for sl := range slots {
			due := t0.Add(time.Duration(k)*tick + time.Duration(sl)*tick/slots)
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			} else {
				lag.record(int64(-wait))
			}
			if stop.Load() {
				return
			}
			a, b := lo+sl*n/slots, lo+(sl+1)*n/slots
			if rb != nil {
				g.sent.Add(rb.send(g, a, b, uint32(k)))
				continue
			}
			var sent uint64
			for st := a; st < b; st++ {
				tx := &g.tx[st]
				encode(buf, uint32(st), uint32(k), sendTime{mono: g.now(), wall: time.Now().UnixNano()})
				out, err := g.seal(st, sealed, buf, &hdr)
				if err == nil {
					err = write(g.ends[st].fd, out)
				}
				if err != nil {
					tx.sendErr++
					continue
				}
				tx.sent++
				sent++
			}
			g.sent.Add(sent)
		}
	}
}

// receive is one receiver: it drains the ends its poller watches until stop
// is set, then once more for what is still queued.
func (g *generator) receive(p *poller, lat latencies, stop *atomic.Bool) {
	events := make([]syscall.EpollEvent, 256)
	b := newBatch(8)
	drain := func() {
		for {
			n := p.poll(events)
			if n == 0 {
				return
			}
			g.handle(events[:n], b, lat)
		}
	}
	p.serve(func() bool {
		drain()
		return stop.Load()
	})
	drain()
}

// handle reads every socket an event names.
func (g *generator) handle(events []syscall.EpollEvent, b *batch, lat latencies) {
	var got uint64
	for _, ev := range events {
		e := int(ev.Fd)
		m, err := b.recv(g.ends[e].fd)
		if err != nil {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				g.recvErr.Add(1)
			}
			continue
		}
		now := g.now()
		want := uint32(e ^ 1)
		for i := range m {
			p := b.packet(i)
			if g.srtpRx != nil && e%2 == 0 { // an A end of an SRTP run
				var err error
				if p, err = g.srtpRx[e/2].DecryptRTP(b.plain[:0], p, &b.hdr); err != nil {
					g.srtpFail.Add(1)
					continue
				}
			}
			stream, seq, sent, ok := decode(p)
			switch {
			case !ok:
				g.foreign.Add(1)
			case stream != want:
				g.misrouted.Add(1)
			default:
				g.rx[want].add(seq)
				lat.user.record(now - sent.mono)
				if at, ok := b.stamp(i); ok {
					lat.kernel.record(at - sent.wall)
				} else {
					g.unstamped.Add(1)
				}
				got++
			}
		}
	}
	g.received.Add(got)
}

// totals sums the per-stream counters; call after run.
type mediaTotals struct {
	sent, sendErr, received, lost, reordered, dups uint64
	// worstLossPct is the loss of the stream that lost most; starved counts
	// the streams that got nothing through. Under overload they tell an
	// even degradation from one that sacrifices some calls.
	worstLossPct float64
	starved      int
}

func (g *generator) totals() mediaTotals {
	var t mediaTotals
	for i := range g.tx {
		t.sent += g.tx[i].sent
		t.sendErr += g.tx[i].sendErr
		t.received += g.rx[i].received
		t.lost += g.rx[i].lost(g.tx[i].sent)
		t.reordered += g.rx[i].reordered
		t.dups += g.rx[i].dups
		if sent := g.tx[i].sent; sent > 0 {
			t.worstLossPct = max(t.worstLossPct, 100*float64(g.rx[i].lost(sent))/float64(sent))
			if g.rx[i].received == 0 {
				t.starved++
			}
		}
	}
	return t
}
