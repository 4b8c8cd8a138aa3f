#!/bin/bash
# matrix-wake.sh: the wake-up mechanism, interleaved. netpoll = Go netpoller
# (epoll) as in matrix.sh; rawblock / rawpoll = a locked OS thread blocking in
# recvmmsg(MSG_WAITFORONE) / poll() entered by RawSyscall, so the Go runtime
# neither parks the goroutine nor hands the P to another thread (with
# GOMAXPROCS=1 other goroutines wait until the call returns: fine for a
# dedicated worker, not for a general-purpose process). REPS rounds.
# Output: results-wake.jsonl.
cd /tmp/afxdp
export RES=${RES:-results-wake.jsonl}
for rep in $(seq 1 ${REPS:-4}); do
while IFS='|' read l d r; do
  [ -z "$l" ] && continue
  ./run.sh "$l" $d "$r" -calls 500 -warm 2s -dur 8s 2>&1 | grep -v '^{'
done <<'CFG'
B raw netpoll|B|-send raw -rx netpoll -rawsys
C xsk-TX netpoll|C|-send xsk -rx netpoll -rawsys
B raw rawblock (RawSyscall recvmmsg)|B|-send raw -rx rawblock -rawsys
C xsk-TX rawpoll (RawSyscall poll)|C|-send xsk -rx rawpoll -rawsys
CFG
done
echo WAKE DONE
