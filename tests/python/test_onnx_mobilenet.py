"""`kiln import` of the layers MobileNet-class models are made of, against
onnxruntime (every score within 1e-4): depthwise convolutions (group =
channels, now a real depthwise layer), grouped ones (1 < group < channels,
and a channel multiplier), SAME padding with the odd row and column at the
bottom and right (auto_pad = SAME_UPPER, explicit asymmetric pads, and a
Pad node folded into the next Conv), stride 2, dilation; Clip (opset 6
attributes and opset 11+ inputs; ReLU6), HardSwish, HardSigmoid, and a
Sigmoid on convolution outputs. Plus the refusals around them, and the
README's MobileNetV2 example, run."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnx_kiln import import_build, kiln, kiln_bin, ort_run, predict, refused, save

TOL = 1e-4
rng = np.random.default_rng(25)


def init(name, shape, scale=0.5):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.array(values, dtype=dtype), name)


def model(nodes, inits, in_shape, out_shape, opset=17):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def compare(m, x, tmp_path):
    module = import_build(m, tmp_path)
    got, _ = predict(module, x, tmp_path)
    want = ort_run(m, x).reshape(len(x), -1)
    assert got.shape == want.shape
    diff = np.abs(got - want).max()
    assert diff <= TOL, diff
    return module


def bn(x, prefix, y, c, inits):
    inits += [
        numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), f"{prefix}.g"),
        init(f"{prefix}.b", (c,), 0.1),
        init(f"{prefix}.m", (c,), 0.1),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), f"{prefix}.v"),
    ]
    return helper.make_node(
        "BatchNormalization", [x] + [f"{prefix}.{s}" for s in "gbmv"], [y], epsilon=1e-3
    )


def test_depthwise_separable_blocks(tmp_path):
    """A MobileNet-like stack on 3×32×32: stem Conv 3×3 stride 2 SAME_UPPER
    + BN + ReLU6 (Clip with constant inputs); depthwise 3×3 (pads 1) + BN +
    ReLU6; pointwise 1×1; depthwise stride 2 with explicit [0, 0, 1, 1]
    pads + HardSwish; a Pad node folded into a dilated depthwise Conv;
    a grouped Conv (4 groups) + HardSigmoid; a channel-multiplier depthwise
    Conv (group 16, 32 outputs) + Sigmoid; GlobalAveragePool, Flatten, Gemm."""
    inits = [const("zero", 0.0), const("six", 6.0)]
    inits += [init("w0", (16, 3, 3, 3)), init("b0", (16,), 0.1)]
    inits += [init("w1", (16, 1, 3, 3)), init("b1", (16,), 0.1)]
    inits += [init("w2", (16, 16, 1, 1), 0.3), init("b2", (16,), 0.1)]
    inits += [init("w3", (16, 1, 3, 3)), init("b3", (16,), 0.1)]
    inits += [const("pads", [0, 0, 1, 2, 0, 0, 2, 1], np.int64)]
    inits += [init("w4", (16, 1, 3, 3)), init("b4", (16,), 0.1)]
    inits += [init("w5", (16, 4, 3, 3), 0.3), init("b5", (16,), 0.1)]
    inits += [init("w6", (32, 1, 3, 3)), init("b6", (32,), 0.1)]
    inits += [init("fc", (10, 32), 0.3), init("fcb", (10,), 0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], strides=[2, 2], auto_pad="SAME_UPPER"),
        bn("c0", "bn0", "n0", 16, inits),
        helper.make_node("Clip", ["n0", "zero", "six"], ["r0"]),
        helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], group=16, pads=[1, 1, 1, 1]),
        bn("c1", "bn1", "n1", 16, inits),
        helper.make_node("Clip", ["n1", "zero", "six"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"]),
        helper.make_node("Conv", ["c2", "w3", "b3"], ["c3"], group=16, strides=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("HardSwish", ["c3"], ["h3"]),
        helper.make_node("Pad", ["h3", "pads"], ["p3"]),
        helper.make_node("Conv", ["p3", "w4", "b4"], ["c4"], group=16, dilations=[2, 2]),
        helper.make_node("Conv", ["c4", "w5", "b5"], ["c5"], group=4, pads=[1, 0, 1, 2]),
        helper.make_node("HardSigmoid", ["c5"], ["h5"], alpha=0.25, beta=0.4),
        helper.make_node("Conv", ["h5", "w6", "b6"], ["c6"], group=16, pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c6"], ["s6"]),
        helper.make_node("GlobalAveragePool", ["s6"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1),
    ]
    m = model(nodes, inits, [3, 32, 32], [10])
    x = rng.uniform(-1, 1, (6, 3, 32, 32)).astype(np.float32)
    module = compare(m, x, tmp_path)
    # The depthwise layers are real ones: the model file's weights keep
    # ONNX's [out, in / group, kh, kw] shapes (no zero-filled full weights).
    info = json.loads(kiln("inspect", tmp_path / "model.safetensors").stdout)
    convs = [l for l in info["layers"] if l.get("op") == "conv2d"]
    assert [c.get("groups", 1) for c in convs] == [1, 16, 1, 16, 16, 4, 16], convs
    # The same bits natively.
    wasm, _ = predict(module, x, tmp_path)
    native = kiln("predict", module, "--input", tmp_path / "rows.json", "--native").stdout
    native = np.array([json.loads(line)["scores"] for line in native.splitlines()], np.float32)
    assert wasm.tobytes() == native.tobytes(), "wasm and native scores differ in bits"


def test_clip_attributes_and_hard_sigmoid_defaults(tmp_path):
    """Opset 10: Clip's bounds are attributes (one-sided too);
    HardSigmoid's defaults; a dilated full convolution with uneven pads."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], dilations=[2, 2], pads=[2, 1, 0, 3]),
        helper.make_node("Clip", ["c"], ["r"], min=0.0, max=6.0),
        helper.make_node("Clip", ["r"], ["r2"], min=0.5),
        helper.make_node("HardSigmoid", ["r2"], ["y"]),
    ]
    inits = [init("w", (4, 2, 3, 3)), init("b", (4,), 0.5)]
    m = model(nodes, inits, [2, 9, 11], [4, 7, 11], opset=10)
    compare(m, rng.uniform(-3, 3, (5, 2, 9, 11)).astype(np.float32), tmp_path)


