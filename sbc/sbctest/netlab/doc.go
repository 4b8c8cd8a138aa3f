// Package netlab builds, for one test, the network the kernel fast path's
// end-to-end tests run on: three fresh network namespaces joined by two veth
// pairs, with the SBC's namespace in the middle.
//
//	  carrier                  sbc                    customer
//	+----------------+   +-------------------+   +----------------+
//	| to-sbc         |---| to-carrier        |   |                |
//	| 198.51.100.2   |   | 198.51.100.1      |   |                |
//	| 2001:db8:1::2  |   | 2001:db8:1::1     |   |                |
//	|                |   |       to-customer |---| to-sbc         |
//	|                |   |       203.0.113.1 |   | 203.0.113.2    |
//	|                |   |     2001:db8:2::1 |   | 2001:db8:2::2  |
//	+----------------+   +-------------------+   +----------------+
//	 default route via    forwarding OFF          default route via
//	 198.51.100.1,                                203.0.113.1,
//	 2001:db8:1::1                                2001:db8:2::1
//
// IP forwarding is off in the sbc namespace, so a packet crosses from carrier
// to customer only through a relay running there (the daemon, or its XDP/TC
// programs), never by kernel routing. The addresses are documentation ranges
// (RFC 5737, RFC 3849), used only inside the lab's namespaces; IPv6 addresses
// skip duplicate address detection, so they are usable at once. The leaves
// compute UDP and TCP checksums in software (checksum offload off on their
// veths), as packets from a real NIC arrive: with offload on, a veth hands the
// sbc's interface frames whose checksum field holds only the pseudo-header
// sum, which an XDP program forwarding the frame would send on unfixed.
// Every veth end has GRO on, which gives its receive side the NAPI instance
// that a frame an XDP program redirects into its peer needs (without it the
// kernel drops such frames; real NICs have their own). The leaves' ends run
// an XDP program that passes everything: a veth delivers what an XDP
// program on the sbc's end sends back out of the same interface (XDP_TX)
// only into a peer that runs XDP.
//
// [New] touches nothing in the host's network namespace: each veth pair is
// created inside the sbc namespace with its peer placed straight in the leaf's.
// Each namespace is mounted under /var/run/netns as `ip netns add` mounts it,
// so external peers (sipp, tshark, …) run in it with `ip netns exec NAME`
// ([Namespace.Command]). Names are [Prefix], a random suffix shared by the
// lab's three namespaces, and the role: parallel tests and a crashed run's
// leftovers never collide. A crashed run's leftovers can be listed with
// `ip netns list | grep ^netlab-` and removed with `ip netns delete NAME`.
//
// It needs Linux and root (CAP_SYS_ADMIN, CAP_NET_ADMIN); without them New
// fails the test rather than skipping it, since real-peer tests must run
// under `make test`.
package netlab
