package codec

import "testing"

func TestNewPlan(t *testing.T) {
	pcmu, pcma := Format{0, PCMU}, Format{8, PCMA}
	te := func(pt uint8) Format { return Format{pt, TelephoneEvent} }
	tests := []struct {
		name     string
		in, out  []Format
		identity bool
		want     map[uint8]Action // payload types not listed: Drop
	}{
		{"same", []Format{pcmu, te(101)}, []Format{pcmu, te(101)}, true,
			map[uint8]Action{0: {Kind: Forward, Out: 0}, 101: {Kind: Forward, Event: true, Out: 101}}},
		{"event renumbered", []Format{pcmu, te(101)}, []Format{pcmu, te(96)}, false,
			map[uint8]Action{0: {Kind: Forward, Out: 0}, 101: {Kind: Forward, Event: true, Out: 96}}},
		{"transcoded", []Format{pcmu, te(101)}, []Format{pcma, te(101)}, false,
			map[uint8]Action{0: {Kind: Forward, Out: 8, Conv: ulawToAlaw}, 101: {Kind: Forward, Event: true, Out: 101}}},
		{"event dropped", []Format{pcma, te(101)}, []Format{pcmu}, false,
			map[uint8]Action{8: {Kind: Forward, Out: 0, Conv: alawToUlaw}, 101: {Kind: DropEvent, Event: true}}},
		{"both audio, one kept", []Format{pcmu, pcma}, []Format{pcma}, false,
			map[uint8]Action{0: {Kind: Forward, Out: 8, Conv: ulawToAlaw}, 8: {Kind: Forward, Out: 8}}},
		{"no audio out", []Format{pcmu}, []Format{te(101)}, false, map[uint8]Action{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlan(tt.in, tt.out)
			if p.Identity() != tt.identity {
				t.Errorf("Identity() = %v, want %v", p.Identity(), tt.identity)
			}
			for pt := range uint8(128) {
				if got, want := p.Action(pt), tt.want[pt]; got != want {
					t.Errorf("Action(%d) = %+v, want %+v", pt, got, want)
				}
			}
		})
	}
}

func TestParseEncoding(t *testing.T) {
	for s, want := range map[string]Encoding{
		"PCMU": PCMU, "pcmu/8000": PCMU, "PCMA/8000/1": PCMA, "telephone-event/8000": TelephoneEvent,
		"PCMU/16000": None, "G729/8000": None, "": None, "PCMU/8000/2": None,
	} {
		got, ok := ParseEncoding(s)
		if got != want || ok != (want != None) {
			t.Errorf("ParseEncoding(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
}

func TestParseEvent(t *testing.T) {
	e, err := ParseEvent([]byte{11, 0x8a, 0x03, 0x20})
	if err != nil || e != (Event{Code: 11, End: true, Volume: 10, Duration: 800}) || e.Digit() != '#' {
		t.Errorf("ParseEvent = %+v, %v", e, err)
	}
	if _, err := ParseEvent([]byte{1, 2, 3}); err != ErrShortEvent {
		t.Errorf("short payload: %v", err)
	}
	if (Event{Code: 16}).Digit() != 0 {
		t.Error("code 16 is no DTMF digit")
	}
}
