#!/bin/bash
# run.sh LABEL DESIGN "RELAY FLAGS" [extra bench flags]
# Waits until the machine is quiet (other sessions share it), runs the
# bench pinned (generator CPU0, relay CPU1) inside the network namespace
# $NS (default afxdp; NS=host = the host namespace), retries up to 3 times
# when steal > 3% or foreign CPU > 8%. Appends JSON to $RES.
label=$1; design=$2; rflags=$3; shift 3
NS=${NS:-afxdp}
quiet() {
  for i in $(seq 1 60); do
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    tot=0; for k in 1 2 3 4 5 6 7 8; do tot=$((tot + ${b[$k]} - ${a[$k]})); done
    idle=$(( ${b[4]} - ${a[4]} + ${b[5]} - ${a[5]} ))
    if [ $(( (tot - idle) * 100 / (tot>0?tot:1) )) -lt 8 ]; then return 0; fi
  done; return 1
}
if [ "$NS" = host ]; then pre=""; else pre="ip netns exec $NS"; fi
for try in 1 2 3; do
  quiet || echo "machine not quiet" >&2
  out=$($pre taskset -c 0 timeout 90 ./steer bench -json -label "$label" -design $design -relaycpu ${RELAYCPU:-1} -relay "$rflags" "$@")
  js=$(echo "$out" | head -1)
  echo "$out" | tail -1 >&2
  ok=$(echo "$js" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(1 if r["steal_pct"]<=3 and r["foreign_cpu_pct"]<=8 else 0)')
  if [ "$ok" = 1 ] || [ $try = 3 ]; then echo "$js" | python3 -c "import json,sys,time; r=json.load(sys.stdin); r['try']=$try; r['ns']='$NS'; r['t']=time.strftime('%H:%M:%S'); print(json.dumps(r))" >> ${RES:-results.jsonl}; break; fi
  echo "retry ($label): noisy" >&2
done
