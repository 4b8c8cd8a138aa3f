#!/bin/bash
# matrix-rps.sh: side experiment. RPS on the namespace's lo steers every
# received packet's softirq work to CPU0 (the generator's CPU), so the
# relay on CPU1 no longer runs the generator's receive path inside its own
# send call (the loopback billing effect); it pays the enqueue + IPI instead.
# Interleaved B / C, REPS rounds. Output: results-rps.jsonl.
cd /tmp/afxdp
export RES=${RES:-results-rps.jsonl}
ip netns exec afxdp sh -c 'echo 1 > /sys/class/net/lo/queues/rx-0/rps_cpus'
for rep in $(seq 1 ${REPS:-3}); do
  ./run.sh "B raw netpoll, lo RPS->CPU0" B "-send raw -rx netpoll -rawsys" -calls 500 -warm 2s -dur 8s 2>&1 | grep -v '^{'
  ./run.sh "C xsk-TX netpoll, lo RPS->CPU0" C "-send xsk -rx netpoll -rawsys" -calls 500 -warm 2s -dur 8s 2>&1 | grep -v '^{'
done
ip netns exec afxdp sh -c 'echo 0 > /sys/class/net/lo/queues/rx-0/rps_cpus'
echo RPS DONE
