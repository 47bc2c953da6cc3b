"""Turns the JSON lines of bench/peers.sh into a markdown table and an SVG
bar chart.

    python3 bench/report.py RESULTS.jsonl TABLE.md CHART.svg

Each line: {"model", "runtime", "median_us", "p99_us", "batch32_per_s",
"peak_rss_kib", ["artifact_bytes"]}. Several rounds of the same (model,
runtime) are reduced to the median of their medians. Ratios are against
kiln in wasmtime on the same model (> 1 means the peer is slower).
"""

import collections
import json
import statistics
import sys


def load(path):
    rows = collections.defaultdict(list)
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            rows[(r["model"], r["runtime"])].append(r)
    out = {}
    for key, rs in rows.items():
        merged = {k: statistics.median(r[k] for r in rs if k in r) for k in ("median_us", "p99_us", "batch32_per_s", "peak_rss_kib") if any(k in r for r in rs)}
        merged["artifact_bytes"] = next((r["artifact_bytes"] for r in rs if "artifact_bytes" in r), None)
        merged["rounds"] = len(rs)
        out[key] = merged
    return out


def baseline(results, model):
    for (m, runtime), r in results.items():
        if m == model and runtime.startswith("kiln wasmtime"):
            return r["median_us"]
    return None


def table(results):
    lines = [
        "| model | runtime | median µs (batch 1) | p99 µs | predictions/s (batch 32) | peak RSS MiB | artifact KiB | median vs kiln wasmtime |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (model, runtime), r in sorted(results.items(), key=lambda kv: (kv[0][0], kv[1]["median_us"])):
        base = baseline(results, model)
        ratio = f"{r['median_us'] / base:.2f}×" if base else "—"
        art = f"{r['artifact_bytes'] / 1024:.0f}" if r.get("artifact_bytes") else "—"
        rss = f"{r['peak_rss_kib'] / 1024:.0f}" if "peak_rss_kib" in r else "—"
        tput = f"{r['batch32_per_s']:,.0f}" if "batch32_per_s" in r else "—"
        lines.append(f"| {model} | {runtime} | {r['median_us']:.1f} | {r['p99_us']:.1f} | {tput} | {rss} | {art} | {ratio} |")
    return "\n".join(lines) + "\n"


def svg(results):
    items = sorted(results.items(), key=lambda kv: (kv[0][0], kv[1]["median_us"]))
    bar_h, gap, left, width = 18, 6, 330, 420
    top = 30
    height = top + len(items) * (bar_h + gap) + 20
    longest = max(r["median_us"] for _, r in items)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 80}" height="{height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="18" font-size="14" font-weight="bold">Batch-1 prediction, median µs (shorter is faster)</text>',
    ]
    for i, ((model, runtime), r) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = max(1, r["median_us"] / longest * width)
        color = "#d9480f" if runtime.startswith("kiln") else "#868e96"
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{model}: {runtime}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 13}">{r["median_us"]:.1f}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    results = load(sys.argv[1])
    open(sys.argv[2], "w").write(table(results))
    open(sys.argv[3], "w").write(svg(results))


if __name__ == "__main__":
    main()
