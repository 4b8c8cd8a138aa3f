#!/bin/bash
# matrix.sh: interleaved B / C runs at 500 calls (50,000 relayed pkt/s),
# generator on CPU0, relay on CPU1, 2 s warm-up + 8 s measurement, REPS
# rounds; every round runs each configuration once, in this order.
# Output: results-final.jsonl (summarise.py). Build in /tmp/afxdp first.
cd /tmp/afxdp
export RES=${RES:-results-final.jsonl}
for rep in $(seq 1 ${REPS:-5}); do
while IFS='|' read l d r ns; do
  [ -z "$l" ] && continue
  NS=${ns:-afxdp} ./run.sh "$l" $d "$r" -calls 500 -warm 2s -dur 8s 2>&1 | grep -v '^{'
done <<'CFG'
B raw netpoll RawSyscall|B|-send raw -rx netpoll -rawsys|
C xsk-TX netpoll RawSyscall|C|-send xsk -rx netpoll -rawsys|
C xsk-RX + raw sendmmsg netpoll|C|-send raw -rx netpoll -rawsys|
C xsk-TX blocking poll()|C|-send xsk -rx poll -rawsys|
B raw netpoll (host netns)|B|-send raw -rx netpoll -rawsys|host
CFG
done
echo MATRIX DONE
