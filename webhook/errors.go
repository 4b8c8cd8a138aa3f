package webhook

import (
	"errors"
	"fmt"
)

var (
	// errRefused is a connection to an address Options.Allowed refused.
	errRefused = errors.New("webhook: address not allowed")
	// errBadURL is a URL that is not absolute http or https.
	errBadURL = errors.New("webhook: malformed URL")
)

// statusError is a final HTTP status other than 2xx.
type statusError struct{ code int }

func (e *statusError) Error() string { return fmt.Sprintf("webhook: HTTP status %d", e.code) }
