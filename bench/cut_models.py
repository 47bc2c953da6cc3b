"""Cuts a kiln model file after each of its first layers, to time a network
stage by stage: every cut keeps the original tensors and the first K layers
of the graph (plus a `flatten`, so any stage's output is a valid model
output). Differences between neighbouring cuts, timed interleaved
(bench/node_ab.sh), price each stage; docs/benchmarks.md ("What bounds the
f32 models in Node") does this for the benchmark CNN.

    python3 bench/cut_models.py MODEL.safetensors OUT_DIR K [K ...]

writes OUT_DIR/cut0.safetensors (no layer: flatten only — the call, the
input copy and the output copy), and OUT_DIR/cutK.safetensors for each K.
Build each with `kiln build`.
"""

import json
import pathlib
import struct
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    cuts = [0] + [int(k) for k in sys.argv[3:]]
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header, body = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    graph = json.loads(header["__metadata__"]["kiln"])
    out.mkdir(parents=True, exist_ok=True)
    for k in cuts:
        g = dict(graph, layers=graph["layers"][:k] + [{"op": "flatten"}])
        g.pop("labels", None)  # the cut's output is no longer the classes
        h = dict(header, __metadata__=dict(header["__metadata__"], kiln=json.dumps(g)))
        hb = json.dumps(h).encode()
        hb += b" " * (-len(hb) % 8)
        (out / f"cut{k}.safetensors").write_bytes(struct.pack("<Q", len(hb)) + hb + body)
        print(out / f"cut{k}.safetensors", [layer["op"] for layer in g["layers"]])


if __name__ == "__main__":
    main()
