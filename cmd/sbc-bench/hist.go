//go:build linux

package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records durations in fixed memory, HDR-style: values below
// 2^histSubBits ns each have a bucket, above that every power of two is cut
// into 2^(histSubBits-1) equal buckets, so a percentile is off by at most
// 1/2^(histSubBits-1) of its value (0.8 %) and the whole range up to 2^40 ns
// (18 min) fits in a few thousand counters. Not safe for concurrent use:
// each receiver keeps its own and they are merged at the end.
type histogram struct {
	counts   []uint64
	n        uint64
	sum      float64 // ns, for the mean
	min, max int64
}

const (
	histSubBits = 8
	histSub     = 1 << histSubBits // values 0..histSub-1 are exact
	histHalf    = histSub / 2      // buckets per power of two above that
	histMaxExp  = 40 - histSubBits // highest shift; larger values clamp
	histBuckets = histSub + histMaxExp*histHalf
)

func newHistogram() *histogram {
	return &histogram{counts: make([]uint64, histBuckets), min: math.MaxInt64}
}

// bucketOf maps v >= 0 to its bucket.
func bucketOf(v int64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits // v>>shift is in [histHalf, histSub)
	if shift > histMaxExp {
		return histBuckets - 1
	}
	return histSub + (shift-1)*histHalf + int(v>>shift) - histHalf
}

// bucketHigh is the largest value bucket i holds.
func bucketHigh(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := (i-histSub)/histHalf + 1
	top := int64((i-histSub)%histHalf + histHalf)
	return (top+1)<<shift - 1
}

// record adds one value; negative values (a clock step) count as 0.
func (h *histogram) record(d int64) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(d)]++
	h.n++
	h.sum += float64(d)
	h.min = min(h.min, d)
	h.max = max(h.max, d)
}

// merge adds o's values to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q (0..1) of the values
// lie: the top of the bucket holding it, capped at the largest value seen.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketHigh(i), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}
