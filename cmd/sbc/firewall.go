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
// said why once; the rate limit is then nftables' (startSIPGuard).
func startFirewall(cfg *sbc.Config, log *slog.Logger) (*firewall.Firewall, error) {
	fc, err := firewallConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	fw, off, err := firewall.Start(fc, log)
	switch {
	case err != nil:
		return nil, err
	case fw == nil:
		log.Warn("kernel fast path off: media ports of no call are not filtered in the kernel",
			"reason", off)
		return nil, nil
	}
	log.Info("kernel fast path on: media ports closed unless a call holds them; the SIP rate limit applies to what arrives on these interfaces",
		"interfaces", strings.Join(fw.Attached(), ", "),
		"sip_rate_limit", fc.SIPRate, "sip_rate_burst", fc.SIPBurst, "trusted_sources", len(fc.Trusted),
		"pinned", fw.Pinned())
	return fw, nil
}

// firewallConfig is the firewall's part of the config: the SIP ports (at
// most 4, said once), the rate limit, the trunks' sources as trusted.
func firewallConfig(cfg *sbc.Config, log *slog.Logger) (firewall.Config, error) {
	bind, err := netip.ParseAddr(cfg.Media.BindIP)
	if err != nil {
		return firewall.Config{}, fmt.Errorf("media.bind_ip: %w", err) // validated already
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
		log.Warn("SIP rate limit: at most 4 SIP ports are limited; the others are not",
			"limited", fmt.Sprint(ports[:maxPorts]), "not_limited", fmt.Sprint(ports[maxPorts:]))
		ports = ports[:maxPorts]
	}
	var trusted []netip.Prefix
	for _, t := range cfg.Trunks {
		for _, src := range t.Sources {
			p, err := sourcePrefix(src)
			if err != nil {
				return firewall.Config{}, fmt.Errorf("trunk %s source %q: %w", t.Name, src, err) // validated already
			}
			trusted = append(trusted, p)
		}
	}
	return firewall.Config{
		Mode: cfg.Media.FastPath, Interfaces: cfg.Media.Interfaces, BindIP: bind,
		PortMin: cfg.Media.PortMin, PortMax: cfg.Media.PortMax,
		SIPPorts: ports, SIPRate: rate, SIPBurst: cfg.SIP.RateBurst, Trusted: trusted, Bans: *cfg.SIP.BanThreshold > 0,
		PinPath: *cfg.Media.PinPath,
	}, nil
}

// startSIPGuard puts the SIP rate limit in nftables when the fast path is
// off; nil (having said why once) when it cannot or there is no limit.
func startSIPGuard(cfg *sbc.Config, log *slog.Logger) *firewall.SIPGuard {
	fc, err := firewallConfig(cfg, slog.New(slog.DiscardHandler)) // its warnings were logged once
	if err != nil || (fc.SIPRate <= 0 && !fc.Bans) {
		return nil
	}
	g, err := firewall.StartSIPGuard(fc)
	if err != nil {
		log.Warn("SIP rate limit and bans not in the kernel: no kernel fast path, and nftables could not take them either; banned sources are dropped by the daemon", "error", err)
		return nil
	}
	log.Info("SIP rate limit in nftables: sources that are no trunk are limited per address",
		"table", fmt.Sprintf("inet sbc_%d", fc.SIPPorts[0]), "sip_rate_limit", fc.SIPRate, "sip_rate_burst", fc.SIPBurst, "trusted_sources", len(fc.Trusted),
		"bans", fc.Bans)
	return g
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
