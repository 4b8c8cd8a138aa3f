// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The media fast path (DESIGN.md, "The kernel fast path contract"): an
// ingress program, XDP where the driver allows it and TC otherwise, that
// sees every packet arriving on the media interface before the stack does.
//
//   1. A source in the deny map (an LPM trie of IPv6 prefixes, IPv4 as
//      ::ffff:a.b.c.d) is dropped, whatever it sends; a source sending UDP
//      or TCP to the SIP ports faster than the configured packet rate is
//      dropped over it (token bucket per source; trunks exempt).
//   2. UDP to the media address and port range is dropped unless the port
//      is open (a pinhole: a key in the ports map), and, for a strict
//      pinhole, unless it comes from the latched peer.
//   3. A packet to an open port whose entry says FORWARD is rewritten to
//      the other leg's addresses and ports (checksums fixed incrementally)
//      and sent out of the interface the FIB names, without waking
//      userspace; when the FIB cannot name a neighbour yet, it goes to the
//      userspace relay unchanged, which still holds the call.
//   4. Everything else passes to the stack.
//
// Per-port counters (packets, bytes, forwarded, last seen) live in a
// per-CPU array indexed by port - port_min; drops are counted in a per-CPU
// array of global counters. Userspace reads both for stats and timeouts.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define AF_INET6 10
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define MAX_EXT 4 // IPv6 extension headers walked

struct frag_hdr { // IPv6 fragment header
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

// Set from Go before loading.
volatile const __u32 port_min = 0;   // host byte order
volatile const __u32 port_max = 0;   // host byte order
volatile const __u32 media_ip4 = 0;  // network byte order; 0: every IPv4 destination
volatile const __u32 media_ip6[4] = {0}; // every IPv6 destination when all zero
volatile const __u8 relay_ttl = 64;  // the TTL of forwarded packets, as the userspace relay sends them
// The SIP listeners' ports (host order, 0: unused) and the per-source
// packet rate allowed to them: sip_cost_ns of credit per packet, at most
// sip_burst_ns saved up. sip_cost_ns 0: no limit.
volatile const __u16 sip_ports[4] = {0};
volatile const __u64 sip_cost_ns = 0;
volatile const __u64 sip_burst_ns = 0;

// Flags of a port's entry.
#define PORT_OPEN 1    // a pinhole: the port belongs to a live call
#define PORT_STRICT 2  // only the latched peer may send to it
#define PORT_FORWARD 4 // forward in the kernel
#define PORT_FORWARD_PEER 8 // forward only what comes from peer:peer_port; the rest goes to userspace
#define PORT_OUT6 16 // the forward addresses are IPv6 (forwarded from IPv6 only; IPv4 from IPv4 only)

// An 802.1Q or 802.1ad tag, after the Ethernet addresses.
struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

// Addresses are 16 bytes, network order, IPv4 as ::ffff:a.b.c.d.
struct port_entry {
	__u32 flags;
	__u32 peer[4];      // latched peer (PORT_STRICT, PORT_FORWARD_PEER)
	__u16 peer_port;    // network order
	__u16 out_sport;    // network order (PORT_FORWARD): the relay's port on the other leg
	__u32 out_saddr[4]; // the relay's address on the other leg
	__u32 out_daddr[4]; // the other leg's peer
	__u16 out_dport;    // network order
	__u16 _pad;
	// The next hop, when userspace resolved it: the interface and the MACs.
	// 0: ask the FIB, which answers only where forwarding is enabled on the
	// ingress interface (net.ipv4.conf.IF.forwarding).
	__u32 out_ifindex;
	__u8 out_smac[ETH_ALEN];
	__u8 out_dmac[ETH_ALEN];
};

// Keyed by port, host order. max_entries is set from Go to the range size.
// A hash map, not an array: userspace replaces an entry atomically.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct port_entry);
} ports SEC(".maps");

struct port_stats {
	__u64 packets;
	__u64 bytes; // IP datagram bytes
	__u64 forwarded;
	__u64 forwarded_bytes;
	__u64 last_ns;           // bpf_ktime_get_ns of the last packet let through
	__u64 forwarded_last_ns; // of the last one forwarded (from the peer)
};

// Indexed by port - port_min; max_entries set from Go.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct port_stats);
} stats SEC(".maps");

