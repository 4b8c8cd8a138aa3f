// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// XDP: redirect UDP/IPv4 to relay_ip4 and [port_min, port_max] into the
// AF_XDP socket of the receive queue (XSKMAP keyed by rx_queue_index);
// everything else continues up the stack (XDP_PASS).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// Set from Go (CollectionSpec.Variables) before loading.
volatile const __u32 port_min = 20000;
volatile const __u32 port_max = 29999;
volatile const __u32 relay_ip4 = 0; // network byte order

SEC("xdp")
int xsk_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP ||
	    ip->daddr != relay_ip4 || (ip->frag_off & bpf_htons(0x3fff)))
		return XDP_PASS; // options or fragments: let the kernel handle them
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_PASS;
	__u32 port = bpf_ntohs(udp->dest);
	if (port < port_min || port > port_max)
		return XDP_PASS;
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