def refuse(m, tmp_path, *words):
    err = refused("import", save(m, tmp_path / "bad.onnx"), "-o", tmp_path / "bad.safetensors")
    for w in words:
        assert w in err, f"{w!r} not in: {err}"
    return err


def test_unsupported_pads_and_clips_are_named(tmp_path):
    w = [init("w", (2, 1, 3, 3))]
    pad = lambda **kw: helper.make_node("Pad", ["x", "pads"], ["p"], name="the_pad", **kw)
    conv = helper.make_node("Conv", ["p", "w"], ["y"], group=2)
    spatial = const("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    m = model([pad(mode="reflect"), conv], w + [spatial], [2, 6, 6], [2, 6, 6])
    refuse(m, tmp_path, '"the_pad"', "(Pad)", "mode")
    channels = const("pads", [0, 1, 0, 0, 0, 0, 0, 0], np.int64)
    m = model([pad(), conv], w + [channels], [2, 6, 6], [3, 4, 4])
    refuse(m, tmp_path, '"the_pad"', "H and W")
    # A Pad read by anything but a Conv.
    m = model([pad(), helper.make_node("Relu", ["p"], ["y"], name="r")], [spatial], [2, 6, 6], [2, 8, 8])
    refuse(m, tmp_path, '"r"', "(Relu)")
    nodes = [helper.make_node("Clip", ["x", "hi", "lo"], ["y"], name="clip")]
    m = model(nodes, [const("hi", 6.0), const("lo", 0.0)], [4], [4])
    refuse(m, tmp_path, '"clip"', "(Clip)", "do not bound")
    # Strides and dilations that differ per axis have no kiln layer.
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="c", group=2, dilations=[1, 2])
    refuse(model([conv], w, [2, 9, 9], [2, 7, 5]), tmp_path, '"c"', "dilations")


def test_readme_mobilenet_example(tmp_path):
    """The README's MobileNet example, run verbatim in a scratch directory
    (`kiln` and `python3` are this test's): every command succeeds, prints
    exactly what the README shows, and the figures in its comments hold;
    the prediction agrees with onnxruntime on the same file."""
    repo = Path(__file__).resolve().parents[2]
    readme = (repo / "README.md").read_text()
    section = readme.split("## Models trained elsewhere: ONNX", 1)[1].split("\n## ", 1)[0]
    console = re.search(r"```console\n\$ python3 bench/mobilenet_v2.py(.*?)```", section, re.S)
    assert console, "the README's MobileNet example"
    lines = ("$ python3 bench/mobilenet_v2.py" + console.group(1)).splitlines()
    (tmp_path / "bench").symlink_to(repo / "bench")
    env = dict(os.environ, KILN_BIN=kiln_bin(), PY=sys.executable)
    prelude = 'kiln() { "$KILN_BIN" "$@"; }; python3() { "$PY" -I "$@"; }; set -o pipefail; '
    steps = []
    for line in lines:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    for command, shown in steps:
        r = subprocess.run(["bash", "-c", prelude + command], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert r.returncode == 0, f"{command}: {r.stderr}"
        assert r.stdout.splitlines() == shown, f"{command}: printed {r.stdout!r}, the README shows {shown!r}"
    summary = json.loads((tmp_path / "summary.json").read_text())
    notes = (tmp_path / "notes.txt").read_text().splitlines()
    nodes, layers, folded = map(int, re.search(r"# (\d+) nodes → (\d+) layers; (\d+) BatchNorm", section).groups())
    assert (summary["nodes"], len(summary["layers"])) == (nodes, layers)
    assert len(notes) == folded and all("BatchNormalization" in n and "folded" in n for n in notes), notes
    arena, tensors = (int(v.replace(",", "")) for v in re.search(r"([\d,]+) values live at most, of ([\d,]+)", section).groups())
    info = json.loads(kiln("inspect", tmp_path / "mobilenet.wasm").stdout)
    assert (info["arena_values"], info["tensor_values"]) == (arena, tensors)
    x = np.array(json.loads((tmp_path / "image.json").read_text()), np.float32).reshape(1, 3, 96, 96)
    want = ort_run(onnx.load(tmp_path / "mobilenet.onnx"), x).reshape(-1)
    got = np.array(json.loads(steps[-1][1][0])["scores"], np.float32)
    assert np.abs(got - want).max() <= 1e-5