// Global counters, indexed by the COUNT_ values (bpf/fastpath.go names them).
enum {
	COUNT_DENIED,       // dropped: source in the deny map
	COUNT_CLOSED,       // dropped: UDP to a media port of no call
	COUNT_NOT_PEER,     // dropped: strict pinhole, not the latched peer
	COUNT_FORWARDED,    // forwarded in the kernel
	COUNT_NO_ROUTE,     // forward entry, but the FIB had no neighbour: passed to userspace
	COUNT_FRAGMENT,     // IPv4 fragment to the media address: passed (the stack reassembles)
	COUNT_RATE_LIMITED, // dropped: a source over the SIP packet rate
	COUNT_BANNED,       // dropped: to a SIP port from a banned source
	COUNT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct deny_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct deny_key);
	__type(value, __u8);
} deny SEC(".maps");

// Sources banned from the SIP ports (the daemon's ban list of sources that
// keep failing), an LPM trie keyed like deny. Only their packets to the SIP
// ports are dropped: a source forged into the list loses nothing else.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct deny_key);
	__type(value, __u8);
} banned SEC(".maps");

// Sources the SIP rate limit does not apply to (the trunks), an LPM trie
// keyed like deny.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct deny_key);
	__type(value, __u8);
} trusted SEC(".maps");

// A token bucket per source sending to the SIP ports (an IPv4 address, an
// IPv6 /64: one host holds a whole /64), counted in nanoseconds of credit.
// Updates race between CPUs: a racing packet may take credit twice, but
// never refills the bucket.
struct bucket {
	__u64 last_ns;
	__u64 credit_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct deny_key);
	__type(value, struct bucket);
} sip_buckets SEC(".maps");

enum verdict {
	VERDICT_PASS,
	VERDICT_DROP,
	VERDICT_REDIRECT,       // out of *ifindex, MACs set
	VERDICT_REDIRECT_NEIGH, // out of *ifindex, the kernel resolves the MACs (TC only)
	VERDICT_PULL,           // the headers go on past the linear data: pull the rest, ask again (TC only)
};

// How handle is called.
#define HANDLE_XDP 1  // from XDP (else TC)
#define HANDLE_PULL 2 // may answer VERDICT_PULL (TC's first try)
#define HANDLE_VLAN 4 // the kernel took a VLAN tag off already (TC: skb->vlan_present)

static __always_inline void count(__u32 what)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &what);
	if (c)
		*c += 1;
}

// The source as a full-length key of the deny, trusted and bucket maps.
static __always_inline void key4(struct deny_key *k, __u32 saddr)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->prefixlen = 128;
	k->addr[10] = 0xff;
	k->addr[11] = 0xff;
	__builtin_memcpy(&k->addr[12], &saddr, 4);
}

static __always_inline void key6(struct deny_key *k, const struct in6_addr *saddr)
{
	k->prefixlen = 128;
	__builtin_memcpy(k->addr, saddr, 16);
}

static __always_inline int is_sip_port(__u16 dport_be)
{
	__u16 port = bpf_ntohs(dport_be);
	return port && (port == sip_ports[0] || port == sip_ports[1] || port == sip_ports[2] || port == sip_ports[3]);
}

// over_sip_rate charges one packet to the source's bucket and says whether
// the source is over its rate.
static __always_inline int over_sip_rate(struct deny_key *src)
{
	if (!sip_cost_ns || bpf_map_lookup_elem(&trusted, src))
		return 0;
	struct deny_key key = *src;
	if (!(key.addr[10] == 0xff && key.addr[11] == 0xff && key.addr[0] == 0 && key.addr[8] == 0)) {
		// IPv6 (not v4-mapped): the /64
		__builtin_memset(&key.addr[8], 0, 8);
	}
	__u64 now = bpf_ktime_get_ns();
	struct bucket *b = bpf_map_lookup_elem(&sip_buckets, &key);
	if (!b) {
		struct bucket fresh = {.last_ns = now, .credit_ns = sip_burst_ns - sip_cost_ns};
		bpf_map_update_elem(&sip_buckets, &key, &fresh, BPF_ANY);
		return 0;
	}
	// Another CPU may have stored a later last_ns: no credit for a negative
	// interval, and last_ns never moves back.
	__u64 credit = b->credit_ns;
	if (now > b->last_ns) {
		credit += now - b->last_ns;
		b->last_ns = now;
	}
	if (credit > sip_burst_ns)
		credit = sip_burst_ns;
	if (credit < sip_cost_ns) {
		b->credit_ns = credit;
		return 1;
	}
	b->credit_ns = credit - sip_cost_ns;
	return 0;
}

