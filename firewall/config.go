package firewall

import "net/netip"

// Config says what to attach where.
type Config struct {
	// Mode is media.FastPathAuto, media.FastPathXDP, media.FastPathTC or
	// media.FastPathOff.
	Mode string
	// Interfaces are the media interfaces; empty: the one holding BindIP.
	Interfaces []string
	// BindIP is the relay's address (media.bind_ip); UDP to the media range
	// is filtered towards it (every address when unspecified).
	BindIP           netip.Addr
	PortMin, PortMax int
	// SIPPorts, SIPRate and SIPBurst are the per-source packet rate limit of
	// the SIP listeners (bpf.FastPathConfig); Trusted are exempt from it.
	SIPPorts []uint16
	SIPRate  int
	SIPBurst int
	Trusted  []netip.Prefix
	// Bans says the SIP guard (nftables) should hold sets of banned
	// sources (Ban); the fast path's deny map always can.
	Bans bool
	// PinPath (media.pin_path) is where the maps and links are pinned so
	// that forwarded streams outlive the daemon; "" for none.
	PinPath string
}
