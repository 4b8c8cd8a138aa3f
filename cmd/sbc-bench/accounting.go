//go:build linux

package main

// rxState is what the receiver knows of one stream. One receiver goroutine
// owns each stream's state; nothing else touches it until the receivers
// have stopped.
type rxState struct {
	received  uint64 // distinct packets
	dups      uint64 // a sequence number seen again
	reordered uint64 // arrived after a higher sequence number
	started   bool
	highest   uint32 // highest sequence number seen
	// window has bit d set when highest-d was seen, d < 64: enough to tell a
	// duplicate from a late packet across 64 packets (1.28 s at 50 pps).
	window uint64
}

// add accounts for one packet with sequence number seq.
func (s *rxState) add(seq uint32) {
	switch {
	case !s.started:
		s.started, s.highest, s.window = true, seq, 1
		s.received++
	case seq > s.highest:
		if gap := seq - s.highest; gap < 64 {
			s.window = s.window<<gap | 1
		} else {
			s.window = 1
		}
		s.highest = seq
		s.received++
	case seq == s.highest:
		s.dups++
	default:
		d := s.highest - seq
		if d < 64 {
			if s.window&(1<<d) != 0 {
				s.dups++
				return
			}
			s.window |= 1 << d
		}
		// Older than the window: counted as late, not checked for a dup.
		s.received++
		s.reordered++
	}
}

// lost is how many of sent never arrived. A relay that duplicates cannot
// make it negative: received counts distinct packets.
func (s *rxState) lost(sent uint64) uint64 {
	if s.received >= sent {
		return 0
	}
	return sent - s.received
}