// screen applies the deny map and, to the SIP ports, the rate limit. dport
// is the UDP or TCP destination port (network order), 0 when unknown.
static __always_inline enum verdict screen(struct deny_key *src, __u8 proto, __u16 dport)
{
	if (bpf_map_lookup_elem(&deny, src)) {
		count(COUNT_DENIED);
		return VERDICT_DROP;
	}
	if ((proto != IPPROTO_UDP && proto != IPPROTO_TCP) || !is_sip_port(dport))
		return VERDICT_PASS;
	if (bpf_map_lookup_elem(&banned, src)) {
		count(COUNT_BANNED);
		return VERDICT_DROP;
	}
	if (over_sip_rate(src)) {
		count(COUNT_RATE_LIMITED);
		return VERDICT_DROP;
	}
	return VERDICT_PASS;
}

// csum_replace16 updates a 16-bit one's complement checksum for one 16-bit
// word of the covered data changing from `from` to `to` (RFC 1624, eqn. 3).
// Words are taken as stored; the sum does not depend on byte order.
static __always_inline __u16 csum_replace16(__u16 check, __u16 from, __u16 to)
{
	__u32 sum = (__u16)~check;
	sum += (__u16)~from;
	sum += to;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u16 csum_replace32(__u16 check, __u32 from, __u32 to)
{
	check = csum_replace16(check, (__u16)from, (__u16)to);
	return csum_replace16(check, (__u16)(from >> 16), (__u16)(to >> 16));
}

static __always_inline int in_range(__u16 dport_be)
{
	__u32 port = bpf_ntohs(dport_be);
	return port >= port_min && port <= port_max;
}

static __always_inline int media_ip6_unset(void)
{
	return (media_ip6[0] | media_ip6[1] | media_ip6[2] | media_ip6[3]) == 0;
}

// media_dst4 and media_dst6 say whether UDP to daddr is filtered: to the
// media address, or to any when none is named (a wildcard bind); an IPv6
// media address alone leaves IPv4 alone, and the other way round: the
// relay holds no port of the other family.
static __always_inline int media_dst4(__u32 daddr)
{
	if (!media_ip4)
		return media_ip6_unset();
	return daddr == media_ip4;
}

static __always_inline int media_dst6(const struct in6_addr *daddr)
{
	if (media_ip6_unset())
		return media_ip4 == 0;
	return daddr->in6_u.u6_addr32[0] == media_ip6[0] && daddr->in6_u.u6_addr32[1] == media_ip6[1] &&
	       daddr->in6_u.u6_addr32[2] == media_ip6[2] && daddr->in6_u.u6_addr32[3] == media_ip6[3];
}

// is_peer says whether src:sport is the entry's peer (src as 4 words, IPv4
// mapped).
static __always_inline int is_peer(const struct port_entry *e, const __u32 *src, __u16 sport)
{
	return e->peer[0] == src[0] && e->peer[1] == src[1] && e->peer[2] == src[2] && e->peer[3] == src[3] &&
	       e->peer_port == sport;
}

// pinhole applies the filter to UDP to a media port and accounts the
// packet; it returns the port's entry when the packet may go on, else 0
// (drop).
static __always_inline struct port_entry *pinhole(__u16 dport_be, const __u32 *src, __u16 sport, __u32 len)
{
	__u32 port = bpf_ntohs(dport_be);
	struct port_entry *e = bpf_map_lookup_elem(&ports, &port);
	if (!e || !(e->flags & PORT_OPEN)) {
		count(COUNT_CLOSED);
		return 0;
	}
	if ((e->flags & PORT_STRICT) && !is_peer(e, src, sport)) {
		count(COUNT_NOT_PEER);
		return 0;
	}
	__u32 off = port - port_min;
	struct port_stats *st = bpf_map_lookup_elem(&stats, &off);
	if (st) {
		st->packets++;
		st->bytes += len;
		st->last_ns = bpf_ktime_get_ns();
	}
	return e;
}

// fwd is what handle found out about a packet to forward.
struct fwd {
	struct port_entry e; // a copy: the map entry may change meanwhile
	__u32 l3, l4;        // offsets of the IP and UDP headers
	__u32 ifindex;       // where it goes
	int ip6;             // an IPv6 packet
	__u8 smac[ETH_ALEN], dmac[ETH_ALEN];
};

// route says where the rewritten packet (of tot_len bytes from its IP
// header on) goes: the next hop userspace put in the entry, else the FIB's
// answer. A packet that cannot be forwarded goes to userspace unchanged.
static __always_inline enum verdict route(void *ctx, __u16 tot_len, __u32 ifindex, int xdp, struct fwd *f)
{
	if (f->e.out_ifindex) {
		f->ifindex = f->e.out_ifindex;
		__builtin_memcpy(f->smac, f->e.out_smac, ETH_ALEN);
		__builtin_memcpy(f->dmac, f->e.out_dmac, ETH_ALEN);
		return VERDICT_REDIRECT;
	}
	struct bpf_fib_lookup fib = {};
	fib.l4_protocol = IPPROTO_UDP;
	fib.sport = f->e.out_sport;
	fib.dport = f->e.out_dport;
	fib.tot_len = tot_len;
	if (f->ip6) {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, f->e.out_saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, f->e.out_daddr, 16);
	} else {
		fib.family = AF_INET;
		fib.ipv4_src = f->e.out_saddr[3];
		fib.ipv4_dst = f->e.out_daddr[3];
	}
	fib.ifindex = ifindex;
	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	f->ifindex = fib.ifindex;
	__builtin_memcpy(f->smac, fib.smac, ETH_ALEN);
	__builtin_memcpy(f->dmac, fib.dmac, ETH_ALEN);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return VERDICT_REDIRECT;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH && !xdp)
		return VERDICT_REDIRECT_NEIGH;
	count(COUNT_NO_ROUTE);
	return VERDICT_PASS;
}

