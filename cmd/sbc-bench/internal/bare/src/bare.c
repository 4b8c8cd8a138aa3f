// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The bare forwarder of sbc-bench: the least an XDP program can do to
// relay a UDP stream, as the yardstick of the kernel fast path's cost
// (issue 4: "within 10 % of a bare forwarder"). For IPv4 UDP whose
// destination port has an entry, it rewrites addresses and ports, fixes
// both checksums incrementally, writes the Ethernet addresses and sends the
// frame out of the entry's interface. No filtering, no counters, no TTL.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct entry {
	__u32 saddr, daddr; // network order
	__u16 sport, dport; // network order
	__u32 ifindex;
	__u8 smac[ETH_ALEN];
	__u8 dmac[ETH_ALEN];
};

// Keyed by destination port, host order.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct entry);
} fwd SEC(".maps");

static __always_inline __u16 csum16(__u16 check, __u16 from, __u16 to)
{
	__u32 sum = (__u16)~check;
	sum += (__u16)~from;
	sum += to;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u16 csum32(__u16 check, __u32 from, __u32 to)
{
	return csum16(csum16(check, (__u16)from, (__u16)to), (__u16)(from >> 16), (__u16)(to >> 16));
}

SEC("xdp")
int xdp_bare(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	__u32 key = bpf_ntohs(udp->dest);
	struct entry *e = bpf_map_lookup_elem(&fwd, &key);
	if (!e)
		return XDP_PASS;
	ip->check = csum32(csum32(ip->check, ip->saddr, e->saddr), ip->daddr, e->daddr);
	if (udp->check) {
		__u16 c = csum32(csum32(udp->check, ip->saddr, e->saddr), ip->daddr, e->daddr);
		c = csum16(csum16(c, udp->source, e->sport), udp->dest, e->dport);
		udp->check = c ? c : 0xffff;
	}
	ip->saddr = e->saddr;
	ip->daddr = e->daddr;
	udp->source = e->sport;
	udp->dest = e->dport;
	__builtin_memcpy(eth->h_source, e->smac, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, e->dmac, ETH_ALEN);
	if (e->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(e->ifindex, 0);
}
