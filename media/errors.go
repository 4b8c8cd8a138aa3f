package media

import (
	"errors"
	"fmt"
)

var (
	// ErrNoPorts means every port pair of the range is in use (or held by
	// another process). The SIP layer maps it to 503.
	ErrNoPorts = errors.New("media: no free port pairs")
	// ErrClosed is returned by AddStream on a closed Session or Relay.
	ErrClosed = errors.New("media: closed")
	// ErrBadSuite is an SRTP suite the relay does not support.
	ErrBadSuite = errors.New("media: unsupported SRTP suite")
	// ErrBadKey is SRTP key material of the wrong length for its suite.
	ErrBadKey = errors.New("media: bad SRTP key")
)

// ConfigError is one invalid value of the [media] section. Its message names
// the key, the bad value and the expected form, so an operator can fix the
// file without reading code.
type ConfigError struct {
	Key     string // e.g. "media.port_min"
	Value   string // the bad value as written in TOML, strings quoted
	Problem string // e.g. "is odd"
	Want    string // the expected form
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s: %s %s; want %s", e.Key, e.Value, e.Problem, e.Want)
}
