#!/bin/bash
# perfrun.sh OUT bench-args... : perf-record the relay child for 4 s in the middle of a run
out=$1; shift
taskset -c 0 ./steer bench -relaycpu 1 "$@" > $out.txt 2>&1 &
sleep 2.5
G=$(pgrep -f "steer bench" | tail -1); P=$(pgrep -P $G)
timeout 20 perf record -F 999 -e cpu-clock -g -p $P -o $out.data -- sleep 4 >/dev/null 2>&1
wait
cat $out.txt
perf report -i $out.data --children --sort sym --stdio -g none 2>/dev/null | grep -v "^$" | grep -v "^#" | grep -E "__x64_sys|main\.|runtime\.(netpoll|schedule|findRunnable|mcall|park_m|sysmon|gcBgMark|mallocgc)|net_rx_action|raw_sendmsg|udp_sendmsg|udp_recvmsg|sk_lookup|ip_route_output|__dev_queue_xmit|ip_local_out|try_to_wake_up|finish_task_switch|handle_softirqs|schedule$" | head -40