// forward finishes the decision on a packet to an open port whose entry
// forwards: it routes it, and counts it when it goes.
static __always_inline enum verdict forward(void *ctx, struct port_entry *e, __u16 dport_be, __u16 tot_len,
					    __u32 ifindex, int xdp, struct fwd *f)
{
	f->e = *e;
	enum verdict v = route(ctx, tot_len, ifindex, xdp, f);
	if (v != VERDICT_PASS) {
		__u32 off = bpf_ntohs(dport_be) - port_min;
		struct port_stats *st = bpf_map_lookup_elem(&stats, &off);
		if (st) {
			st->forwarded++;
			st->forwarded_bytes += tot_len;
			st->forwarded_last_ns = bpf_ktime_get_ns();
		}
		count(COUNT_FORWARDED);
	}
	return v;
}

// handle is the program, shared by the XDP and TC entry points (how: the
// HANDLE_ flags); for VERDICT_REDIRECT(_NEIGH) the caller rewrites the
// packet as f says.
static __always_inline enum verdict handle(void *ctx, void *data, void *data_end, __u32 ifindex, __u32 how,
					   struct fwd *f)
{
	int xdp = how & HANDLE_XDP;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return VERDICT_PASS;
	// Up to two VLAN tags (802.1Q, 802.1ad) in front of the IP header are
	// skipped: a tagged frame is filtered as an untagged one, but not
	// forwarded (its next hop would need the tag; userspace relays it).
	// At TC the kernel has taken the outer tag off into the skb already.
	__u16 proto = eth->h_proto;
	__u32 l3 = sizeof(*eth);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_tag *vt = data + l3;
		if ((void *)(vt + 1) > data_end)
			return VERDICT_PASS;
		proto = vt->encapsulated_proto;
		l3 += sizeof(*vt);
	}
	int tagged = l3 != sizeof(*eth) || (how & HANDLE_VLAN);

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + l3;
		if ((void *)(ip + 1) > data_end || ip->ihl < 5)
			return VERDICT_PASS;
		__u32 l4 = l3 + ip->ihl * 4;
		struct udphdr *udp = data + l4;
		int first = !(ip->frag_off & bpf_htons(IP_OFFSET)); // the fragment with the ports
		struct deny_key src;
		key4(&src, ip->saddr);
		__u16 dport = 0; // UDP and TCP both start with the ports
		if (first && (void *)(udp + 1) <= data_end)
			dport = udp->dest;
		if (screen(&src, ip->protocol, dport) == VERDICT_DROP)
			return VERDICT_DROP;
		if (ip->protocol != IPPROTO_UDP || !media_dst4(ip->daddr))
			return VERDICT_PASS;
		if (!first) { // no ports to judge by; reassembly drops it without its head
			count(COUNT_FRAGMENT);
			return VERDICT_PASS;
		}
		if ((void *)(udp + 1) > data_end || !in_range(udp->dest))
			return VERDICT_PASS;
		const __u32 *from = (const __u32 *)src.addr; // IPv4 mapped, as entries hold it
		struct port_entry *e = pinhole(udp->dest, from, udp->source, bpf_ntohs(ip->tot_len));
		if (!e)
			return VERDICT_DROP;
		if (ip->frag_off & bpf_htons(IP_MF)) { // a first fragment to an open port: the stack reassembles
			count(COUNT_FRAGMENT);
			return VERDICT_PASS;
		}
		if (!(e->flags & PORT_FORWARD) || (e->flags & PORT_OUT6) || tagged)
			return VERDICT_PASS;
		if ((e->flags & PORT_FORWARD_PEER) && !is_peer(e, from, udp->source))
			return VERDICT_PASS; // a new source: userspace latches it, or not
		f->l3 = sizeof(*eth);
		f->l4 = l4;
		f->ip6 = 0;
		return forward(ctx, e, udp->dest, bpf_ntohs(ip->tot_len), ifindex, xdp, f);
	}

	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l3;
		if ((void *)(ip6 + 1) > data_end)
			return VERDICT_PASS;
		struct deny_key src;
		key6(&src, &ip6->saddr);
		// Walk up to MAX_EXT extension headers (hop-by-hop, routing,
		// destination options, fragment) to the transport header. Where
		// they go on past the data (at TC: past what is linear), TC pulls
		// the rest and asks again; a packet cut short is judged like a
		// longer chain than we walk.
		__u8 nh = ip6->nexthdr;
		__u32 off = l3 + sizeof(*ip6);
		int first = 1, walked = 1, cut = 0;
