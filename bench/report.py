"""Reduces bench/peers.py's JSON lines to the peer table, checks them, and
draws the bar chart.

    python3 bench/report.py RESULTS.jsonl [--table TABLE.md] [--svg CHART.svg]
                            [--doc docs/benchmarks.md --meta META.json]
    python3 bench/report.py RESULTS.jsonl --ab [--table TABLE.md]

With --ab (results of `bench/peers.py --base-kiln`), the table compares each
kiln runner with its `@base` twin instead: medians, their ratio, module
bytes, and a verdict against AB_TOLERANCE; the bit checks below cover both
builds (every kiln runner of either returns kiln native's bits).

With --doc, the text between the `<!-- peers:begin -->` and
`<!-- peers:end -->` lines of that file is replaced by the table, the goals
and the run's circumstances (META: date, command, cpu, load, versions).

Rounds of the same (model, peer) reduce to the median of their medians, of
their p99s and of their batch-32 throughputs, and the largest peak RSS.
Ratios are against kiln's module in a warm wasmtime instance on the same
model ("× kiln": > 1 means the peer takes longer / predicts fewer rows per
second than kiln).

Checks (exit status 1 when one fails, naming it): every figure is finite and
positive; kiln's runners (native, wasmtime, Node raw ABI, wasm-bindgen)
return the same score bits; on the f32 models every peer's scores are within
1e-5 of kiln's; on the int8 models within 0.02 of kiln's f32 scores (each
tool quantizes its own way: kiln static per-channel, onnxruntime dynamic),
0.1 on MobileNetV2 (onnxruntime's dynamic int8 through 52 convolutions).
A model kiln does not run in int8 (MobileNetV2 today) is checked against
kiln's f32 scores alone.
"""

import argparse
import collections
import math
import json
import statistics
import struct
import sys

F32_TOL = 1e-5
INT8_TOL = 0.02
# Per model where a deeper net drifts further in int8 (see the module note).
INT8_TOL_BY_MODEL = {"MobileNetV2 int8": 0.1}
BASE = "kiln-warm"
# An A/B row is "same" when the head's median is within this of the base's.
AB_TOLERANCE = 0.03
ORDER = ["kiln-native", "kiln-warm", "kiln-fresh", "kiln-node-abi", "kiln-node-bindgen", "ort-native", "ort-web", "tract"]
# Every model bench/peers.py runs, in table order.
MODELS = ("MLP f32", "MLP int8", "CNN f32", "CNN int8", "LSTM f32", "LSTM int8", "MobileNetV2 f32", "MobileNetV2 int8")
# Remarks printed beside a model's first row, e.g. when a peer quantizes differently.
NOTES: dict[str, str] = {}


SKIPPED = {}


def load(path):
    runs = collections.defaultdict(list)
    for line in open(path):
        if line.strip().startswith("{"):
            r = json.loads(line)
            if "skipped" in r:
                SKIPPED[(r["model"], r["peer"])] = r["skipped"]
                continue
            runs[(r["model"], r["peer"])].append(r)
    out = {}
    for key, rs in runs.items():
        out[key] = {
            "runtime": rs[0]["runtime"],
            "median_us": statistics.median(r["median_us"] for r in rs),
            "p99_us": statistics.median(r["p99_us"] for r in rs),
            "batch32_per_s": statistics.median(r["batch32_per_s"] for r in rs),
            "peak_rss_kib": max(r["peak_rss_kib"] for r in rs),
            "artifact_bytes": rs[0].get("artifact_bytes"),
            "scores": rs[0]["scores"],
            "all_scores": [r["scores"] for r in rs],
            "rounds": len(rs),
        }
    return out


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def check(res):
    problems = []
    models = sorted({m for m, _ in res})
    for (model, peer), r in res.items():
        for k in ("median_us", "p99_us", "batch32_per_s", "peak_rss_kib"):
            if not (math.isfinite(r[k]) and r[k] > 0):
                problems.append(f"{model} / {peer}: {k} = {r[k]}")
        if not all(math.isfinite(s) for s in r["scores"]) or len(r["scores"]) != 10:
            problems.append(f"{model} / {peer}: scores {r['scores']}")
    for model in models:
        ref = res.get((model, "kiln-native"))
        f32_run = res.get((model.replace("int8", "f32"), "kiln-native"), ref)
        if ref is None and not (f32_run and (model, "kiln-native") in SKIPPED):
            problems.append(f"{model}: no kiln native run")
            continue
        want = [f32_bits(s) for s in ref["scores"]] if ref else None
        f32_ref = f32_run["scores"]
        tol = INT8_TOL_BY_MODEL.get(model, INT8_TOL) if "int8" in model else F32_TOL
        for (m, peer), r in res.items():
            if m != model:
                continue
            if peer.startswith("kiln") and want is not None:
                for scores in r["all_scores"]:
                    if [f32_bits(s) for s in scores] != want:
                        problems.append(f"{model} / {peer}: scores differ in bits from kiln native: {scores} vs {ref['scores']}")
                        break
            diff = max(abs(a - b) for a, b in zip(r["scores"], f32_ref))
            if diff > tol:
                problems.append(f"{model} / {peer}: scores differ from kiln's f32 by {diff:.3g} (> {tol})")
    return problems


