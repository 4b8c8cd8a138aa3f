//go:build linux

package ladder

import (
	"encoding/csv"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What the ladder reads of sipp's output files.

// sippStats are the counters of the last row of a sipp statistics file
// (-trace_stat -stf): cumulative over the run, written every -fd seconds
// and once more at its end.
type sippStats struct {
	created   int // TotalCallCreated: calls placed (UAC) or received (UAS)
	succeeded int // SuccessfulCall(C)
	failed    int // FailedCall(C)
	retrans   int // Retransmissions(C): messages it sent again
	// ResponseTimesetup(C): mean of the "setup" response time (INVITE to
	// 200), to sipp's 1 ms; zero where the scenario has none (the UAS).
	setupMean time.Duration
}

// parseSippStats reads the header and the last row of a statistics file
// (";"-separated; see `sipp -h stat`).
func parseSippStats(b []byte) (sippStats, error) {
	r := csv.NewReader(strings.NewReader(string(b)))
	r.Comma = ';'
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	rows, err := r.ReadAll()
	if err != nil {
		return sippStats{}, fmt.Errorf("parse sipp statistics: %w", err)
	}
	if len(rows) < 2 {
		return sippStats{}, fmt.Errorf("parse sipp statistics: %d rows; want a header and at least one row", len(rows))
	}
	head, last := rows[0], rows[len(rows)-1]
	col := func(name string) (string, bool) {
		for i, h := range head {
			if strings.TrimSpace(h) == name && i < len(last) {
				return strings.TrimSpace(last[i]), true
			}
		}
		return "", false
	}
	var s sippStats
	for _, c := range []struct {
		name string
		dst  *int
	}{
		{"TotalCallCreated", &s.created},
		{"SuccessfulCall(C)", &s.succeeded},
		{"FailedCall(C)", &s.failed},
		{"Retransmissions(C)", &s.retrans},
	} {
		v, ok := col(c.name)
		if !ok {
			return sippStats{}, fmt.Errorf("parse sipp statistics: no %s column", c.name)
		}
		if *c.dst, err = strconv.Atoi(v); err != nil {
			return sippStats{}, fmt.Errorf("parse sipp statistics: %s = %q: not a count", c.name, v)
		}
	}
	if v, ok := col("ResponseTimesetup(C)"); ok {
		if s.setupMean, err = parseSippDuration(v); err != nil {
			return sippStats{}, fmt.Errorf("parse sipp statistics: ResponseTimesetup(C): %w", err)
		}
	}
	return s, nil
}

var sippDurationRE = regexp.MustCompile(`^(\d+):(\d\d):(\d\d):(\d{6})$`)

// parseSippDuration reads sipp's "HH:MM:SS:uuuuuu".
func parseSippDuration(s string) (time.Duration, error) {
	m := sippDurationRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q: want HH:MM:SS:uuuuuu", s)
	}
	var n [4]int
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return time.Duration(n[0])*time.Hour + time.Duration(n[1])*time.Minute +
		time.Duration(n[2])*time.Second + time.Duration(n[3])*time.Microsecond, nil
}

// rttSample is one call's setup time from sipp's RTT file (-trace_rtt):
// when its 200 arrived (ms since sipp started) and how long after the
// INVITE, in whole ms. sipp reads its clock once per turn of its event
// loop, before it waits for messages, so at low rates the times come in
// steps of that wait (4 ms on the 2-vCPU VM of issue 3) and a 0 means the
// 200 came within the same turn.
type rttSample struct {
	atMs, rttMs float64
}

// parseRTT reads the "setup" rows of an RTT file:
//
//	Date_ms;response_time_ms;rtd_no
//	56.001;4;setup
func parseRTT(b []byte) ([]rttSample, error) {
	var out []rttSample
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || (i == 0 && strings.HasPrefix(line, "Date_ms")) {
			continue
		}
		f := strings.Split(line, ";")
		if len(f) != 3 {
			return nil, fmt.Errorf("parse sipp rtt line %d %q: want Date_ms;response_time_ms;rtd_no", i+1, line)
		}
		if f[2] != "setup" {
			continue
		}
		at, err1 := strconv.ParseFloat(f[0], 64)
		rtt, err2 := strconv.ParseFloat(f[1], 64)
		if err1 != nil || err2 != nil || rtt < 0 {
			return nil, fmt.Errorf("parse sipp rtt line %d %q: not two numbers", i+1, line)
		}
		out = append(out, rttSample{atMs: at, rttMs: rtt})
	}
	return out, nil
}

// Latency is a step's call-setup time at the UAC, INVITE sent to 200
// received, in ms as sipp measures it (see rttSample).
type Latency struct {
	Samples int     `json:"samples"`
	Mean    float64 `json:"mean"`
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
}

// latency summarizes samples; percentiles are nearest-rank.
func latency(samples []rttSample) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	v := make([]float64, len(samples))
	sum := 0.0
	for i, s := range samples {
		v[i] = s.rttMs
		sum += s.rttMs
	}
	slices.Sort(v)
	rank := func(p float64) float64 { return v[int(math.Ceil(p/100*float64(len(v))))-1] }
	return Latency{Samples: len(v), Mean: sum / float64(len(v)), P50: rank(50), P99: rank(99), Max: v[len(v)-1]}
}

// answeredRate is how many calls per second were answered between the
// first and the last 200: what sipp achieved of the rate asked.
func answeredRate(samples []rttSample) float64 {
	if len(samples) < 2 {
		return 0
	}
	first, last := samples[0].atMs, samples[0].atMs
	for _, s := range samples {
		first, last = min(first, s.atMs), max(last, s.atMs)
	}
	if last <= first {
		return 0
	}
	return float64(len(samples)-1) / ((last - first) / 1000)
}
