#!/usr/bin/env python3
"""Plots a soak run's resident memory (the CSV of scripts/soak.sh) as an SVG.

    scripts/plot_soak.py CSV SVG [--title TEXT] [--warmup SECONDS]

Standard library only. Prints the figures docs/SOAK.md quotes: RSS at 1, 5 and 10
minutes (the sample nearest each, where the run lasted that long), the peak, and
the least-squares slope of RSS after the warm-up (default: the first 60 s).
"""
import argparse
import csv
from xml.sax.saxutils import escape


def load(path):
    with open(path, newline="") as f:
        rows = [(float(r["elapsed_s"]), int(r["rss_kib"])) for r in csv.DictReader(f)]
    if not rows:
        raise SystemExit(f"{path}: no samples")
    return rows


def slope(points):
    """Least-squares slope (KiB per second) of (t, kib) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mk = sum(k for _, k in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (k - mk) for t, k in points) / var if var else 0.0


def at(rows, t):
    if rows[-1][0] < t - 2:
        return None
    return min(rows, key=lambda r: abs(r[0] - t))[1]


def nice_step(span, target=6):
    raw = span / target
    for m in (1, 2, 5, 10):
        for e in range(0, 9):
            if m * 10 ** e >= raw:
                return m * 10 ** e
    return raw


def plot(rows, title, warmup, out):
    W, H, L, R, T, B = 760, 360, 70, 20, 40, 50
    tmax = max(rows[-1][0], 1.0)
    mib = [(t, k / 1024) for t, k in rows]
    ymax = max(m for _, m in mib) * 1.15 or 1.0
    x = lambda t: L + (W - L - R) * t / tmax
    y = lambda m: H - B - (H - T - B) * m / ymax
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>']
    ystep = nice_step(ymax)
    v = 0.0
    while v <= ymax:
        s.append(f'<line x1="{L}" y1="{y(v):.1f}" x2="{W - R}" y2="{y(v):.1f}" stroke="#ddd"/>')
        s.append(f'<text x="{L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += ystep
    xstep = nice_step(tmax)
    t = 0.0
    while t <= tmax:
        s.append(f'<line x1="{x(t):.1f}" y1="{H - B}" x2="{x(t):.1f}" y2="{H - B + 4}" stroke="black"/>')
        s.append(f'<text x="{x(t):.1f}" y="{H - B + 18}" text-anchor="middle">{t:g}</text>')
        t += xstep
    s.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>')
    s.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>')
    s.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">elapsed (s)</text>')
    s.append(f'<text x="18" y="{(T + H - B) / 2}" text-anchor="middle" '
             f'transform="rotate(-90 18 {(T + H - B) / 2})">resident set (MiB)</text>')
    if 0 < warmup < tmax:
        s.append(f'<rect x="{L}" y="{T}" width="{x(warmup) - L:.1f}" height="{H - T - B}" '
                 f'fill="#f3f3f3"/>')
        s.append(f'<text x="{x(warmup) - 4:.1f}" y="{T + 14}" text-anchor="end" fill="#888">warm-up</text>')
    pts = " ".join(f"{x(t):.1f},{y(m):.1f}" for t, m in mib)
    s.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
    s.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(s) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("svg")
    ap.add_argument("--title", default="soak: resident set size")
    ap.add_argument("--warmup", type=float, default=60.0)
    a = ap.parse_args()
    rows = load(a.csv)
    plot(rows, a.title, a.warmup, a.svg)
    after = [r for r in rows if r[0] >= a.warmup] or rows
    ks = [k for _, k in after]
    print(f"{len(rows)} samples over {rows[-1][0]:.0f} s; wrote {a.svg}")
    for label, t in (("1 min", 60), ("5 min", 300), ("10 min", 600)):
        v = at(rows, t)
        if v is not None:
            print(f"RSS at {label}: {v} KiB ({v / 1024:.2f} MiB)")
    print(f"peak RSS: {max(k for _, k in rows)} KiB; after warm-up: "
          f"min {min(ks)} KiB, max {max(ks)} KiB")
    print(f"slope after {a.warmup:g} s: {slope(after):+.3f} KiB/s "
          f"({slope(after) * 3600 / 1024:+.2f} MiB/h)")


if __name__ == "__main__":
    main()
