"""Writes the benchmark models twice, with the same random weights: as ONNX
files for the peers (onnxruntime, onnxruntime-web, tract) and as kiln model
files, plus the calibration rows and the benchmark input.

    python3 bench/make_models.py OUT_DIR

* mlp: MLP 784-256-128-10 (ReLU, softmax);
* cnn: LeNet-style CNN on 1x28x28 — conv 5x5 (6) → ReLU → max-pool 2 →
  conv 5x5 (16) → ReLU → max-pool 2 → dense 256-120-84-10 → softmax;
* lstm: an LSTM over 50 steps of 64 features, 128 hidden, its final state
  → dense 128-10 → softmax (issue #19). The ONNX file takes the batch-first
  input [N, 50, 64] every peer feeds and transposes it to the LSTM's
  layout 0 ([50, N, 64]; onnxruntime refuses layout 1); kiln's input is the
  row [50, 64];
* mobilenet: MobileNetV2-0.35 on 3x96x96, 10 classes (bench/mobilenet_v2.py),
  ONNX only: bench/run.sh makes its kiln file with `kiln import`.

He-uniform weights from a fixed seed, biases 0.01. The int8 ONNX files are
onnxruntime's own dynamic quantization (`quantize_dynamic`, int8 weights) of
the f32 ones; bench/run.sh makes kiln's int8 files with `kiln quantize
--calibrate calib.json` (static, per-channel). `calib-lstm.json` holds the
LSTM's calibration rows. `input.json` is one row of the input every peer
is timed on: `((i * 37) mod 255) / 255`.
"""

import json
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # `python -I` leaves bench/ out
from mobilenet_v2 import mobilenet_v2  # noqa: E402

MLP = [784, 256, 128, 10]
CONVS = [(6, 1, 5, 5), (16, 6, 5, 5)]
CNN_DENSE = [256, 120, 84, 10]
LSTM_STEPS, LSTM_FEATURES, LSTM_HIDDEN = 50, 64, 128


def he(rng, shape):
    fan_in = int(np.prod(shape[1:]))
    limit = np.sqrt(6.0 / fan_in)
    w = rng.uniform(-limit, limit, size=shape).astype(np.float32)
    return w, np.full(shape[0], 0.01, dtype=np.float32)


def save_onnx(nodes, inits, name, in_shape, path, opset=17):
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def save_kiln(tensors, specs, name, in_shape, path):
    graph = {
        "format": 1,
        "name": name,
        "version": "1",
        "task": "classification",
        "input": {"name": "input", "shape": in_shape},
        "layers": specs,
    }
    save_file(tensors, path, metadata={"kiln": json.dumps(graph)})


def dense_stack(layers, x, nodes, inits, tensors, specs):
    """Gemm (+ReLU) per layer, softmax at the end, in both formats."""
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w, f"fc{i}.weight"), numpy_helper.from_array(b, f"fc{i}.bias")]
        tensors[f"fc{i}.weight"], tensors[f"fc{i}.bias"] = w, b
        specs.append({"op": "dense", "weight": f"fc{i}.weight", "bias": f"fc{i}.bias"})
        y = f"gemm{i}"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [y], transB=1))
        if i + 1 < len(layers):
            nodes.append(helper.make_node("Relu", [y], [f"relu{i}"]))
            specs.append({"op": "relu"})
            y = f"relu{i}"
        x = y
    nodes.append(helper.make_node("Softmax", [x], ["scores"], axis=1))
    specs.append({"op": "softmax"})


def mlp(rng, out):
    layers = [he(rng, (o, i)) for i, o in zip(MLP, MLP[1:])]
    nodes, inits, tensors, specs = [], [], {}, []
    dense_stack(layers, "input", nodes, inits, tensors, specs)
    save_onnx(nodes, inits, "mlp", [784], out / "mlp.onnx")
    save_kiln(tensors, specs, "mlp", [784], out / "mlp.safetensors")


