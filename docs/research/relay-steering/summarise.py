#!/usr/bin/env python3
"""summarise.py results-final.jsonl: median (min-max) per configuration."""
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1] if len(sys.argv) > 1 else "results-final.jsonl") if l.strip()]
by = {}
for r in rows:
    by.setdefault((r["label"], r["calls"]), []).append(r)
def f(rs, k, fmt="%.2f"):
    v = sorted(x[k] for x in rs)
    return (fmt % st.median(v)) + (" (" + fmt % v[0] + "–" + fmt % v[-1] + ")" if len(v) > 1 else "")
print("| design | calls | runs | relay CPU µs/pkt | relay CPU % | pkts/recvmmsg | ctx sw/pkt | loss % | p50 µs | p99 µs | p99.9 µs | noisy runs kept |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (label, calls), rs in by.items():
    noisy = sum(1 for x in rs if x["steal_pct"] > 3 or x["foreign_cpu_pct"] > 8)
    print("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (label, calls, len(rs),
        f(rs, "relay_cpu_us_per_pkt"), f(rs, "relay_cpu_pct", "%.0f"), f(rs, "pkts_per_recvmmsg", "%.1f"),
        f(rs, "relay_ctxsw_per_pkt", "%.3f"), f(rs, "loss_pct", "%.3f"), f(rs, "p50_us", "%.0f"), f(rs, "p99_us", "%.0f"),
        f(rs, "p999_us", "%.0f"), noisy))