#pragma unroll
		for (int i = 0; i < MAX_EXT; i++) {
			if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
				struct ipv6_opt_hdr *h = data + off;
				if ((void *)(h + 1) > data_end) {
					cut = 1;
					break;
				}
				nh = h->nexthdr;
				off += (h->hdrlen + 1) * 8;
			} else if (nh == IPPROTO_FRAGMENT) {
				struct frag_hdr *f = data + off;
				if ((void *)(f + 1) > data_end) {
					cut = 1;
					break;
				}
				nh = f->nexthdr;
				if (f->frag_off & bpf_htons(0xfff8))
					first = 0;
				off += sizeof(*f);
			}
		}
		off &= 0x3fff; // bounds for the verifier: 14 + 40 + MAX_EXT * 2048 fit
		struct udphdr *udp = data + off;
		// UDP and TCP start with the ports; other protocols are not
		// looked into.
		if (!cut && first && (nh == IPPROTO_UDP || nh == IPPROTO_TCP) && (void *)(udp + 1) > data_end)
			cut = 1;
		if (cut && (how & HANDLE_PULL))
			return VERDICT_PULL;
		if (cut || nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT)
			walked = 0; // cut short, or a longer chain than we walk
		__u16 dport = 0;
		if (walked && first && (void *)(udp + 1) <= data_end)
			dport = udp->dest;
		if (screen(&src, nh, dport) == VERDICT_DROP)
			return VERDICT_DROP;
		if (!media_dst6(&ip6->daddr))
			return VERDICT_PASS;
		if (!walked) {
			count(COUNT_CLOSED); // cannot tell the port: closed by default
			return VERDICT_DROP;
		}
		if (nh != IPPROTO_UDP)
			return VERDICT_PASS;
		if (!first) {
			count(COUNT_FRAGMENT);
			return VERDICT_PASS;
		}
		if ((void *)(udp + 1) > data_end || !in_range(udp->dest))
			return VERDICT_PASS;
		const __u32 *from = (const __u32 *)src.addr;
		__u16 tot_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		struct port_entry *e = pinhole(udp->dest, from, udp->source, tot_len);
		if (!e)
			return VERDICT_DROP;
		// Forwarded: UDP right after the fixed header (extension headers
		// go to userspace), with a checksum (zero is invalid in IPv6:
		// the stack drops it).
		if (!(e->flags & PORT_FORWARD) || !(e->flags & PORT_OUT6) || tagged ||
		    off != l3 + sizeof(*ip6) || !udp->check)
			return VERDICT_PASS;
		if ((e->flags & PORT_FORWARD_PEER) && !is_peer(e, from, udp->source))
			return VERDICT_PASS;
		f->l3 = sizeof(*eth);
		f->l4 = sizeof(*eth) + sizeof(*ip6);
		f->ip6 = 1;
		return forward(ctx, e, udp->dest, tot_len, ifindex, xdp, f);
	}
	return VERDICT_PASS;
}

