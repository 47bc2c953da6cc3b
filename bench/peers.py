"""Runs every peer on every benchmark model, round after round, one process
per (peer, model) run, appending one JSON line per run to RESULTS.

    python3 bench/peers.py --kiln KILN --models DIR --out RESULTS.jsonl \
        [--rounds 5] [--iters 1000] [--warmup 100] [--tract BIN]
        [--base-kiln KILN --base-models DIR]

With --base-kiln, an A/B of two kiln builds instead: kiln's runners only,
each twice — as built by KILN from DIR and, keyed `PEER@base`, by the base
KILN from its own modules — interleaved in the same rotation.

The order of the peers rotates (and reverses every other round) so that no
peer always runs first or right after another, and slow drifts in the
machine's load fall on everyone; bench/report.py then takes the median over
rounds. Every line carries the peer's scores for the benchmark's input row,
so the report can check that the peers compute the same thing.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent

# Models a peer cannot run, and why (printed by bench/report.py under the table).
SKIP = {
    ("tract", "cnn.int8"): "tract-onnx 0.22 refuses onnxruntime's dynamic-int8 CNN: its ConvInteger "
    "takes uint8 activations with int8 weights (\"Impossible to unify U8 with I8\")",
    ("kiln-node-bindgen", "cnn.int8"): "no build of the wasm-bindgen package holds int8 convolution "
    "(size, docs/web.md); the model module runs it (kiln-node-abi)",
    ("kiln-node-bindgen", "lstm.int8"): "no build of the wasm-bindgen package holds int8 recurrent "
    "weights (size, docs/web.md); the model module runs them (kiln-node-abi)",
    ("tract", "lstm.int8"): "tract-onnx 0.22 has no DynamicQuantizeLSTM (onnxruntime's dynamic-int8 LSTM; "
    "\"Unimplemented(DynamicQuantizeLSTM)\")",
    ("tract", "mobilenet.int8"): "onnxruntime's dynamic-int8 MobileNet is made of the same ConvInteger "
    "nodes (uint8 activations, int8 weights) tract-onnx 0.22 refuses in the CNN",
}
# kiln quantizes chains only: `kiln quantize` refuses graph models, so
# MobileNetV2 has no kiln int8 file yet (issue #25's int8 graphs).
for _peer in ("kiln-native", "kiln-fresh", "kiln-warm", "kiln-node-abi", "kiln-node-bindgen"):
    SKIP[(_peer, "mobilenet.int8")] = "kiln quantize refuses graph models (int8 graphs are not built yet)"

# (file stem, label, input shape)
MODELS = [
    ("mlp", "MLP f32", "784"),
    ("mlp.int8", "MLP int8", "784"),
    ("cnn", "CNN f32", "1,28,28"),
    ("cnn.int8", "CNN int8", "1,28,28"),
    ("lstm", "LSTM f32", "50,64"),
    ("lstm.int8", "LSTM int8", "50,64"),
    ("mobilenet", "MobileNetV2 f32", "3,96,96"),
    ("mobilenet.int8", "MobileNetV2 int8", "3,96,96"),
]

ORT_WEB_DIST = HERE / "node_modules/onnxruntime-web/dist"
ORT_WEB_RUNTIME = ["ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs", "ort.wasm.min.mjs"]


def bindgen_package(stem):
    """The browser package's build for a model: dense models get web/pkg,
    CNNs web/pkg-cnn, recurrent models web/pkg-rnn, graph models
    (MobileNetV2) web/pkg-graph."""
    packages = {"cnn": "web/pkg-cnn", "lstm": "web/pkg-rnn", "mobilenet": "web/pkg-graph"}
    return packages.get(stem.split(".")[0], "web/pkg")


def bindgen_bytes(stem):
    pkg = REPO / bindgen_package(stem)
    return size(pkg / "kiln_bg.wasm", pkg / "kiln.js")


def size(*paths):
    return sum(pathlib.Path(p).stat().st_size for p in paths)


def kiln_bench(kiln, runner):
    def cmd(models, stem, shape, a):
        return [kiln, "bench", str(models / f"{stem}.wasm"), "--runner", runner, "--json",
                "--batch", "1,32", "--iters", str(a.iters), "--warmup", str(a.warmup)]

    def parse(out):
        r = json.loads(out)
        fig = {f["batch"]: f for f in r["figures"]}
        return {
            "runtime": fig[1]["runtime"],
            "median_us": fig[1]["median_us"],
            "p99_us": fig[1]["p99_us"],
            "batch32_per_s": fig[32]["per_s"],
            "peak_rss_kib": r["peak_rss_kib"],
            "scores": r["scores"],
        }

    return cmd, parse


def node(runtime, ext):
    def cmd(models, stem, shape, a):
        return ["node", str(HERE / "node_bench.mjs"), "--runtime", runtime, "--model", str(models / f"{stem}{ext}"),
                "--shape", shape, "--iterations", str(a.iters), "--warmup", str(a.warmup)]

    return cmd, json.loads


def ort_native(models, stem, shape, a):
    return [sys.executable, str(HERE / "ort_native.py"), str(models / f"{stem}.onnx"), str(a.iters), str(a.warmup)]


def kiln_peers(kiln, models, suffix=""):
    """kiln's runners of one build (the wasm-bindgen package aside)."""
    wasm = lambda m, s: size(m / f"{s}.wasm")  # noqa: E731
    out = []
    for runner in ("native", "fresh", "warm"):
        cmd, parse = kiln_bench(kiln, runner)
        out.append((f"kiln-{runner}{suffix}", models, cmd, parse, None if runner == "native" else wasm))
    cmd, parse = node("kiln-abi", ".wasm")
    out.append((f"kiln-node-abi{suffix}", models, cmd, parse, wasm))
    return out


