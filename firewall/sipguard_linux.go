package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// SIPGuard is the SIP listeners' per-source rate limit in nftables, for
// hosts where the kernel fast path cannot run (no BPF, loopback, no single
// media interface): a source that is no trunk may send SIPRate packets/s
// to the SIP ports, after a burst of SIPBurst; the rest is dropped before
// the stack's sockets see it. Trunks' sources pass. It is a table of its
// own, "inet sbc_PORT" after the first SIP port (daemons on other ports
// keep their own), written through netlink (google/nftables); Close
// removes it, and a start replaces the one a killed run left.
//
// It also holds the bans (Ban): sets of banned IPv4 addresses and IPv6
// /64s whose elements expire by themselves; what they send to the SIP
// ports is dropped.
type SIPGuard struct {
	// mu makes each change and its Flush one batch: the connection queues
	// messages until a Flush sends them all, and one failing message
	// (deleting an element that expired) fails the whole batch.
	mu     sync.Mutex
	conn   *nftables.Conn
	table  *nftables.Table
	banned map[bool]*nftables.Set // by IPv6
}

// sipGuardTable names the table of a daemon whose first SIP port is port.
func sipGuardTable(port uint16) string { return fmt.Sprintf("sbc_%d", port) }

// StartSIPGuard installs the guard in the calling thread's network
// namespace.
func StartSIPGuard(c Config) (*SIPGuard, error) {
	if (c.SIPRate <= 0 && !c.Bans) || len(c.SIPPorts) == 0 {
		return nil, errors.New("nftables SIP guard: neither a SIP rate limit nor bans configured")
	}
	conn, err := nftables.New(nftables.AsLasting()) // its socket stays in this namespace
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	g := &SIPGuard{conn: conn, table: &nftables.Table{Family: nftables.TableFamilyINet, Name: sipGuardTable(c.SIPPorts[0])},
		banned: map[bool]*nftables.Set{}}
	// A table a killed run left goes first (deleting a missing one fails
	// the batch, so it is asked for on its own).
	conn.DelTable(g.table)
	conn.Flush()
	conn.AddTable(g.table)
	// Every packet to the host crosses the hooked chain, media included:
	// one set lookup sends only what goes to a SIP port on to the rules
	// (a linear walk of them cost the relay 17 % of its CPU in perf).
	input := conn.AddChain(&nftables.Chain{Name: "input", Table: g.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 10)})
	chain := conn.AddChain(&nftables.Chain{Name: "sip", Table: g.table})
	ports := &nftables.Set{Table: g.table, Name: "sip_ports", KeyType: nftables.TypeInetService, Constant: true}
	var elems []nftables.SetElement
	for _, port := range c.SIPPorts {
		elems = append(elems, nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, port)})
	}
	if err := conn.AddSet(ports, elems); err != nil {
		conn.CloseLasting()
		return nil, fmt.Errorf("nftables SIP guard: %w", err)
	}
	conn.AddRule(&nftables.Rule{Table: g.table, Chain: input, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: chain.Name},
	}})
	conn.AddRule(&nftables.Rule{Table: g.table, Chain: input, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: chain.Name},
	}})
	if c.Bans {
		for _, v6 := range []bool{false, true} {
			s := &nftables.Set{Table: g.table, Name: "banned4", KeyType: nftables.TypeIPAddr, HasTimeout: true}
			if v6 {
				s.Name, s.KeyType = "banned6", nftables.TypeIP6Addr
			}
			if err := conn.AddSet(s, nil); err != nil {
				conn.CloseLasting()
				return nil, fmt.Errorf("nftables SIP guard: %w", err)
			}
			g.banned[v6] = s
		}
	}
	meters := map[bool]*nftables.Set{}
	for _, v6 := range []bool{false, true} {
		if c.SIPRate <= 0 {
			break
		}
		s := &nftables.Set{Table: g.table, Name: "sip_src4", KeyType: nftables.TypeIPAddr, Dynamic: true,
			HasTimeout: true, Timeout: time.Minute, Size: 65536}
		if v6 {
			s.Name, s.KeyType = "sip_src6", nftables.TypeIP6Addr
		}
		if err := conn.AddSet(s, nil); err != nil {
			conn.CloseLasting()
			return nil, fmt.Errorf("nftables SIP guard: %w", err)
		}
		meters[v6] = s
	}
	for _, port := range c.SIPPorts {
		for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
			for _, p := range c.Trusted {
				p = p.Masked()
				conn.AddRule(&nftables.Rule{Table: g.table, Chain: chain,
					Exprs: append(match(p.Addr().Is6(), proto, port), append(source(p), &expr.Verdict{Kind: expr.VerdictAccept})...)})
			}
			for v6, s := range g.banned { // before the rate limit: no credit taken
				exprs := append(match(v6, proto, port), sourceKey(v6)[2:]...)
				exprs = append(exprs,
					&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
					&expr.Counter{},
					&expr.Verdict{Kind: expr.VerdictDrop})
				conn.AddRule(&nftables.Rule{Table: g.table, Chain: chain, Exprs: exprs})
			}
			for _, v6 := range []bool{false, true} {
				if c.SIPRate <= 0 {
					break
				}
				exprs := append(match(v6, proto, port), sourceKey(v6)[2:]...)
				exprs = append(exprs,
					&expr.Dynset{SrcRegKey: 1, SetName: meters[v6].Name, SetID: meters[v6].ID,
						Operation: uint32(unix.NFT_DYNSET_OP_UPDATE), Timeout: time.Minute,
						Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(c.SIPRate), Over: true,
							Unit: expr.LimitTimeSecond, Burst: uint32(max(c.SIPBurst, 1))}}},
					&expr.Counter{},
					&expr.Verdict{Kind: expr.VerdictDrop})
				conn.AddRule(&nftables.Rule{Table: g.table, Chain: chain, Exprs: exprs})
			}
		}
	}
	if err := conn.Flush(); err != nil {
		conn.CloseLasting()
		return nil, fmt.Errorf("nftables SIP guard: %w", err)
	}
	return g, nil
}

