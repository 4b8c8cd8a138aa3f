package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"sbc/firewall"
	"sbc/sbc"
)

// startFirewall attaches the kernel fast path as the config says: media
// ports closed unless a call holds them, the SIP listeners' per-source rate
// limit (trunks exempt). It returns nil when the fast path is off, having
// said why once.
func startFirewall(cfg *sbc.Config, log *slog.Logger) (*firewall.Firewall, error) {
	bind, err := netip.ParseAddr(cfg.Media.BindIP)
	if err != nil {
		return nil, fmt.Errorf("media.bind_ip: %w", err) // validated already
	}
	var ports []uint16
	for _, l := range cfg.SIP.Listen {
		if ap, err := netip.ParseAddrPort(l.Address); err == nil && !slices.Contains(ports, ap.Port()) {
			ports = append(ports, ap.Port())
		}
	}
	const maxPorts = 4 // bpf.FastPathConfig.SIPPorts
	rate := *cfg.SIP.RateLimit
	if len(ports) > maxPorts && rate > 0 {
		log.Warn("SIP rate limit: the kernel fast path limits at most 4 SIP ports; the others are not limited",
			"limited", fmt.Sprint(ports[:maxPorts]), "not_limited", fmt.Sprint(ports[maxPorts:]))
		ports = ports[:maxPorts]
	}
	var trusted []netip.Prefix
	for _, t := range cfg.Trunks {
		for _, src := range t.Sources {
			p, err := sourcePrefix(src)
			if err != nil {
				return nil, fmt.Errorf("trunk %s source %q: %w", t.Name, src, err) // validated already
			}
			trusted = append(trusted, p)
		}
	}
	fw, off, err := firewall.Start(firewall.Config{
		Mode: cfg.Media.FastPath, Interfaces: cfg.Media.Interfaces, BindIP: bind,
		PortMin: cfg.Media.PortMin, PortMax: cfg.Media.PortMax,
		SIPPorts: ports, SIPRate: rate, SIPBurst: cfg.SIP.RateBurst, Trusted: trusted,
		PinPath: *cfg.Media.PinPath,
	}, log)
	switch {
	case err != nil:
		return nil, err
	case fw == nil:
		log.Warn("kernel fast path off: media ports of no call are not filtered in the kernel and SIP floods are not rate limited there",
			"reason", off)
		return nil, nil
	}
	log.Info("kernel fast path on: media ports closed unless a call holds them; the SIP rate limit applies to what arrives on these interfaces",
		"interfaces", strings.Join(fw.Attached(), ", "),
		"sip_rate_limit", rate, "sip_rate_burst", cfg.SIP.RateBurst, "trusted_sources", len(trusted),
		"pinned", fw.Pinned())
	return fw, nil
}

// sourcePrefix reads a trunk source: an IP or a CIDR.
func sourcePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}
