#!/usr/bin/env python3
"""Plots and tables from criterion's saved estimates (no third-party modules).

Reads target/criterion/<workload>/<impl>/<threads>/<dir>/{estimates,benchmark}.json
(written by `cargo bench --bench throughput`) and
target/criterion/memory/memory.json (written by `cargo bench --bench memory`),
writes one SVG bar chart per workload plus memory.svg into the output folder,
and prints the Markdown tables used in docs/BENCHMARKS.md.

Throughput is operations per second from criterion's *median* time per
iteration (one iteration = one operation on each of the benchmark's threads),
the statistic least moved by other processes on a shared machine.

Usage: scripts/plot_benches.py [--criterion DIR] [--out DIR] [--dir new]
                               [--title-suffix TEXT]
       scripts/plot_benches.py --runs DIR [DIR ...]
           (no plots: ours ÷ each peer in each run's copy of target/criterion,
            for the cells the issue's targets name, and the median over runs)
"""

import argparse
import glob
import json
import os
import sys
from xml.sax.saxutils import escape

WORKLOADS = ["read_heavy", "write_heavy", "churn", "hot_keys", "get"]
IMPLS = [
    "ours",
    "openssl",
    "rustls",
    "moka",
    "quick_cache",
    "dashmap",
    "mutex_hashmap",
    "hashbrown_unsync",
]
COLORS = {
    "ours": "#d62728",
    "openssl": "#1f77b4",
    "rustls": "#ff7f0e",
    "moka": "#9467bd",
    "quick_cache": "#2ca02c",
    "dashmap": "#8c564b",
    "mutex_hashmap": "#7f7f7f",
    "hashbrown_unsync": "#17becf",
}
TITLES = {
    "read_heavy": "read-heavy: 90% get / 9% replace / 1% remove",
    "write_heavy": "write-heavy: 50% get / 40% replace / 10% remove",
    "churn": "handshake churn: 50% add of a new id (evicts) / 50% get of a recent id",
    "hot_keys": "hot keys: lookups, Zipf s = 1.0 over 16 384 ids",
    "get": "get: lookups, uniform over 16 384 ids, 1 thread",
}


def load(crit, sub):
    """{(workload, impl, threads): ops_per_sec}"""
    res = {}
    for est in glob.glob(os.path.join(crit, "*", "*", "*", sub, "estimates.json")):
        parts = est.split(os.sep)
        w, impl, t = parts[-5], parts[-4], parts[-3]
        if w not in WORKLOADS or not t.isdigit():
            continue
        with open(est) as f:
            e = json.load(f)
        bj = os.path.join(os.path.dirname(est), "benchmark.json")
        elems = int(t)
        if os.path.exists(bj):
            with open(bj) as f:
                b = json.load(f)
            thr = b.get("throughput") or {}
            elems = thr.get("Elements", elems)
        ns = e["median"]["point_estimate"]
        res[(w, impl, int(t))] = elems / (ns * 1e-9)
    return res


def fmt_ops(x):
    if x == 0:
        return "0"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    return f"{x / 1e3:.0f} k"


def fmt_axis(x):
    if x == 0:
        return "0"
    if x >= 1e6:
        return f"{round(x / 1e6, 3):g} M"
    return f"{round(x / 1e3):g} k"


