#!/bin/bash
# matrix.sh: the final comparison, 3 runs each at 500 calls (50,000 relayed pkt/s),
# generator pinned to CPU0, relay pinned to CPU1; then 2 runs each at 1000 calls
# with the relay free on both CPUs. Output: results-final.jsonl (summarise.py).
cd /tmp/steer
export RES=results-final.jsonl
for rep in 1 2 3; do
while IFS='|' read l d r; do
  [ -z "$l" ] && continue
  ./run.sh "$l" $d "$r" -calls 500 -warm 2s -dur 8s 2>&1 | grep -v '^{'
done <<'CFG'
direct|direct|
A|A|
B raw netpoll RawSyscall|B|-send raw -rx netpoll -rawsys
B raw netpoll Syscall|B|-send raw -rx netpoll
B rawnocsum netpoll RawSyscall|B|-send rawnocsum -rx netpoll -rawsys
B mark+tc netpoll RawSyscall|B|-send mark -rx netpoll -rawsys
B raw poll200us RawSyscall|B|-send raw -rx poll -interval 200us -rawsys
B raw block|B|-send raw -rx block
B udp WRONG-PORT floor|B|-send udp -rx netpoll -rawsys
CFG
done
for rep in 1 2; do
  RELAYCPU=0,1 ./run.sh "A @1000" A "" -calls 1000 -warm 2s -dur 8s 2>&1 | grep -v '^{'
  RELAYCPU=0,1 ./run.sh "B raw 2w @1000" B "-send raw -rx netpoll -rawsys -workers 2" -calls 1000 -warm 2s -dur 8s 2>&1 | grep -v '^{'
done
echo MATRIX DONE
