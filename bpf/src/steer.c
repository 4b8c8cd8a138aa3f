// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// sk_lookup: deliver every UDP/IPv4 datagram addressed to an open port of
// the media range to one of a few sockets held in a SOCKMAP, so the relay
// needs a handful of sockets instead of one per port. The original
// destination reaches userspace through IP_RECVORIGDSTADDR.
//
// ports[port - port_min] is 0 for a closed port (regular socket lookup: no
// socket, so ICMP port unreachable) or 1 + the index in socks of the socket
// that takes the port. One port always lands on one socket, which keeps each
// stream's packets in order.
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} socks SEC(".maps");

// max_entries is set from Go to the size of the range before loading.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ports SEC(".maps");

// Set from Go before loading.
volatile const __u32 port_min = 0;
volatile const __u32 port_max = 0;
volatile const __u32 local_ip4 = 0; // network byte order; 0 = every local address

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
	if (ctx->family != AF_INET || ctx->protocol != IPPROTO_UDP)
		return SK_PASS;
	__u32 port = ctx->local_port; // host byte order
	if (port < port_min || port > port_max)
		return SK_PASS;
	if (local_ip4 && ctx->local_ip4 != local_ip4)
		return SK_PASS;

	__u32 off = port - port_min;
	__u32 *slot = bpf_map_lookup_elem(&ports, &off);
	if (!slot || *slot == 0)
		return SK_PASS; // closed: regular lookup
	__u32 key = *slot - 1;
	struct bpf_sock *sk = bpf_map_lookup_elem(&socks, &key);
	if (!sk)
		return SK_PASS;
	long err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
