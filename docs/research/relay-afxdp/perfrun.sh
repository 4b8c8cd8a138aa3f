#!/bin/bash
# perfrun.sh OUT bench-args... : perf-record (-g) the relay child for 4 s in
# the middle of a 500-call run inside the afxdp namespace, then print the
# kernel/user functions that matter (children = inclusive).
out=$1; shift
ip netns exec afxdp taskset -c 0 ./steer bench -relaycpu 1 -calls 500 -warm 2s -dur 6s "$@" > $out.txt 2>&1 &
sleep 3
G=$(pgrep -f "steer bench" | tail -1); P=$(pgrep -P $G)
timeout 20 perf record -F 1999 -e cpu-clock -g -p $P -o $out.data -- sleep 4 >/dev/null 2>&1
wait
cat $out.txt
perf report -i $out.data --children --sort sym --stdio -g none 2>/dev/null | grep -v "^$" | grep -v "^#" | grep -E "__x64_sys|main\.|runtime\.(netpoll|schedule|findRunnable|mcall|park_m|sysmon)|net_rx_action|raw_sendmsg|udp_sendmsg|udp_recvmsg|sk_lookup|ip_route_output|ip_route_input|__dev_queue_xmit|__dev_direct_xmit|ip_local_out|try_to_wake_up|finish_task_switch|handle_softirqs|schedule$|xsk_|do_xdp_generic|bpf_prog_run_generic_xdp|netif_receive_generic_xdp|pskb_expand_head|skb_cow|ip_rcv|__udp4_lib_rcv|udp_queue_rcv|sock_def_readable|csum_partial|memcpy|loopback_xmit|ep_poll|do_sys_poll|entry_SYSCALL|xdp_do_generic_redirect|__netif_receive_skb|process_backlog|alloc_skb" | head -60
