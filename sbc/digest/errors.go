package digest

import "errors"

var (
	// ErrMalformed reports a header value that is not a Digest credential
	// or challenge as RFC 3261 §25.1 writes one.
	ErrMalformed = errors.New("digest: malformed header")
	// ErrTooLong reports a header value longer than MaxHeaderLen.
	ErrTooLong = errors.New("digest: header too long")
	// ErrAlgorithm reports an algorithm other than MD5 and SHA-256, or a
	// qop other than auth.
	ErrAlgorithm = errors.New("digest: unsupported algorithm or qop")
)
