//go:build linux

package ladder

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteTable(t *testing.T) {
	pass := func(rate int) Step {
		return Step{Rate: rate, Attempt: 1, Calls: rate * 20, Succeeded: rate * 20, CPUPerCallMs: 0.5, Setup: Latency{P50: 4, P99: 12}, Pass: true}
	}
	fail := Step{Rate: 300, Attempt: 2, Calls: 6000, Succeeded: 5990, Failed: 10, Pass: false}
	r := Report{PassMark: "0 failed calls and at most 1 % retransmissions", StepDuration: "20s", CallDuration: "1s", Systems: []SystemReport{
		{System: "sbc", Offer: "127.0.0.42:42002", MediaPorts: "42000-49999", MediaCalls: 2000, Counted: "calls ended (sbc log)",
			Steps: []Step{pass(100), pass(200), fail}, MaxPassing: 200},
		{System: "kamailio", Steps: []Step{pass(100), pass(200), pass(300)}, MaxPassing: 300, ReachedMax: true},
		{System: "kamailio-nomedia", Error: "start kamailio: exited\nmore"},
	}}
	var b strings.Builder
	WriteTable(&b, r)
	out := b.String()
	for _, want := range []string{
		"sbc  ", "FAIL", "  sbc               200 calls/s: setup p50 4 ms, p99 12 ms; cpu 0.500 ms/call; offer media at 127.0.0.42:42002",
		"kamailio          >= 300 calls/s (the ladder's top)",
		"kamailio-nomedia  none passed; error: start kamailio: exited\n",
		"room for 2000 calls",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if got := strings.Count(out, "\n       sbc "); got != 3 {
		t.Errorf("%d sbc rows; want 3:\n%s", got, out)
	}

	path := filepath.Join(t.TempDir(), "ladder.json")
	if err := WriteJSON(path, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil || len(back.Systems) != 3 || back.Systems[0].Steps[2].Failed != 10 {
		t.Errorf("JSON round trip: %v, %+v", err, back.Systems)
	}
}
