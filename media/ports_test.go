package media

import (
	"slices"
	"sync"
	"testing"
)

func TestAllocatorExhaustAndFree(t *testing.T) {
	a := newPortAllocator(20000, 20009) // 5 pairs
	if a.totalPairs() != 5 {
		t.Fatalf("totalPairs = %d, want 5", a.totalPairs())
	}
	seen := map[int]bool{}
	for {
		p, ok := a.alloc()
		if !ok {
			break
		}
		if p%2 != 0 || p < 20000 || p+1 > 20009 || seen[p] {
			t.Fatalf("alloc = %d: want a new even port with RTP+1 inside 20000..20009", p)
		}
		seen[p] = true
	}
	if len(seen) != 5 || a.freePairs() != 0 {
		t.Fatalf("allocated %d pairs, freePairs %d; want 5 and 0", len(seen), a.freePairs())
	}
	for p := range seen {
		if !a.free(p) {
			t.Errorf("free(%d) = false", p)
		}
	}
	if a.freePairs() != a.totalPairs() {
		t.Errorf("after freeing all, freePairs = %d, want %d", a.freePairs(), a.totalPairs())
	}
}

func TestAllocatorOddMaxLeavesLastPortUnused(t *testing.T) {
	a := newPortAllocator(20000, 20004) // 20004 has no RTCP port
	if a.totalPairs() != 2 {
		t.Fatalf("totalPairs = %d, want 2", a.totalPairs())
	}
}

// TestAllocatorRoundRobin: a freed pair comes back only after every other
// free pair, so a late packet of an ended call does not reach the next one.
func TestAllocatorRoundRobin(t *testing.T) {
	a := newPortAllocator(20000, 20007) // 4 pairs
	var order []int
	for range 3 {
		p, _ := a.alloc()
		order = append(order, p)
	}
	if want := []int{20000, 20002, 20004}; !slices.Equal(order, want) {
		t.Fatalf("first allocations %v, want %v", order, want)
	}
	a.free(20000)
	a.free(20004)
	var next []int
	for range 3 {
		p, ok := a.alloc()
		if !ok {
			t.Fatal("alloc failed with free pairs")
		}
		next = append(next, p)
	}
	// 20006 was never used; then the freed ones in the order freed.
	if want := []int{20006, 20000, 20004}; !slices.Equal(next, want) {
		t.Errorf("allocations after free %v, want %v", next, want)
	}
}

func TestAllocatorDoubleFreeIsHarmless(t *testing.T) {
	a := newPortAllocator(20000, 20007)
	p, _ := a.alloc()
	if !a.free(p) {
		t.Fatal("first free = false")
	}
	for _, bad := range []int{p, 20001, 19998, 20008, 30000} {
		if a.free(bad) {
			t.Errorf("free(%d) = true for a port that is not allocated", bad)
		}
	}
	if a.freePairs() != 4 {
		t.Fatalf("freePairs = %d, want 4", a.freePairs())
	}
	seen := map[int]bool{}
	for range 4 {
		q, ok := a.alloc()
		if !ok || seen[q] {
			t.Fatalf("alloc = %d, %v after double free: queue corrupted (seen %v)", q, ok, seen)
		}
		seen[q] = true
	}
	if _, ok := a.alloc(); ok {
		t.Error("alloc succeeded with all pairs in use")
	}
}

func TestAllocatorConcurrent(t *testing.T) {
	a := newPortAllocator(20000, 20199)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if p, ok := a.alloc(); ok {
					a.free(p)
				}
			}
		})
	}
	wg.Wait()
	if a.freePairs() != a.totalPairs() {
		t.Errorf("freePairs = %d, want %d", a.freePairs(), a.totalPairs())
	}
}