def nice_max(v):
    import math

    if v <= 0:
        return 1
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def bar_chart(path, title, groups, series, values, ylabel, fmt):
    """groups: x labels; series: bar names; values[(g, s)] -> float or None."""
    W, H = 900, 420
    left, right, top, bottom = 70, 180, 40, 50
    pw, ph = W - left - right, H - top - bottom
    vmax = nice_max(max([v for v in values.values() if v] + [1e-9]) * 1.05)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for i in range(6):
        v = vmax * i / 5
        y = top + ph - ph * i / 5
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(v))}</text>')
    out.append(
        f'<text x="16" y="{top + ph / 2}" transform="rotate(-90 16 {top + ph / 2})" '
        f'text-anchor="middle">{escape(ylabel)}</text>'
    )
    gw = pw / max(len(groups), 1)
    present = [s for s in series if any(values.get((g, s)) for g in groups)]
    bw = gw * 0.8 / max(len(present), 1)
    for gi, g in enumerate(groups):
        x0 = left + gi * gw + gw * 0.1
        k = 0
        for s in present:
            v = values.get((g, s))
            if v:
                h = ph * v / vmax
                x = x0 + k * bw
                out.append(
                    f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{bw * 0.92:.1f}" '
                    f'height="{h:.1f}" fill="{COLORS.get(s, "#333")}"><title>{escape(s)}: '
                    f"{escape(fmt(v))}</title></rect>"
                )
            k += 1
        out.append(
            f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top + ph + 20}" '
            f'text-anchor="middle">{escape(str(g))}</text>'
        )
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>')
    for k, s in enumerate(present):
        y = top + 10 + k * 20
        out.append(f'<rect x="{left + pw + 15}" y="{y - 10}" width="12" height="12" fill="{COLORS.get(s, "#333")}"/>')
        out.append(f'<text x="{left + pw + 32}" y="{y}">{escape(s)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def runs_table(dirs, sub):
    import statistics

    runs = [load(d, sub) for d in dirs]
    cells = [("read_heavy", 2), ("write_heavy", 2), ("read_heavy", 1), ("write_heavy", 1), ("get", 1)]
    for w, t in cells:
        print(f"\n#### {w}, {t} thread{'s' if t > 1 else ''}: ours ÷ peer per run\n")
        print("| peer | " + " | ".join(f"run {k + 1}" for k in range(len(runs))) + " | median |")
        print("|---|" + "---:|" * (len(runs) + 1))
        for i in IMPLS[1:]:
            rs = []
            for r in runs:
                o, p = r.get((w, "ours", t)), r.get((w, i, t))
                rs.append(o / p if o and p else None)
            vals = [x for x in rs if x]
            if not vals:
                continue
            med = statistics.median(vals)
            print(f"| {i} | " + " | ".join(f"{x:.2f}×" if x else "–" for x in rs) + f" | **{med:.2f}×** |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", nargs="+", help="copies of target/criterion from repeated runs")
    ap.add_argument("--criterion", default="target/criterion")
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--dir", default="new", help="criterion result folder (new, base, or a baseline name)")
    ap.add_argument("--title-suffix", default="")
    a = ap.parse_args()
    if a.runs:
        runs_table(a.runs, a.dir)
        return
    res = load(a.criterion, a.dir)
    if not res:
        sys.exit(f"no estimates under {a.criterion}/*/*/*/{a.dir}/")
    os.makedirs(a.out, exist_ok=True)

    for w in WORKLOADS:
        threads = sorted({t for (ww, _, t) in res if ww == w})
        if not threads:
            continue
        vals = {(f"{t} thread{'s' if t > 1 else ''}", i): res.get((w, i, t)) for t in threads for i in IMPLS}
        groups = [f"{t} thread{'s' if t > 1 else ''}" for t in threads]
        bar_chart(
            os.path.join(a.out, f"{w}.svg"),
            TITLES[w] + a.title_suffix,
            groups,
            IMPLS,
            vals,
            "operations per second (all threads)",
            fmt_axis,
        )

        # Markdown: ops/s per impl and thread count, then ours / peer.
        impls = [i for i in IMPLS if any((w, i, t) in res for t in threads)]
        print(f"\n#### {w}\n")
        print("| implementation | " + " | ".join(f"{t} thr" for t in threads) + " |")
        print("|---|" + "---:|" * len(threads))
        for i in impls:
            print(f"| {i} | " + " | ".join(fmt_ops(res[(w, i, t)]) + "/s" if (w, i, t) in res else "–" for t in threads) + " |")
        print()
        print("| ours ÷ peer | " + " | ".join(f"{t} thr" for t in threads) + " |")
        print("|---|" + "---:|" * len(threads))
        for i in impls:
            if i == "ours":
                continue
            cells = []
            for t in threads:
                o, p = res.get((w, "ours", t)), res.get((w, i, t))
                cells.append(f"{o / p:.2f}×" if o and p else "–")
            print(f"| {i} | " + " | ".join(cells) + " |")

    mem = os.path.join(a.criterion, "memory", "memory.json")
    if os.path.exists(mem):
        with open(mem) as f:
            rows = json.load(f)
        ns = sorted({r["entries"] for r in rows})
        vals = {(f"{n} entries", r["impl"]): r["overhead"] for n in ns for r in rows if r["entries"] == n}
        bar_chart(
            os.path.join(a.out, "memory.svg"),
            "bytes per cached entry beyond the 128-byte payload (lower is better)",
            [f"{n} entries" for n in ns],
            IMPLS,
            vals,
            "bytes per entry",
            lambda v: f"{v:.0f}",
        )
        print("\n#### memory\n")
        print("| implementation | entries | total B/entry | beyond payload | added by insert | allocations/entry |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['impl']} | {r['entries']} | {r['total']:.0f} | {r['overhead']:.0f} | "
                f"{r['container']:.0f} | {r['allocs']:.2f} |"
            )


if __name__ == "__main__":
    main()
