//go:build linux

package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	// Every value falls in a bucket whose top is at or above it, the
	// previous bucket's top is below it, and the bucket is at most 1/128 of
	// the value wide.
	vals := []int64{0, 1, 255, 256, 257, 511, 512, 1000, 999_999, 1 << 30, 1<<40 - 1}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		vals = append(vals, r.Int64N(1<<40))
	}
	for _, v := range vals {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d; out of 0..%d", v, i, histBuckets-1)
		}
		hi := bucketHigh(i)
		if hi < v || (i > 0 && bucketHigh(i-1) >= v) {
			t.Fatalf("value %d in bucket %d: top %d, previous top %d", v, i, hi, bucketHigh(i-1))
		}
		if i > 0 && float64(hi-bucketHigh(i-1)) > float64(v)/128+1 {
			t.Fatalf("value %d: bucket %d is %d wide; want <= 1/128 of the value", v, i, hi-bucketHigh(i-1))
		}
	}
	if i := bucketOf(1 << 50); i != histBuckets-1 {
		t.Errorf("a huge value goes to bucket %d; want the last, %d", i, histBuckets-1)
	}
}

func TestQuantiles(t *testing.T) {
	// Against the exact order statistics of a skewed sample (most values
	// small, a long tail): each quantile within 1 % (the bucket width).
	r := rand.New(rand.NewPCG(3, 4))
	h := newHistogram()
	var all []int64
	for range 200_000 {
		v := int64(r.ExpFloat64() * 50_000) // mean 50 µs
		if r.IntN(1000) == 0 {
			v += 5_000_000 // 0.1 % at 5 ms and more
		}
		all = append(all, v)
		h.record(v)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := all[max(0, int(q*float64(len(all)))-1)]
		got := int64(h.quantile(q))
		if d := float64(got - exact); d < 0 || d > 0.01*float64(exact)+1 {
			t.Errorf("p%v = %d; exact %d (want at or above, within 1 %%)", q*100, got, exact)
		}
	}
	if h.max != all[len(all)-1] || h.min != all[0] || h.n != uint64(len(all)) {
		t.Errorf("min %d max %d n %d; want %d %d %d", h.min, h.max, h.n, all[0], all[len(all)-1], len(all))
	}
}

func TestHistogramSmall(t *testing.T) {
	h := newHistogram()
	if h.quantile(0.99) != 0 || h.mean() != 0 {
		t.Error("an empty histogram reports non-zero")
	}
	for _, v := range []int64{10, 20, 30, 40, -5} { // negative: a clock step, counts as 0
		h.record(v)
	}
	if got := h.quantile(0.5); got != 20 {
		t.Errorf("median of 0,10,20,30,40 = %v; want 20ns", got)
	}
	if got := h.quantile(1); got != 40 {
		t.Errorf("max = %v; want 40ns", got)
	}
	o := newHistogram()
	o.record(int64(3 * time.Millisecond))
	h.merge(o)
	if h.n != 6 || h.quantile(1) != 3*time.Millisecond {
		t.Errorf("after merge n %d max %v; want 6 and 3ms", h.n, h.quantile(1))
	}
	if got := h.mean(); got != time.Duration((10+20+30+40+3_000_000)/6) {
		t.Errorf("mean %v", got)
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	h := newHistogram()
	if n := testing.AllocsPerRun(1000, func() { h.record(12345) }); n != 0 {
		t.Errorf("record allocates %v times; want 0", n)
	}
}