def ordered(res, model):
    rows = [(p, res[(model, p)]) for p in ORDER if (model, p) in res]
    return rows + sorted(((p, r) for (m, p), r in res.items() if m == model and p not in ORDER), key=lambda x: x[0])


def table(res):
    models = [m for m in MODELS if any(k[0] == m for k in res)]
    lines = [
        "| model | runtime | median µs, batch 1 | p99 µs | × kiln | predictions/s, batch 32 | × kiln | peak RSS MiB | artifact KiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        base = res.get((model, BASE))
        for peer, r in ordered(res, model):
            lat = f"{r['median_us'] / base['median_us']:.2f}×" if base else "—"
            tput = f"{base['batch32_per_s'] / r['batch32_per_s']:.2f}×" if base else "—"
            art = f"{r['artifact_bytes'] / 1024:,.0f}" if r.get("artifact_bytes") else "—"
            name = f"**{r['runtime']}**" if peer == BASE else r["runtime"]
            label = model + (f" ({NOTES[model]})" if model in NOTES and peer == "kiln-native" else "")
            lines.append(
                f"| {label} | {name} | {r['median_us']:,.1f} | {r['p99_us']:,.1f} | {lat} | "
                f"{r['batch32_per_s']:,.0f} | {tput} | {r['peak_rss_kib'] / 1024:.0f} | {art} |"
            )
    notes = [f"* Not run: {peer} on {model} — {why}." for (model, peer), why in sorted(SKIPPED.items())]
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def ab_table(res):
    """Each kiln runner against its `@base` twin, and whether every row is within AB_TOLERANCE."""
    lines = [
        "| model | runner | base µs | head µs | head ÷ base | base batch-32/s | head batch-32/s | module bytes base → head | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    worst = 0.0
    for (model, peer), base in sorted(res.items()):
        if not peer.endswith("@base") or (model, peer[: -len("@base")]) not in res:
            continue
        head = res[(model, peer[: -len("@base")])]
        lat = head["median_us"] / base["median_us"]
        tput = base["batch32_per_s"] / head["batch32_per_s"]
        worst = max(worst, lat, tput)
        ok = lat <= 1 + AB_TOLERANCE and tput <= 1 + AB_TOLERANCE
        art = (f"{base['artifact_bytes']:,} → {head['artifact_bytes']:,}"
               if base.get("artifact_bytes") and head.get("artifact_bytes") else "—")
        lines.append(
            f"| {model} | {head['runtime']} | {base['median_us']:,.2f} | {head['median_us']:,.2f} | {lat:.3f} | "
            f"{base['batch32_per_s']:,.0f} | {head['batch32_per_s']:,.0f} | {art} | "
            f"{'same' if ok else 'slower'} |"
        )
    return "\n".join(lines) + f"\n\nWorst head ÷ base (batch-1 latency, or batch-32 time): {worst:.3f}.\n"


def goals(res):
    """The issue's goals, as ratios from this run."""

    def med(model, peer):
        r = res.get((model, peer))
        return r["median_us"] if r else None

    out = []

    def goal(text, num, den, need):
        if num is None or den is None:
            return out.append(f"| {text} | — | not measured |")
        ratio = den / num
        out.append(f"| {text} | {ratio:.2f}× | {'met' if ratio >= need else 'not met'} (goal ≥ {need}×) |")

    for m in ("MLP int8", "CNN int8"):
        goal(f"{m}: kiln wasmtime (warm) vs onnxruntime-web int8, batch 1", med(m, "kiln-warm"), med(m, "ort-web"), 4)
        goal(f"{m}: kiln wasmtime (warm) vs onnxruntime native int8, batch 1", med(m, "kiln-warm"), med(m, "ort-native"), 1)
    for m in MODELS[:4]:
        goal(f"{m}: kiln in Node (raw ABI) vs onnxruntime-web", med(m, "kiln-node-abi"), med(m, "ort-web"), 3)
    # Issue #19's LSTM goals: against onnxruntime's f32 runs.
    f32 = "LSTM f32"
    goal("LSTM f32: kiln in Node (raw ABI) vs onnxruntime-web", med(f32, "kiln-node-abi"), med(f32, "ort-web"), 1.7)
    goal("LSTM int8: kiln in Node (raw ABI) vs onnxruntime-web f32", med("LSTM int8", "kiln-node-abi"), med(f32, "ort-web"), 3)
    goal("LSTM int8: kiln wasmtime (warm, relaxed twin) vs onnxruntime native f32", med("LSTM int8", "kiln-warm"),
         med(f32, "ort-native"), 1)
    # Issue #25: MobileNetV2-0.35 at 96×96, batch 1 (int8 needs kiln's int8 graphs).
    goal("MobileNetV2 f32: kiln in Node (raw ABI) vs onnxruntime-web", med("MobileNetV2 f32", "kiln-node-abi"),
         med("MobileNetV2 f32", "ort-web"), 1.5)
    goal("MobileNetV2 int8: kiln in Node (raw ABI) vs onnxruntime-web int8", med("MobileNetV2 int8", "kiln-node-abi"),
         med("MobileNetV2 int8", "ort-web"), 3)
    goal("MobileNetV2 int8: kiln wasmtime (warm, relaxed twin) vs onnxruntime native int8",
         med("MobileNetV2 int8", "kiln-warm"), med("MobileNetV2 int8", "ort-native"), 1)
    # MobileNetV2 int8 aside: kiln does not run it yet.
    for m in MODELS[:-1]:
        # within 2× of native: native / wasm ≥ 0.5
        goal(f"{m}: kiln native ÷ kiln wasmtime (warm) (within 2× means ≥ 0.5×)", med(m, "kiln-warm"), med(m, "kiln-native"), 0.5)
    return "| goal | speed-up measured | verdict |\n|---|---|---|\n" + "\n".join(out) + "\n"


def svg(res):
    models = [m for m in MODELS if any(k[0] == m for k in res)]
    bar_h, gap, left, width, top = 16, 4, 300, 380, 40
    parts, y = [], top
    for model in models:
        rows = ordered(res, model)
        longest = max(r["median_us"] for _, r in rows)
        parts.append(f'<text x="10" y="{y + 12}" font-weight="bold">{model}</text>')
        y += 20
        for peer, r in rows:
            w = max(1.0, r["median_us"] / longest * width)
            color = "#d9480f" if peer.startswith("kiln") else "#868e96"
            parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{r["runtime"]}</text>')
            parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 12}">{r["median_us"]:,.1f} µs</text>')
            y += bar_h + gap
        for (m, peer), why in sorted(SKIPPED.items()):
            if m == model:
                parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end" fill="#868e96">{peer}</text>')
                parts.append(f'<text x="{left}" y="{y + 12}" fill="#868e96">not run (see the table)</text>')
                y += bar_h + gap
        y += 12
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{y + 10}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="10" y="20" font-size="14" font-weight="bold">Batch-1 prediction, median µs per call (shorter is faster; kiln in orange)</text>',
    ]
    return "\n".join(head + parts + ["</svg>"]) + "\n"


BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"


def splice(doc, md, meta):
    text = open(doc).read()
    if BEGIN not in text or END not in text:
        sys.exit(f"{doc} has no {BEGIN} … {END} section to fill")
    head = (
        f"Measured {meta['date']} by `{meta['command']}` on {meta['cpu']}; load average "
        f"(1, 5, 15 min) {meta['load_before']} before the run, {meta['load_after']} after. "
        f"kiln {meta['kiln']}, onnxruntime {meta['onnxruntime']}, onnxruntime-web "
        f"{meta['onnxruntime_web']} on Node {meta['node']}, tract-onnx {meta['tract']}.\n\n"
    )
    body = head + md + "\n![Batch-1 latency of every peer](bench.svg)\n"
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    open(doc, "w").write(before + BEGIN + "\n" + body + END + after)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--table", help="write the markdown table and goals here")
    p.add_argument("--svg", help="write the bar chart here")
    p.add_argument("--doc", help="fill this file's peers:begin/end section")
    p.add_argument("--meta", help="JSON with the run's date, command, cpu, load and versions (for --doc)")
    p.add_argument("--ab", action="store_true", help="compare kiln runners with their @base twins")
    a = p.parse_args()
    res = load(a.results)
    problems = check(res)
    if a.ab:
        md = ab_table(res)
    else:
        md = table(res) + "\nThe issue's goals, as ratios from this run (median µs, batch 1):\n\n" + goals(res)
    print(md)
    if a.table:
        open(a.table, "w").write(md)
    if a.svg:
        open(a.svg, "w").write(svg(res))
    if a.doc:
        splice(a.doc, md, json.load(open(a.meta)))
    if problems:
        print("CHECK FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"checks passed: {len(res)} (model, runtime) pairs, figures finite and positive, kiln runners "
          f"bit-identical, peers within {F32_TOL} (f32) / {INT8_TOL} (int8) of kiln's scores", file=sys.stderr)


if __name__ == "__main__":
    main()
