#!/usr/bin/env python3
"""summarise.py results-final.jsonl [BASE-LABEL]: median (min-max) per
configuration, and the per-round ratio of each configuration to the BASE
run of the same round (default: the first row's label; rows are in run
order; a round starts at each row labelled like the first)."""
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1] if len(sys.argv) > 1 else "results-final.jsonl") if l.strip()]
by, rounds = {}, []
for r in rows:
    by.setdefault(r["label"], []).append(r)
    if not rounds or r["label"] == rows[0]["label"]:
        rounds.append({})
    rounds[-1][r["label"]] = r
def f(rs, k, fmt="%.2f"):
    v = sorted(x.get(k, 0) for x in rs)
    return (fmt % st.median(v)) + (" (" + fmt % v[0] + "–" + fmt % v[-1] + ")" if len(v) > 1 else "")
base = sys.argv[2] if len(sys.argv) > 2 else rows[0]["label"]
print("| design | runs | relay CPU µs/pkt | ratio to " + base + ", same round | generator µs/pkt | whole machine µs/pkt | pkts/wake-up | TX kicks/pkt | loss % (max) | p50 µs | p99 µs | ksoftirqd0+1 µs/pkt | steal % | foreign CPU % | load1 |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for label, rs in by.items():
    ratios = sorted(rd[label]["relay_cpu_us_per_pkt"] / rd[base]["relay_cpu_us_per_pkt"] for rd in rounds if label in rd and base in rd)
    rat = "%.2f (%.2f–%.2f)" % (st.median(ratios), ratios[0], ratios[-1]) if ratios else "–"
    for x in rs:
        x["ksi"] = x.get("ksoftirqd0_us_per_pkt", 0) + x.get("ksoftirqd1_us_per_pkt", 0)
    print("| %s | %d | %s | %s | %s | %s | %s | %s | %.3f | %s | %s | %s | %s | %s | %s |" % (label, len(rs),
        f(rs, "relay_cpu_us_per_pkt"), rat, f(rs, "gen_cpu_us_per_pkt"), f(rs, "system_cpu_us_per_pkt"), f(rs, "pkts_per_wakeup", "%.1f"), f(rs, "tx_kicks_per_pkt"),
        max(x["loss_pct"] for x in rs), f(rs, "p50_us", "%.0f"), f(rs, "p99_us", "%.0f"), f(rs, "ksi"),
        f(rs, "steal_pct", "%.1f"), f(rs, "foreign_cpu_pct", "%.0f"), f(rs, "loadavg1")))
bad = [(r["label"], r["bad"], r.get("udp_in_csum_errors"), r.get("udp_in_errors"), r.get("xsk_rx_ring_full")) for r in rows
       if r["bad"] or r.get("udp_in_csum_errors") or r.get("udp_in_errors") or r.get("xsk_rx_ring_full") or r["loss_pct"] > 0]
print("\nruns with loss / bad ports / UDP csum or input errors / XSK ring full:", bad or "none")
