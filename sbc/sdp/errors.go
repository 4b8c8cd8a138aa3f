package sdp

import (
	"errors"
	"fmt"
)

var (
	// ErrMalformed is wrapped by every Parse error: the body is not SDP
	// (RFC 4566) that the SBC can anchor. The SIP layer answers 488.
	ErrMalformed = errors.New("sdp: malformed")

	// ErrBadRewrite is wrapped by Rewrite errors caused by its arguments
	// (anchors not matching the m= lines, invalid address or port): a bug
	// in the caller, not in the peer's SDP.
	ErrBadRewrite = errors.New("sdp: bad rewrite arguments")
)

// malformed returns an error wrapping ErrMalformed; line is the 1-based line
// of the input it is about, 0 when it is about no single line.
func malformed(line int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		return fmt.Errorf("%w: line %d: %s", ErrMalformed, line, msg)
	}

	return fmt.Errorf("%w: %s", ErrMalformed, msg)
}

func badRewrite(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRewrite, fmt.Sprintf(format, args...))
}