// ttl_word is the 16-bit word holding TTL and protocol with the TTL set to
// relay_ttl.
static __always_inline __u16 ttl_word(__u16 old)
{
	__u8 b[2];
	__builtin_memcpy(b, &old, 2);
	b[0] = relay_ttl;
	__builtin_memcpy(&old, b, 2);
	return old;
}

// rewrite_xdp4 rewrites an IPv4 packet in place; nonzero: it could not.
static __always_inline int rewrite_xdp4(void *data, void *data_end, struct fwd *f)
{
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct udphdr *udp = data + (f->l4 & 0x7f); // the verifier wants a bound: at most 14 + 60
	if ((void *)(ip + 1) > data_end || (void *)(udp + 1) > data_end)
		return -1;
	__u32 saddr = f->e.out_saddr[3], daddr = f->e.out_daddr[3];
	__u16 check = ip->check;
	check = csum_replace32(check, ip->saddr, saddr);
	check = csum_replace32(check, ip->daddr, daddr);
	__u16 *tw = (__u16 *)&ip->ttl, ntw = ttl_word(*tw);
	check = csum_replace16(check, *tw, ntw);
	ip->check = check;
	*tw = ntw;
	if (udp->check) { // 0: the sender did not checksum (IPv4 allows it)
		check = udp->check;
		check = csum_replace32(check, ip->saddr, saddr); // pseudo-header
		check = csum_replace32(check, ip->daddr, daddr);
		check = csum_replace16(check, udp->source, f->e.out_sport);
		check = csum_replace16(check, udp->dest, f->e.out_dport);
		udp->check = check ? check : 0xffff;
	}
	ip->saddr = saddr;
	ip->daddr = daddr;
	udp->source = f->e.out_sport;
	udp->dest = f->e.out_dport;
	return 0;
}

// rewrite_xdp6 rewrites an IPv6 packet (UDP right after the fixed header)
// in place; nonzero: it could not. IPv6 has no header checksum; the UDP
// one covers the addresses through the pseudo-header.
static __always_inline int rewrite_xdp6(void *data, void *data_end, struct fwd *f)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	struct udphdr *udp = (void *)(ip6 + 1);
	if ((void *)(udp + 1) > data_end)
		return -1;
	__u32 *sa = (__u32 *)&ip6->saddr, *da = (__u32 *)&ip6->daddr;
	__u16 check = udp->check;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		check = csum_replace32(check, sa[i], f->e.out_saddr[i]);
		check = csum_replace32(check, da[i], f->e.out_daddr[i]);
	}
	check = csum_replace16(check, udp->source, f->e.out_sport);
	check = csum_replace16(check, udp->dest, f->e.out_dport);
	udp->check = check ? check : 0xffff;
	__builtin_memcpy(sa, f->e.out_saddr, 16);
	__builtin_memcpy(da, f->e.out_daddr, 16);
	ip6->hop_limit = relay_ttl;
	udp->source = f->e.out_sport;
	udp->dest = f->e.out_dport;
	return 0;
}

