//go:build tools

// Package tools pins dependencies until the code that uses them lands.
package tools

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/emiago/sipgo"
	_ "github.com/pion/rtp"
	_ "github.com/pion/sdp/v3"
	_ "go.uber.org/goleak"
)
