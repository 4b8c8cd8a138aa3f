//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"sbc/media/rawudp"
)

// flood sends pps packets/s of unsolicited RTP-sized datagrams to ports of
// the target's media range that no call holds (-flood-pps), from a source
// port of the UAC's address that belongs to no stream, in batches of
// rawudp.MaxBatch on a raw socket every millisecond, until ctx ends. It
// returns how many it sent.
type flooder struct {
	fd    int
	out   rawudp.Batch
	bufs  [rawudp.MaxBatch][rawudp.HeaderLen + packetLen]byte
	ports []uint16
	sent  uint64
}

// floodSource is the flood's source port on the UAC's address.
const floodSource = 9999

func newFlooder(src, dst netip.Addr, ports []uint16) (*flooder, error) {
	fd := openRaw()
	if fd < 0 {
		return nil, fmt.Errorf("-flood-pps: a raw socket needs CAP_NET_RAW")
	}
	f := &flooder{fd: fd, ports: ports}
	for i := range f.bufs {
		p := f.bufs[i][rawudp.HeaderLen:]
		copy(p, newPacket())
		port := ports[i%len(ports)]
		rawudp.PutHeaders(f.bufs[i][:rawudp.HeaderLen], src.As4(), dst.As4(), floodSource, port, p)
		f.out.Set(i, f.bufs[i][:], dst.As4())
	}
	return f, nil
}

func (f *flooder) run(ctx context.Context, pps int) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due := uint64(time.Since(start).Seconds() * float64(pps))
		for f.sent < due {
			n := int(min(due-f.sent, rawudp.MaxBatch))
			r, e := f.out.Send(f.fd, 0, n)
			if e != 0 || r <= 0 {
				break // a full socket buffer: the rest of this millisecond is lost
			}
			f.sent += uint64(r)
		}
	}
}

func (f *flooder) close() { syscall.Close(f.fd) }

// floodCost compares a run with a flood against the same run without:
// what the calls lost to it, and the machine CPU it took per dropped
// packet (the difference in busy CPU over the measured window, over the
// flood's packets in that window; the flood's own sending included).
func floodCost(base, flooded *result) string {
	window := flooded.gen.wall.Seconds()
	dropped := flooded.Flood.PPS * window
	perDrop := 0.0
	if dropped > 0 {
		perDrop = 1e6 * (flooded.Machine.CPUSeconds - base.Machine.CPUSeconds) / dropped
	}
	return fmt.Sprintf("%s, %d calls, flood of %.0f packets/s to media ports of no call: loss %.3f %% -> %.3f %%, p99 %s -> %s, "+
		"relay CPU %.1f %% -> %.1f %%; machine CPU per dropped packet %.2f µs (sending it included)",
		flooded.Target, flooded.Calls, flooded.Flood.PPS, base.LossPct, flooded.LossPct, usStr(base.LatencyUs.P99), usStr(flooded.LatencyUs.P99),
		relayPct(base), relayPct(flooded), perDrop)
}

func relayPct(r *result) float64 {
	if r.Relay == nil {
		return 0
	}
	return r.Relay.CPUPct
}
