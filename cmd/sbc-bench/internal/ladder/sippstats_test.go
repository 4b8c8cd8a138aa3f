//go:build linux

package ladder

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The fixtures are the files of a real step: 20 calls at 10 calls/s
// through Kamailio + rtpengine.
func TestParseSippStats(t *testing.T) {
	tests := []struct {
		file string
		want sippStats
	}{
		{"testdata/uac-stats.csv", sippStats{created: 20, succeeded: 20, retrans: 0, setupMean: 4 * time.Millisecond}},
		{"testdata/uas-stats.csv", sippStats{created: 20, succeeded: 20}},
	}
	for _, tc := range tests {
		b, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseSippStats(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.file, got, tc.want)
		}
	}
}

func TestParseSippStatsCounts(t *testing.T) {
	head := "StartTime;TotalCallCreated;SuccessfulCall(P);SuccessfulCall(C);FailedCall(C);Retransmissions(C);ResponseTimesetup(C);\n"
	tests := []struct {
		name, text string
		want       sippStats
		wantErr    string
	}{
		{"last row counts", head + "x;5;1;4;1;0;00:00:00:002000;\nx;10;2;8;2;3;00:00:01:500000;\n",
			sippStats{created: 10, succeeded: 8, failed: 2, retrans: 3, setupMean: 1500 * time.Millisecond}, ""},
		{"no response time column (uas)", "TotalCallCreated;SuccessfulCall(C);FailedCall(C);Retransmissions(C)\n7;7;0;1\n",
			sippStats{created: 7, succeeded: 7, retrans: 1}, ""},
		{"header only", head, sippStats{}, "want a header and at least one row"},
		{"missing column", "TotalCallCreated;SuccessfulCall(C)\n1;1\n", sippStats{}, "no FailedCall(C) column"},
		{"not a number", head + "x;1;1;one;0;0;00:00:00:000000;\n", sippStats{}, `SuccessfulCall(C) = "one"`},
		{"bad duration", head + "x;1;1;1;0;0;2ms;\n", sippStats{}, "HH:MM:SS:uuuuuu"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSippStats([]byte(tc.text))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseRTT(t *testing.T) {
	b, err := os.ReadFile("testdata/uac-rtt.csv")
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseRTT(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 20 {
		t.Fatalf("%d samples; want 20", len(s))
	}
	// 20 calls at 10/s: the 200s span about 1.9 s.
	if r := answeredRate(s); r < 9 || r > 11 {
		t.Errorf("answered rate %.2f/s; want about 10", r)
	}

	s, err = parseRTT([]byte("Date_ms;response_time_ms;rtd_no\n10.001;4;setup\n12;8;other\n\n20.5;0;setup\n"))
	if err != nil || len(s) != 2 || s[0] != (rttSample{10.001, 4}) || s[1] != (rttSample{20.5, 0}) {
		t.Errorf("got %v, %v; want the two setup rows", s, err)
	}
	for _, bad := range []string{"1;2\n", "a;2;setup\n", "1;-2;setup\n"} {
		if _, err := parseRTT([]byte(bad)); err == nil {
			t.Errorf("parseRTT(%q): no error", bad)
		}
	}
}

func TestLatency(t *testing.T) {
	var s []rttSample
	for i := 1; i <= 200; i++ { // 1..200 ms, shuffled order does not matter
		s = append(s, rttSample{atMs: float64(i), rttMs: float64(201 - i)})
	}
	got := latency(s)
	want := Latency{Samples: 200, Mean: 100.5, P50: 100, P99: 198, Max: 200}
	if got != want {
		t.Errorf("latency = %+v; want %+v", got, want)
	}
	if got := latency([]rttSample{{0, 4}}); got != (Latency{Samples: 1, Mean: 4, P50: 4, P99: 4, Max: 4}) {
		t.Errorf("one sample: %+v", got)
	}
	if got := latency(nil); got != (Latency{}) {
		t.Errorf("no sample: %+v", got)
	}
	if r := answeredRate([]rttSample{{1000, 1}, {3000, 1}, {2000, 1}}); r != 1 {
		t.Errorf("answered rate %v; want 1/s (3 answers over 2 s)", r)
	}
}

func TestRTTFreq(t *testing.T) {
	for calls, want := range map[int]int{1: 1, 60: 60, 100: 100, 400: 100, 25000: 100, 1998: 74, 101: 1, 2 * 101: 2} {
		if got := rttFreq(calls); got != want {
			t.Errorf("rttFreq(%d) = %d; want %d", calls, got, want)
		}
	}
}