// match is "IPv4 (or IPv6), protocol proto, destination port port".
func match(v6 bool, proto byte, port uint16) []expr.Any {
	family := byte(unix.NFPROTO_IPV4)
	if v6 {
		family = unix.NFPROTO_IPV6
	}
	dport := make([]byte, 2)
	binary.BigEndian.PutUint16(dport, port)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dport},
	}
}

// sourceKey is "IPv4 (or IPv6), and the source address (its /64) in
// register 1", the key of the meters and of the ban sets.
func sourceKey(v6 bool) []expr.Any {
	family, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if v6 {
		family, off, n = unix.NFPROTO_IPV6, 8, 16
	}
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
	}
	if v6 {
		mask := make([]byte, 16)
		copy(mask, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		exprs = append(exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: mask, Xor: make([]byte, 16)})
	}
	return exprs
}

// Ban drops what p (an IPv4 address, an IPv6 /64) sends to the SIP ports,
// for d (at least a second: nftables takes a timeout under its granularity
// as none).
func (g *SIPGuard) Ban(p netip.Prefix, d time.Duration) error {
	s, key, err := g.banKey(p)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	d = max(d, time.Second)
	if err := g.conn.SetAddElements(s, []nftables.SetElement{{Key: key, Timeout: d}}); err != nil {
		return fmt.Errorf("nftables SIP guard: ban %v: %w", p, err)
	}
	if err := g.conn.Flush(); err != nil {
		return fmt.Errorf("nftables SIP guard: ban %v: %w", p, err)
	}
	return nil
}

// Unban lifts the ban of p, if its element has not expired already.
func (g *SIPGuard) Unban(p netip.Prefix) error {
	s, key, err := g.banKey(p)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.conn.SetDeleteElements(s, []nftables.SetElement{{Key: key}}); err != nil {
		return fmt.Errorf("nftables SIP guard: unban %v: %w", p, err)
	}
	if err := g.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables SIP guard: unban %v: %w", p, err)
	}
	return nil
}

func (g *SIPGuard) banKey(p netip.Prefix) (*nftables.Set, []byte, error) {
	p = p.Masked()
	v6 := p.Addr().Is6()
	s := g.banned[v6]
	switch {
	case s == nil:
		return nil, nil, errors.New("nftables SIP guard: started without bans")
	case v6 && p.Bits() != 64, !v6 && p.Bits() != 32:
		return nil, nil, fmt.Errorf("nftables SIP guard: ban %v: want an IPv4 address or an IPv6 /64", p)
	}
	return s, p.Addr().AsSlice(), nil
}

// source is "source address in prefix p".
func source(p netip.Prefix) []expr.Any {
	off, n := uint32(12), uint32(4)
	if p.Addr().Is6() {
		off, n = 8, 16
	}
	mask := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()},
	}
}

// Dropped is how many packets the guard dropped.
func (g *SIPGuard) Dropped() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rules, err := g.conn.GetRules(g.table, &nftables.Chain{Name: "sip", Table: g.table})
	if err != nil {
		return 0, fmt.Errorf("nftables SIP guard: %w", err)
	}
	var n uint64
	for _, r := range rules {
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				n += c.Packets
			}
		}
	}
	return n, nil
}

// RemoveSIPGuard removes the guard table of a daemon whose first SIP port
// is port, if one is left (a killed daemon's): for harnesses that kill the
// daemons they run. Every table's hooked chain costs each packet to the
// host a walk, media included.
func RemoveSIPGuard(port uint16) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: sipGuardTable(port)}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	for _, x := range tables {
		if x.Name == t.Name {
			conn.DelTable(t)
			return conn.Flush()
		}
	}
	return nil
}

// Close removes the table.
func (g *SIPGuard) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conn.DelTable(g.table)
	err := g.conn.Flush()
	g.conn.CloseLasting()
	if err != nil {
		return fmt.Errorf("nftables SIP guard: remove: %w", err)
	}
	return nil
}
