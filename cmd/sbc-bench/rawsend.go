//go:build linux

package main

import (
	"syscall"
	"time"

	"github.com/pion/rtp"

	"sbc/media/rawudp"
)

// The generator's batched send path. Each stream end has its own socket
// (receiving needs it), and sendmmsg(2) takes one socket, so writes cannot
// be batched across streams on those. A raw socket (IPPROTO_RAW, the
// process writes the IP and UDP headers) can send as any end: a slot's
// packets then leave in one sendmmsg, as the relay's do. It needs
// CAP_NET_RAW; without it the senders write per packet.

// maxSendBatch is the most packets one sendmmsg carries (-send-batch).
const maxSendBatch = rawudp.MaxBatch

// openRaw returns an IPPROTO_RAW socket, or -1 when none may be opened.
func openRaw() int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.IPPROTO_RAW)
	if err != nil {
		return -1
	}
	return fd
}

// rawBatch is one sender's reusable sendmmsg vector.
type rawBatch struct {
	fd     int
	size   int // packets per sendmmsg, at most maxSendBatch
	out    rawudp.Batch
	bufs   [maxSendBatch][rawudp.HeaderLen + packetLen + srtpOverhead]byte
	stream [maxSendBatch]int
	// plain is the packet before SRTP, for the streams an SRTP run
	// encrypts into bufs; hdr pion's scratch.
	plain []byte
	hdr   rtp.Header
}

func newRawBatch(fd, size int) *rawBatch {
	b := &rawBatch{fd: fd, size: min(size, maxSendBatch), plain: newPacket()}
	for i := range b.bufs {
		copy(b.bufs[i][rawudp.HeaderLen:], newPacket())
	}
	return b
}

// send sends packet seq of streams [a, b) and returns how many left. Each
// packet is stamped as it is written into the batch, microseconds before
// the sendmmsg that carries it.
func (rb *rawBatch) send(g *generator, a, b int, seq uint32) uint64 {
	var sent uint64
	for a < b {
		n := 0
		for ; n < rb.size && a < b; a++ {
			end := &g.ends[a]
			if !end.peer.IsValid() {
				g.tx[a].sendErr++
				continue
			}
			p := rb.bufs[n][rawudp.HeaderLen : rawudp.HeaderLen+packetLen]
			sent := sendTime{mono: g.now(), wall: time.Now().UnixNano()}
			if g.srtpTx != nil {
				// From a clean copy: SRTP overwrites the payload of the
				// buffer, which another stream's packet reuses.
				encode(rb.plain, uint32(a), seq, sent)
				var err error
				if p, err = g.seal(a, rb.bufs[n][rawudp.HeaderLen:], rb.plain, &rb.hdr); err != nil {
					g.tx[a].sendErr++
					continue
				}
				if a%2 != 0 {
					p = rb.bufs[n][rawudp.HeaderLen : rawudp.HeaderLen+copy(rb.bufs[n][rawudp.HeaderLen:], rb.plain)]
				}
			} else {
				encode(p, uint32(a), seq, sent)
			}
			dst := end.peer.Addr().As4()
			rawudp.PutHeaders(rb.bufs[n][:rawudp.HeaderLen], end.local.Addr().As4(), dst, end.local.Port(), end.peer.Port(), p)
			rb.out.Set(n, rb.bufs[n][:rawudp.HeaderLen+len(p)], dst)
			rb.stream[n] = a
			n++
		}
		sent += rb.flush(g, n)
	}
	return sent
}

// flush sends the first n packets; one that fails is counted against its
// stream and skipped.
func (rb *rawBatch) flush(g *generator, n int) uint64 {
	var sent uint64
	for i := 0; i < n; {
		r, e := rb.out.Send(rb.fd, i, n)
		if e != 0 || r <= 0 {
			g.tx[rb.stream[i]].sendErr++
			i++
			continue
		}
		for _, st := range rb.stream[i : i+r] {
			g.tx[st].sent++
		}
		sent += uint64(r)
		i += r
	}
	return sent
}
