// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// sk_lookup: steer every UDP/IPv4 datagram addressed to [port_min, port_max]
// (optionally only on local_ip4) to one of nsocks sockets held in a SOCKMAP.
// The socket is chosen by destination port, so one stream always lands on
// the same socket (= same worker): per-stream order is kept.
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} socks SEC(".maps");

// Set from Go (CollectionSpec.Variables) before loading.
volatile const __u32 port_min = 20000;
volatile const __u32 port_max = 29999;
volatile const __u32 nsocks = 1;
volatile const __u32 local_ip4 = 0; // network byte order; 0 = any local address

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
	if (ctx->family != 2 /* AF_INET */ || ctx->protocol != IPPROTO_UDP)
		return SK_PASS; // not ours: regular socket lookup
	__u32 port = ctx->local_port; // host byte order
	if (port < port_min || port > port_max)
		return SK_PASS;
	if (local_ip4 && ctx->local_ip4 != local_ip4)
		return SK_PASS;

	__u32 key = port % nsocks;
	struct bpf_sock *sk = bpf_map_lookup_elem(&socks, &key);
	if (!sk)
		return SK_PASS; // no worker socket: regular lookup (ICMP unreachable)
	long err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