def cnn(rng, out):
    nodes, inits, tensors, specs = [], [], {}, []
    x = "input"
    for i, shape in enumerate(CONVS):
        w, b = he(rng, shape)
        inits += [numpy_helper.from_array(w, f"conv{i}.weight"), numpy_helper.from_array(b, f"conv{i}.bias")]
        tensors[f"conv{i}.weight"], tensors[f"conv{i}.bias"] = w, b
        nodes += [
            helper.make_node("Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"conv{i}"], kernel_shape=[5, 5]),
            helper.make_node("Relu", [f"conv{i}"], [f"crelu{i}"]),
            helper.make_node("MaxPool", [f"crelu{i}"], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2]),
        ]
        specs += [
            {"op": "conv2d", "weight": f"conv{i}.weight", "bias": f"conv{i}.bias"},
            {"op": "relu"},
            {"op": "max_pool", "kernel": 2},
        ]
        x = f"pool{i}"
    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    specs.append({"op": "flatten"})
    layers = [he(rng, (o, i)) for i, o in zip(CNN_DENSE, CNN_DENSE[1:])]
    dense_stack(layers, "flat", nodes, inits, tensors, specs)
    save_onnx(nodes, inits, "cnn", [1, 28, 28], out / "cnn.onnx")
    save_kiln(tensors, specs, "cnn", [1, 28, 28], out / "cnn.safetensors")


def lstm(rng, out):
    """Gates i, o, f, c (ONNX's order, kiln's too): uniform in ±1/√hidden,
    as PyTorch initialises them; the head as the MLP's."""
    t, f, h = LSTM_STEPS, LSTM_FEATURES, LSTM_HIDDEN
    k = 1 / np.sqrt(h)
    w, r, b = (rng.uniform(-k, k, size=s).astype(np.float32) for s in ((1, 4 * h, f), (1, 4 * h, h), (1, 8 * h)))
    inits = [numpy_helper.from_array(v, n) for v, n in ((w, "lstm.w"), (r, "lstm.r"), (b, "lstm.b"))]
    tensors = {"lstm.w": w, "lstm.r": r, "lstm.b": b}
    specs = [{"op": "lstm", "hidden": h, "w": "lstm.w", "r": "lstm.r", "b": "lstm.b"}]
    nodes = [
        helper.make_node("Transpose", ["input"], ["steps"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["steps", "lstm.w", "lstm.r", "lstm.b"], ["", "state"], hidden_size=h),
        helper.make_node("Squeeze", ["state", "axis0"], ["last"]),
    ]
    inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"))
    dense_stack([he(rng, (10, h))], "last", nodes, inits, tensors, specs)
    save_onnx(nodes, inits, "lstm", [t, f], out / "lstm.onnx")
    save_kiln(tensors, specs, "lstm", [t, f], out / "lstm.safetensors")


def main():
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    mlp(rng, out)
    cnn(rng, out)
    lstm(rng, out)
    onnx.save(mobilenet_v2(), str(out / "mobilenet.onnx"))
    for name in ("mlp", "cnn", "lstm", "mobilenet"):
        path = out / f"{name}.int8.onnx"
        quantize_dynamic(str(out / f"{name}.onnx"), str(path), weight_type=QuantType.QInt8)
        # Shape annotations with the symbolic batch ("N") would clash with
        # tract's concrete batch sizes; onnxruntime does not need them.
        model = onnx.load(str(path))
        del model.graph.value_info[:]
        onnx.save(model, str(path))
    calib = np.random.default_rng(1).random((256, 784), dtype=np.float32)
    (out / "calib.json").write_text(json.dumps(calib.round(4).tolist()))
    calib = np.random.default_rng(1).random((32, LSTM_STEPS * LSTM_FEATURES), dtype=np.float32)
    (out / "calib-lstm.json").write_text(json.dumps(calib.round(4).tolist()))
    row = [((i * 37) % 255) / 255 for i in range(784)]
    (out / "input.json").write_text(json.dumps([row]))
    print(json.dumps({"dir": str(out), "files": sorted(p.name for p in out.iterdir())}))


if __name__ == "__main__":
    main()
