package media

import (
	"log/slog"
	"math"
)

// Quality is what the relay measured of the RTP one peer sent: loss and
// interarrival jitter as RFC 3550 defines them for reception reports, and
// an estimated MOS. Measured is false when the relay saw none of the
// stream's RTP (nothing sent, or the kernel relayed all of it).
type Quality struct {
	Measured bool
	Expected uint64  // packets the sequence numbers say were sent (A.3)
	Lost     int64   // Expected minus received; negative with duplicates
	JitterMS float64 // interarrival jitter (A.8), in milliseconds
	MOS      float64 // E-model estimate for G.711, 1.0-4.5
}

// add combines the quality of two streams (a session's sum): counts add,
// jitter is the worse, MOS is recomputed.
func (q Quality) add(o Quality) Quality {
	if !o.Measured {
		return q
	}
	if !q.Measured {
		return o
	}
	q.Expected += o.Expected
	q.Lost += o.Lost
	q.JitterMS = max(q.JitterMS, o.JitterMS)
	q.MOS = mos(q.LossPercent(), q.JitterMS)
	return q
}

// LossPercent is the share of expected packets lost, 0-100.
func (q Quality) LossPercent() float64 {
	if q.Expected == 0 || q.Lost <= 0 {
		return 0
	}
	return 100 * float64(q.Lost) / float64(q.Expected)
}

// LogValue logs q as a group.
func (q Quality) LogValue() slog.Value {
	if !q.Measured {
		return slog.GroupValue(slog.Bool("measured", false))
	}
	return slog.GroupValue(
		slog.Uint64("expected", q.Expected),
		slog.Int64("lost", q.Lost),
		slog.Float64("loss_percent", math.Round(q.LossPercent()*100)/100),
		slog.Float64("jitter_ms", math.Round(q.JitterMS*100)/100),
		slog.Float64("mos", math.Round(q.MOS*100)/100),
	)
}

// receiver follows the RTP of one peer: RFC 3550 A.1 sequence tracking and
// the A.8 jitter estimate. Not safe for concurrent use (direction.mu).
type receiver struct {
	started  bool
	ssrc     uint32
	maxSeq   uint16
	cycles   uint32 // wraps of the sequence number, << 16
	baseSeq  uint32
	received uint64
	// Across SSRC changes: what earlier sources expected and delivered.
	pastExpected uint64
	pastReceived uint64

	transit int64  // last arrival minus RTP timestamp, in timestamp units
	jitter  uint32 // A.8's estimate, scaled by 16
}

// maxDropout and maxMisorder are A.1's bounds for a sequence jump that
// is still the same stream.
const (
	maxDropout  = 3000
	maxMisorder = 100
)

// packet accounts one RTP packet: its SSRC, sequence number and timestamp,
// and its arrival in timestamp units (8 kHz). jitter is false for packets
// whose timestamp is not a sampling instant (RFC 4733 events keep the
// event's start).
func (r *receiver) packet(ssrc uint32, seq uint16, ts uint32, arrival int64, jitter bool) {
	if !r.started || ssrc != r.ssrc {
		if r.started {
			r.pastExpected += r.expected()
			r.pastReceived += r.received
		}
		*r = receiver{started: true, ssrc: ssrc, maxSeq: seq, baseSeq: uint32(seq),
			pastExpected: r.pastExpected, pastReceived: r.pastReceived, transit: arrival - int64(ts)}
		r.received = 1
		return
	}
	switch delta := seq - r.maxSeq; {
	case delta != 0 && delta < maxDropout:
		if seq < r.maxSeq {
			r.cycles += 1 << 16
		}
		r.maxSeq = seq
	case delta == 0 || delta > 1<<16-maxMisorder:
		// duplicate or reordered: counted, no new maximum
	default:
		// A jump beyond the dropout bound: the source restarted its
		// sequence (A.1 waits for a second packet; a relay counts on).
		r.pastExpected += r.expected()
		r.pastReceived += r.received
		r.maxSeq, r.baseSeq, r.cycles, r.received = seq, uint32(seq), 0, 0
	}
	r.received++
	if !jitter {
		return
	}
	t := arrival - int64(ts)
	d := t - r.transit
	r.transit = t
	if d < 0 {
		d = -d
	}
	// J += (|D| - J) / 16, in fixed point (A.8).
	r.jitter += uint32(d) - ((r.jitter + 8) >> 4)
}

func (r *receiver) expected() uint64 {
	if !r.started {
		return 0
	}
	return uint64(r.cycles+uint32(r.maxSeq)) - uint64(r.baseSeq) + 1
}

// quality summarises what was received.
func (r *receiver) quality() Quality {
	if !r.started {
		return Quality{}
	}
	q := Quality{Measured: true, Expected: r.pastExpected + r.expected()}
	q.Lost = int64(q.Expected) - int64(r.pastReceived+r.received)
	q.JitterMS = float64(r.jitter>>4) * 1000 / ClockRate
	q.MOS = mos(q.LossPercent(), q.JitterMS)
	return q
}

// ClockRate is the RTP clock of every stream relayed: G.711 and its
// telephone events run at 8 kHz.
const ClockRate = 8000

// mos estimates the listening quality of a G.711 stream with the E-model
// (ITU-T G.107) from what a relay can see: packet loss and jitter. The
// one-way delay is not known (no RTT is measured), so it is taken as one
// 20 ms packet plus a jitter buffer of twice the jitter, the usual sizing.
// G.711 has Ie = 0 and, with packet loss concealment, Bpl = 25.1 (G.113
// Appendix I); loss is taken as random (BurstR = 1).
func mos(lossPercent, jitterMS float64) float64 {
	const (
		r0  = 93.2 // the default basic signal-to-noise ratio minus Is
		bpl = 25.1
	)
	d := 20 + 2*jitterMS
	id := 0.024 * d
	if d > 177.3 {
		id += 0.11 * (d - 177.3)
	}
	ie := 95 * lossPercent / (lossPercent + bpl)
	r := r0 - id - ie
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return 1 + 0.035*r + r*(r-60)*(100-r)*7e-6
}
