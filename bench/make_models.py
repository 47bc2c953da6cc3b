"""Writes the benchmark models twice, with the same random weights: as ONNX
files for the peers (onnxruntime, onnxruntime-web) and as kiln model files.

    python3 bench/make_models.py OUT_DIR

MLP 784-256-128-10 (ReLU, softmax), He-uniform weights from a fixed seed.
The int8 ONNX file is onnxruntime's own dynamic quantization of the f32 one.
"""

import json
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

WIDTHS = [784, 256, 128, 10]


def weights(widths, seed=7):
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        limit = np.sqrt(6.0 / fan_in)
        w = rng.uniform(-limit, limit, size=(fan_out, fan_in)).astype(np.float32)
        b = np.full(fan_out, 0.01, dtype=np.float32)
        layers.append((w, b))
    return layers


def write_onnx(layers, path):
    nodes, inits = [], []
    x = "input"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        y = f"gemm{i}"
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [y], transB=1))
        if i + 1 < len(layers):
            nodes.append(helper.make_node("Relu", [y], [f"relu{i}"]))
            y = f"relu{i}"
        x = y
    nodes.append(helper.make_node("Softmax", [x], ["scores"], axis=1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", WIDTHS[0]])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", WIDTHS[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def write_kiln(layers, path):
    tensors, specs = {}, []
    for i, (w, b) in enumerate(layers):
        tensors[f"w{i}"], tensors[f"b{i}"] = w, b
        specs.append({"op": "dense", "weight": f"w{i}", "bias": f"b{i}"})
        if i + 1 < len(layers):
            specs.append({"op": "relu"})
    specs.append({"op": "softmax"})
    graph = {
        "format": 1,
        "name": "mlp",
        "version": "1",
        "task": "classification",
        "input": {"name": "input", "shape": [WIDTHS[0]]},
        "layers": specs,
    }
    save_file(tensors, path, metadata={"kiln": json.dumps(graph)})


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    layers = weights(WIDTHS)
    write_onnx(layers, out / "mlp.onnx")
    write_kiln(layers, out / "mlp.safetensors")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(out / "mlp.onnx"), str(out / "mlp.int8.onnx"), weight_type=QuantType.QInt8)
    print(json.dumps({"dir": str(out), "models": sorted(p.name for p in out.iterdir())}))


if __name__ == "__main__":
    main()
