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
