// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tc egress: a UDP/IPv4 datagram whose skb->mark is MAGIC|port leaves with
// UDP source port = port. Lets one UDP socket send "from" any media port:
// userspace sets the mark per datagram with an SO_MARK control message.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MARK_MAGIC 0x5b0c0000u
#define MARK_MASK  0xffff0000u
#define UDP_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr))

SEC("tc")
int srcport(struct __sk_buff *skb)
{
	__u32 m = skb->mark;
	if ((m & MARK_MASK) != MARK_MAGIC)
		return TC_ACT_OK;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	__be16 old = udp->source;
	__be16 new = bpf_htons(m & 0xffff);
	// Port is not in the pseudo header; helper handles CHECKSUM_PARTIAL.
	bpf_l4_csum_replace(skb, UDP_OFF + offsetof(struct udphdr, check), old, new,
			    BPF_F_MARK_MANGLED_0 | sizeof(new));
	bpf_skb_store_bytes(skb, UDP_OFF + offsetof(struct udphdr, source), &new, sizeof(new), 0);
	skb->mark = 0;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
