package sbc

import (
	"fmt"

	"sbc/codec"
	"sbc/media"
)

// streamRecord is one m= line: the relay's RTP port facing each side (0
// for a rejected line), the peers signalled on each side and, for a line
// the SBC terminates, what each leg negotiated (formats, SRTP keys: the
// directory is private to the daemon's user).
type streamRecord struct {
	Ports [2]int          `json:"ports"`
	Peers [2]media.Peer   `json:"peers"`
	Media [2]*mediaRecord `json:"media,omitempty"`
}

// mediaRecord is a media.LegMedia.
type mediaRecord struct {
	Formats []formatRecord `json:"formats"`
	Suite   string         `json:"srtp_suite,omitempty"`
	Recv    []byte         `json:"srtp_recv,omitempty"`
	Send    []byte         `json:"srtp_send,omitempty"`
}

type formatRecord struct {
	PT       uint8  `json:"pt"`
	Encoding string `json:"encoding"`
}

func newMediaRecord(m *media.LegMedia) *mediaRecord {
	if m == nil {
		return nil
	}
	r := &mediaRecord{}
	for _, f := range m.Formats {
		r.Formats = append(r.Formats, formatRecord{f.PT, f.Encoding.String()})
	}
	if m.SRTP != nil {
		r.Suite, r.Recv, r.Send = m.SRTP.Suite.String(), m.SRTP.Recv, m.SRTP.Send
	}
	return r
}

// legMedia turns a record back into what the relay takes.
func (r *mediaRecord) legMedia() (media.LegMedia, error) {
	var m media.LegMedia
	for _, f := range r.Formats {
		e, ok := codec.ParseEncoding(f.Encoding)
		if !ok || f.PT > 127 {
			return m, fmt.Errorf("format %d %q", f.PT, f.Encoding)
		}
		m.Formats = append(m.Formats, codec.Format{PT: f.PT, Encoding: e})
	}
	if r.Suite != "" {
		s, ok := media.ParseSuite(r.Suite)
		if !ok {
			return m, fmt.Errorf("SRTP suite %q", r.Suite)
		}
		m.SRTP = &media.SRTP{Suite: s, Recv: r.Recv, Send: r.Send}
	}
	return m, nil
}
