//go:build linux

package rtpengine

import (
	"context"
	"fmt"
)

// Statistics are the daemon-wide counters of the ng "statistics" command,
// the part a load test reads.
type Statistics struct {
	// Packets and bytes rtpengine received on its media ports and relayed,
	// userspace and kernel together ("relayedpackets"); Errors are those it
	// could not relay ("relayedpacketerrors").
	Packets, Bytes, Errors uint64
	// Ended counts calls ended so far, by how: "delete" (an ng delete),
	// "timeout", "silent-timeout", "final-timeout", "offer-timeout",
	// "forced" (terminated otherwise).
	Ended map[string]uint64
	// Sessions is how many calls are up now.
	Sessions uint64
	// Ports are the media ports of each interface.
	Ports []PortUsage
}

// PortUsage is one interface's media port range.
type PortUsage struct {
	Name, Address     string
	Free, Used, Total uint64
}

// Statistics reads the daemon's counters.
func (c *Client) Statistics(ctx context.Context) (Statistics, error) {
	rep, err := c.Do(ctx, Dict{"command": "statistics"})
	if err != nil {
		return Statistics{}, err
	}
	return parseStatistics(rep)
}

// parseStatistics reads a "statistics" reply. Integers rtpengine sends as
// bencoded integers; a counter missing from the reply is an error, so that
// a version that renamed one is noticed rather than read as zero.
func parseStatistics(rep Dict) (Statistics, error) {
	st, _ := rep["statistics"].(Dict)
	total, _ := st["totalstatistics"].(Dict)
	current, _ := st["currentstatistics"].(Dict)
	if total == nil || current == nil {
		return Statistics{}, fmt.Errorf("%w: no totalstatistics or currentstatistics", ErrNoCounters)
	}
	var s Statistics
	var missing []string
	num := func(d Dict, key string) uint64 {
		n, ok := d[key].(int64)
		if !ok || n < 0 {
			missing = append(missing, key)
			return 0
		}
		return uint64(n)
	}
	s.Packets = num(total, "relayedpackets")
	s.Bytes = num(total, "relayedbytes")
	s.Errors = num(total, "relayedpacketerrors")
	s.Sessions = num(current, "sessionsown")
	s.Ended = map[string]uint64{
		"delete":         num(total, "regularterminatedsessions"),
		"timeout":        num(total, "timeoutsessions"),
		"silent-timeout": num(total, "silenttimeoutsessions"),
		"final-timeout":  num(total, "finaltimeoutsessions"),
		"offer-timeout":  num(total, "offertimeoutsessions"),
		"forced":         num(total, "forcedterminatedsessions"),
	}
	ifaces, _ := st["interfaces"].([]any)
	for _, v := range ifaces {
		i, _ := v.(Dict)
		ports, _ := i["ports"].(Dict)
		name, _ := i["name"].(string)
		addr, _ := i["address"].(string)
		s.Ports = append(s.Ports, PortUsage{Name: name, Address: addr,
			Free: num(ports, "free"), Used: num(ports, "used"), Total: num(ports, "totals")})
	}
	if len(missing) > 0 {
		return Statistics{}, fmt.Errorf("%w: %v", ErrNoCounters, missing)
	}
	return s, nil
}
