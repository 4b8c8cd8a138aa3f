package media

import (
	"log/slog"
	"sync/atomic"
)

// Stats counts a stream's (or session's) packets by direction.
type Stats struct {
	AtoB Direction // received from side A's peer, sent to side B's peer
	BtoA Direction // received from side B's peer, sent to side A's peer
}

// Direction counts the packets received from one side's peer. Bytes are UDP
// payload bytes.
type Direction struct {
	RTPPackets, RTPBytes   uint64 // forwarded
	RTCPPackets, RTCPBytes uint64 // forwarded
	// Dropped counts packets received but not forwarded: no destination
	// known yet, source not accepted, not RTP/RTCP, send error.
	Dropped uint64
	// Kernel counts the forwarded packets (RTP and RTCP, included above)
	// the kernel fast path relayed without the userspace relay (Offload).
	Kernel uint64
	// SRTPAuthFailures and SRTPReplays count SRTP/SRTCP packets refused
	// (authentication tag wrong, index seen before); also in Dropped.
	SRTPAuthFailures, SRTPReplays uint64
	// Events counts RFC 4733 telephone-event packets relayed; EventsDropped
	// those dropped because the other leg has no telephone-event (also in
	// Dropped).
	Events, EventsDropped uint64
	// Quality is what was measured of the RTP received.
	Quality Quality
}

// LogValue logs a Direction as a group of its counters.
func (d Direction) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Uint64("rtp_packets", d.RTPPackets),
		slog.Uint64("rtp_bytes", d.RTPBytes),
		slog.Uint64("rtcp_packets", d.RTCPPackets),
		slog.Uint64("rtcp_bytes", d.RTCPBytes),
		slog.Uint64("dropped", d.Dropped),
		slog.Uint64("kernel_packets", d.Kernel),
		slog.Uint64("srtp_auth_failures", d.SRTPAuthFailures),
		slog.Uint64("srtp_replays", d.SRTPReplays),
		slog.Uint64("events", d.Events),
		slog.Uint64("events_dropped", d.EventsDropped),
		slog.Any("quality", d.Quality),
	)
}

func (d *Direction) add(o Direction) {
	d.RTPPackets += o.RTPPackets
	d.RTPBytes += o.RTPBytes
	d.RTCPPackets += o.RTCPPackets
	d.RTCPBytes += o.RTCPBytes
	d.Dropped += o.Dropped
	d.Kernel += o.Kernel
	d.SRTPAuthFailures += o.SRTPAuthFailures
	d.SRTPReplays += o.SRTPReplays
	d.Events += o.Events
	d.EventsDropped += o.EventsDropped
	d.Quality = d.Quality.add(o.Quality)
}

func (s *Stats) add(o Stats) {
	s.AtoB.add(o.AtoB)
	s.BtoA.add(o.BtoA)
}

// counters is the live, lock-free form of a Direction, written by the
// reader goroutines on the hot path.
type counters struct {
	rtpPackets, rtpBytes   atomic.Uint64
	rtcpPackets, rtcpBytes atomic.Uint64
	dropped                atomic.Uint64
	srtpAuth, srtpReplay   atomic.Uint64
	events, eventsDropped  atomic.Uint64
}

func (c *counters) forwarded(rtcp bool, n int) {
	if rtcp {
		c.rtcpPackets.Add(1)
		c.rtcpBytes.Add(uint64(n))
		return
	}
	c.rtpPackets.Add(1)
	c.rtpBytes.Add(uint64(n))
}

func (c *counters) snapshot() Direction {
	return Direction{
		RTPPackets:  c.rtpPackets.Load(),
		RTPBytes:    c.rtpBytes.Load(),
		RTCPPackets: c.rtcpPackets.Load(),
		RTCPBytes:   c.rtcpBytes.Load(),
		Dropped:     c.dropped.Load(),

		SRTPAuthFailures: c.srtpAuth.Load(),
		SRTPReplays:      c.srtpReplay.Load(),
		Events:           c.events.Load(),
		EventsDropped:    c.eventsDropped.Load(),
	}
}
