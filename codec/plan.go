package codec

// Format is one payload type a leg negotiated: its number there and what
// it carries.
type Format struct {
	PT       uint8
	Encoding Encoding
}

// Kind says what becomes of a packet of one payload type.
type Kind uint8

const (
	// Drop: a payload type the leg did not negotiate; counted, not sent.
	Drop Kind = iota
	// Forward: sent on, with the out leg's payload type and, when Conv is
	// set, its samples converted.
	Forward
	// DropEvent: a telephone event the other leg did not negotiate (no
	// inband generation yet); counted as such, not sent.
	DropEvent
)

// Action is the fate of one payload type from one leg to the other.
type Action struct {
	Kind  Kind
	Event bool   // a telephone-event packet
	Out   uint8  // payload type on the out leg
	Conv  *Table // non-nil: convert the G.711 samples
}

// Plan maps every payload type of the in leg to its Action. A Plan is a
// value; build it with NewPlan and do not change it while packets use it.
type Plan struct {
	actions [128]Action
	// identity: every negotiated type leaves unchanged (same number, no
	// conversion, no event dropped), so the packets may go as they came.
	identity bool
}

// NewPlan decides, for media from the leg that negotiated in to the leg
// that negotiated out, what happens to each payload type. Audio in an
// encoding out also has keeps it (renumbered if out numbers it otherwise);
// other audio is converted to out's first audio format. Telephone events
// keep their meaning under out's number, or are dropped when out has none.
func NewPlan(in, out []Format) Plan {
	var p Plan
	p.identity = true
	var firstAudio *Format
	for i := range out {
		if out[i].Encoding.Audio() {
			firstAudio = &out[i]
			break
		}
	}
	for _, f := range in {
		if f.PT > 127 {
			continue
		}
		a := Action{Event: f.Encoding == TelephoneEvent}
		switch same := find(out, f.Encoding); {
		case same != nil:
			a.Kind, a.Out = Forward, same.PT
		case a.Event:
			a.Kind = DropEvent
		case f.Encoding.Audio() && firstAudio != nil:
			a.Kind, a.Out, a.Conv = Forward, firstAudio.PT, Conversion(f.Encoding, firstAudio.Encoding)
		}
		if a.Kind != Forward || a.Out != f.PT || a.Conv != nil {
			p.identity = false
		}
		p.actions[f.PT] = a
	}
	return p
}

func find(fs []Format, e Encoding) *Format {
	for i := range fs {
		if fs[i].Encoding == e {
			return &fs[i]
		}
	}
	return nil
}

// Action returns what becomes of payload type pt (0-127).
func (p *Plan) Action(pt uint8) Action { return p.actions[pt&0x7f] }

// Identity says every negotiated payload type passes unchanged: the stream
// needs no step between the legs and may be relayed as it is.
func (p *Plan) Identity() bool { return p.identity }