def peers(a):
    """(key, models folder, command builder, output parser, artifact size for a model stem)."""
    if a.base_kiln:
        return kiln_peers(a.kiln, a.models) + kiln_peers(a.base_kiln, a.base_models, "@base")
    wasm = lambda m, s: size(m / f"{s}.wasm")  # noqa: E731
    onnx = lambda m, s: size(m / f"{s}.onnx")  # noqa: E731
    out = kiln_peers(a.kiln, a.models)
    m = a.models
    cmd, parse = node("kiln-bindgen", ".wasm")
    bindgen = lambda m, s, shape, a, cmd=cmd: cmd(m, s, shape, a) + ["--package", bindgen_package(s)]  # noqa: E731
    out.append(("kiln-node-bindgen", m, bindgen, parse, lambda m, s: wasm(m, s) + bindgen_bytes(s)))
    out.append(("ort-native", m, ort_native, json.loads, onnx))
    cmd, parse = node("ort-web", ".onnx")
    out.append(("ort-web", m, cmd, parse, lambda m, s: onnx(m, s) + size(*(ORT_WEB_DIST / f for f in ORT_WEB_RUNTIME))))
    if a.tract:
        out.append(("tract", m, lambda m, s, shape, a: [a.tract, str(m / f"{s}.onnx"), str(a.iters), str(a.warmup), shape],
                    json.loads, onnx))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kiln", required=True)
    p.add_argument("--models", required=True, type=pathlib.Path)
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--tract", help="the bench/tract binary (omit to skip tract)")
    p.add_argument("--base-kiln", help="A/B: the other kiln binary")
    p.add_argument("--base-models", type=pathlib.Path, help="A/B: the modules the other kiln built")
    a = p.parse_args()
    all_peers = peers(a)
    runs = a.rounds * len(MODELS) * len(all_peers)
    done = 0
    start = time.monotonic()
    with open(a.out, "a") as results:
        for rnd in range(a.rounds):
            k = rnd % len(all_peers)
            order = all_peers[k:] + all_peers[:k]
            if rnd % 2:
                order.reverse()
            for stem, label, shape in MODELS:
                for key, models, cmd, parse, artifact in order:
                    if (key.split("@")[0], stem) in SKIP:
                        done += 1
                        if rnd == 0:
                            results.write(json.dumps({"model": label, "peer": key, "skipped": SKIP[(key, stem)]}) + "\n")
                        continue
                    argv = cmd(models, stem, shape, a)
                    proc = subprocess.run(argv, capture_output=True, text=True)
                    done += 1
                    if proc.returncode != 0:
                        sys.exit(f"{key} on {stem} failed ({' '.join(argv)}):\n{proc.stderr[-2000:]}")
                    line = proc.stdout.strip().splitlines()[-1]
                    r = parse(line)
                    r.update(model=label, peer=key, round=rnd + 1)
                    if artifact:
                        r["artifact_bytes"] = artifact(models, stem)
                    results.write(json.dumps(r) + "\n")
                    results.flush()
                    eta = (time.monotonic() - start) / done * (runs - done)
                    print(f"\r[{done}/{runs}] round {rnd + 1}: {label}, {key}: {r['median_us']:.1f} µs; "
                          f"~{eta:.0f} s left   ", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