SEC("xdp")
int xdp_media(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct fwd f;
	switch (handle(ctx, data, data_end, ctx->ingress_ifindex, HANDLE_XDP, &f)) {
	case VERDICT_DROP:
		return XDP_DROP;
	case VERDICT_REDIRECT:
		break;
	default:
		return XDP_PASS;
	}
	// XDP sees checksums as the sender completed them (a NIC delivers
	// whole packets), so they are updated in place (RFC 1624).
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (f.ip6 && rewrite_xdp6(data, data_end, &f))
		return XDP_PASS;
	if (!f.ip6 && rewrite_xdp4(data, data_end, &f))
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, f.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, f.smac, ETH_ALEN);
	if (f.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(f.ifindex, 0);
}

// The headers the program reads: Ethernet, IPv4 with options or IPv6, UDP,
// made linear at first; IPv6 extension headers may go on past that, up to
// PULL_MAX (MAX_EXT of the longest).
#define HEADROOM (sizeof(struct ethhdr) + 2 * sizeof(struct vlan_tag) + 60 + sizeof(struct udphdr))
#define PULL_MAX (sizeof(struct ethhdr) + 2 * sizeof(struct vlan_tag) + 40 + MAX_EXT * 2048 + sizeof(struct udphdr))

// handle_tc is handle on the skb's linear data; a function of its own, not
// inlined, as tc_media may call it twice.
static __noinline enum verdict handle_tc(struct __sk_buff *skb, __u32 how, struct fwd *f)
{
	if (skb->vlan_present)
		how |= HANDLE_VLAN;
	return handle(skb, (void *)(long)skb->data, (void *)(long)skb->data_end, skb->ifindex, how, f);
}

static __always_inline int rewrite_tc4(struct __sk_buff *skb, struct fwd *f)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct udphdr *udp = data + (f->l4 & 0x7f);
	if ((void *)(ip + 1) > data_end || (void *)(udp + 1) > data_end)
		return -1;
	__u32 saddr = ip->saddr, daddr = ip->daddr, nsaddr = f->e.out_saddr[3], ndaddr = f->e.out_daddr[3];
	__u16 sport = udp->source, dport = udp->dest;
	__u16 tw = *(__u16 *)&ip->ttl, ntw = ttl_word(tw);
	__u32 ipc = f->l3 + offsetof(struct iphdr, check);
	__u32 udpc = f->l4 + offsetof(struct udphdr, check);
	// MARK_MANGLED_0: a UDP checksum of 0 (none) stays 0, and one that
	// comes to 0 is written 0xffff (RFC 768).
	__u64 l4f = BPF_F_MARK_MANGLED_0;
	// skb->csum (CHECKSUM_COMPLETE) follows what the helpers change: the
	// header checksum makes up for the addresses and TTL, the UDP one for
	// the ports, unless there is none: then the ports are summed anew.
	__u64 portf = udp->check ? 0 : BPF_F_RECOMPUTE_CSUM;
	if (bpf_l4_csum_replace(skb, udpc, saddr, nsaddr, l4f | BPF_F_PSEUDO_HDR | 4) ||
	    bpf_l4_csum_replace(skb, udpc, daddr, ndaddr, l4f | BPF_F_PSEUDO_HDR | 4) ||
	    bpf_l4_csum_replace(skb, udpc, sport, f->e.out_sport, l4f | 2) ||
	    bpf_l4_csum_replace(skb, udpc, dport, f->e.out_dport, l4f | 2) ||
	    bpf_l3_csum_replace(skb, ipc, saddr, nsaddr, 4) ||
	    bpf_l3_csum_replace(skb, ipc, daddr, ndaddr, 4) ||
	    bpf_l3_csum_replace(skb, ipc, tw, ntw, 2))
		return -1;
	if (bpf_skb_store_bytes(skb, f->l3 + offsetof(struct iphdr, saddr), &nsaddr, 4, 0) ||
	    bpf_skb_store_bytes(skb, f->l3 + offsetof(struct iphdr, daddr), &ndaddr, 4, 0) ||
	    bpf_skb_store_bytes(skb, f->l3 + offsetof(struct iphdr, ttl), &ntw, 2, 0) ||
	    bpf_skb_store_bytes(skb, f->l4 + offsetof(struct udphdr, source), &f->e.out_sport, 2, portf) ||
	    bpf_skb_store_bytes(skb, f->l4 + offsetof(struct udphdr, dest), &f->e.out_dport, 2, portf))
		return -1;
	return 0;
}

