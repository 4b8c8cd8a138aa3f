package media

import "sync"

// portAllocator hands out RTP/RTCP port pairs (even RTP port, RTCP on
// RTP+1) from a fixed range. Free pairs wait in a FIFO ring, so a freed pair
// goes to the back and is handed out again only after every other free pair:
// a late packet of an ended call then finds no new call on its port (the
// same goal as livekit's draining port, without keeping sockets bound).
// Alloc and free are O(1). Safe for concurrent use.
type portAllocator struct {
	mu    sync.Mutex
	min   int     // RTP port of pair 0
	ring  []int32 // free pair indexes; ring[head] is handed out next
	head  int
	count int     // free pairs in ring
	inUse []bool  // by pair index; makes a double free a no-op
	pos   []int32 // by pair index: where it waits in ring while free (take)
}

func newPortAllocator(portMin, portMax int) *portAllocator {
	n := (portMax - portMin + 1) / 2
	a := &portAllocator{min: portMin, ring: make([]int32, n), count: n, inUse: make([]bool, n), pos: make([]int32, n)}
	for i := range a.ring {
		a.ring[i] = int32(i)
		a.pos[i] = int32(i)
	}
	return a
}

// alloc returns the RTP port of a free pair, or false when none is free.
func (a *portAllocator) alloc() (rtpPort int, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.count == 0 {
		return 0, false
	}
	return a.pop(), true
}

// pop hands out the pair at the head of the ring; a.count > 0, a.mu held.
func (a *portAllocator) pop() int {
	i := a.ring[a.head]
	a.head = (a.head + 1) % len(a.ring)
	a.count--
	a.inUse[i] = true
	return a.min + 2*int(i)
}

// take allocates the pair of rtpPort, if free: a restarted daemon taking
// over the ports of its calls. The pair at the head of the queue moves to
// where the taken one waited.
func (a *portAllocator) take(rtpPort int) bool {
	off := rtpPort - a.min
	if off < 0 || off%2 != 0 || off/2 >= len(a.ring) {
		return false
	}
	i := int32(off / 2)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inUse[i] {
		return false
	}
	p, h := a.pos[i], a.head
	j := a.ring[h]
	a.ring[p], a.pos[j] = j, p
	a.ring[h], a.pos[i] = i, int32(h)
	a.pop()
	return true
}

// free returns the pair of rtpPort to the back of the queue. Freeing a port
// that is not allocated (twice, or never) does nothing and reports false.
func (a *portAllocator) free(rtpPort int) bool {
	off := rtpPort - a.min
	if off < 0 || off%2 != 0 || off/2 >= len(a.ring) {
		return false
	}
	i := off / 2
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.inUse[i] {
		return false
	}
	a.inUse[i] = false
	at := (a.head + a.count) % len(a.ring)
	a.ring[at], a.pos[i] = int32(i), int32(at)
	a.count++
	return true
}

// freePairs is the number of pairs alloc can still hand out.
func (a *portAllocator) freePairs() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.count
}

func (a *portAllocator) totalPairs() int { return len(a.ring) }