static __always_inline int rewrite_tc6(struct __sk_buff *skb, struct fwd *f)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	struct udphdr *udp = (void *)(ip6 + 1);
	if ((void *)(udp + 1) > data_end)
		return -1;
	__u32 sa[4], da[4];
	__builtin_memcpy(sa, &ip6->saddr, 16);
	__builtin_memcpy(da, &ip6->daddr, 16);
	__u16 sport = udp->source, dport = udp->dest;
	__u8 hops = relay_ttl;
	__u32 udpc = f->l4 + offsetof(struct udphdr, check);
	// A UDP checksum that comes to 0 is written 0xffff: 0 means none,
	// which IPv6 receivers drop (RFC 8200, 8.1). Forwarded packets have one.
	__u64 l4f = BPF_F_MARK_MANGLED_0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (bpf_l4_csum_replace(skb, udpc, sa[i], f->e.out_saddr[i], l4f | BPF_F_PSEUDO_HDR | 4) ||
		    bpf_l4_csum_replace(skb, udpc, da[i], f->e.out_daddr[i], l4f | BPF_F_PSEUDO_HDR | 4))
			return -1;
	}
	if (bpf_l4_csum_replace(skb, udpc, sport, f->e.out_sport, l4f | 2) ||
	    bpf_l4_csum_replace(skb, udpc, dport, f->e.out_dport, l4f | 2))
		return -1;
	// No header checksum makes up for the addresses and hop limit in
	// skb->csum (CHECKSUM_COMPLETE): they are summed anew. The UDP one
	// makes up for the ports.
	if (bpf_skb_store_bytes(skb, f->l3 + offsetof(struct ipv6hdr, saddr), f->e.out_saddr, 16, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, f->l3 + offsetof(struct ipv6hdr, daddr), f->e.out_daddr, 16, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, f->l3 + offsetof(struct ipv6hdr, hop_limit), &hops, 1, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, f->l4 + offsetof(struct udphdr, source), &f->e.out_sport, 2, 0) ||
	    bpf_skb_store_bytes(skb, f->l4 + offsetof(struct udphdr, dest), &f->e.out_dport, 2, 0))
		return -1;
	return 0;
}

// rewrite_tc rewrites through the helpers, which also keep a checksum the
// sender left to the device (CHECKSUM_PARTIAL, as from a local socket over
// a veth) right. Nonzero: the packet could not be rewritten.
static __always_inline int rewrite_tc(struct __sk_buff *skb, struct fwd *f, int macs)
{
	if (f->ip6 ? rewrite_tc6(skb, f) : rewrite_tc4(skb, f))
		return -1;
	if (macs && (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), f->dmac, ETH_ALEN, 0) ||
		     bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), f->smac, ETH_ALEN, 0)))
		return -1;
	return 0;
}

SEC("tc")
int tc_media(struct __sk_buff *skb)
{
	// Make the headers linear for direct access; a short packet stays as it is.
	bpf_skb_pull_data(skb, skb->len < HEADROOM ? skb->len : HEADROOM);
	struct fwd f;
	enum verdict v = handle_tc(skb, HANDLE_PULL, &f);
	if (v == VERDICT_PULL) {
		// IPv6 extension headers past HEADROOM: the rest of them too (a
		// failed pull leaves the packet cut short for handle).
		bpf_skb_pull_data(skb, skb->len < PULL_MAX ? skb->len : PULL_MAX);
		v = handle_tc(skb, 0, &f);
	}
	switch (v) {
	case VERDICT_DROP:
		return TC_ACT_SHOT;
	case VERDICT_REDIRECT:
	case VERDICT_REDIRECT_NEIGH:
		break;
	default:
		return TC_ACT_OK;
	}
	if (rewrite_tc(skb, &f, v == VERDICT_REDIRECT))
		return TC_ACT_SHOT; // half rewritten: nothing sane to pass on
	if (v == VERDICT_REDIRECT)
		return bpf_redirect(f.ifindex, 0);
	return bpf_redirect_neigh(f.ifindex, 0, 0, 0);
}

char _license[] SEC("license") = "Dual BSD/GPL";
