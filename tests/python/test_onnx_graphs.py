"""`kiln import` of ONNX graphs that branch and join, against onnxruntime:
a ResNet-8-style network (residual adds, stride-2 1x1 shortcut
convolutions, BatchNorm folded into the convolutions, GlobalAveragePool,
Gemm), a squeeze-and-excitation block (GlobalAveragePool → Conv1x1 → Relu →
Conv1x1 → Sigmoid → Mul) and a channel Concat. Each is written with
onnx.helper, imported, built into a wasm module and run by `kiln predict`
(wasmtime); every score must be within 1e-4 of onnxruntime's, and the model
file must be a graph (format 2) whose planned arena is smaller than the sum
of its tensors (`kiln inspect`)."""

import json

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from onnx_kiln import import_build, kiln, ort_run, predict

TOL = 1e-4
OPSET = 17
rng = np.random.default_rng(25)


class Net:
    """Nodes and initializers of a graph under construction."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, op):
        self.n += 1
        return f"{op.lower()}{self.n}"

    def init(self, shape, scale):
        name = self.name("w")
        data = (rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(data, name))
        return name

    def node(self, op, inputs, **attrs):
        out = self.name(op)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, c_in, c_out, k, stride=1, bn=True):
        w = self.init((c_out, c_in, k, k), (2.0 / (c_in * k * k)) ** 0.5)
        b = self.init((c_out,), 0.1)
        y = self.node("Conv", [x, w, b], strides=[stride, stride], pads=[k // 2] * 4)
        if not bn:
            return y
        scale = self.init((c_out,), 0.2)
        self.inits[-1] = numpy_helper.from_array(
            (1.0 + numpy_helper.to_array(self.inits[-1])).astype(np.float32), scale
        )
        bias = self.init((c_out,), 0.1)
        mean = self.init((c_out,), 0.1)
        var = self.init((c_out,), 0.1)
        self.inits[-1] = numpy_helper.from_array(
            np.abs(numpy_helper.to_array(self.inits[-1])) + 0.5, var
        )
        return self.node("BatchNormalization", [y, scale, bias, mean, var])

    def model(self, out, in_shape, out_shape):
        self.nodes[-1].output[0] = "y"
        for node in self.nodes:
            node.input[:] = ["y" if i == out else i for i in node.input]
        g = helper.make_graph(
            self.nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape])],
            self.inits,
        )
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def compare(m, x, tmp_path):
    module = import_build(m, tmp_path)
    got, _ = predict(module, x, tmp_path)
    want = ort_run(m, x).reshape(len(x), -1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    info = json.loads(kiln("inspect", tmp_path / "model.safetensors").stdout)
    assert info["graph"] is True, info
    assert info["arena_values"] < info["tensor_values"], info
    return info


def resnet8():
    """3x16x16 → conv 8 → three residual stages (8, 16, 32 channels; the
    last two halve the image with a stride-2 1x1 shortcut) → pool → Gemm."""
    net = Net()
    x = net.node("Relu", [net.conv("x", 3, 8, 3)])
    c = 8
    for c_out, stride in [(8, 1), (16, 2), (32, 2)]:
        h = net.node("Relu", [net.conv(x, c, c_out, 3, stride)])
        h = net.conv(h, c_out, c_out, 3)
        skip = x if stride == 1 else net.conv(x, c, c_out, 1, stride)
        x = net.node("Relu", [net.node("Add", [h, skip])])
        c = c_out
    p = net.node("Flatten", [net.node("GlobalAveragePool", [x])])
    w = net.init((10, 32), 0.3)
    b = net.init((10,), 0.1)
    out = net.node("Gemm", [p, w, b], transB=1)
    return net.model(out, [3, 16, 16], [10])


def test_resnet8_matches_onnxruntime(tmp_path):
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    info = compare(resnet8(), x, tmp_path)
    # Stage boundaries keep two or three tensors live, never all of them.
    assert info["arena_values"] * 3 < info["tensor_values"], info


def test_squeeze_and_excitation_matches_onnxruntime(tmp_path):
    net = Net()
    x = net.node("Relu", [net.conv("x", 4, 8, 3, bn=False)])
    s = net.node("GlobalAveragePool", [x])
    s = net.node("Relu", [net.conv(s, 8, 2, 1, bn=False)])
    g = net.node("Sigmoid", [net.conv(s, 2, 8, 1, bn=False)])
    y = net.node("Mul", [x, g])
    m = net.model(y, [4, 6, 6], [8, 6, 6])
    compare(m, rng.standard_normal((3, 4, 6, 6)).astype(np.float32), tmp_path)


def test_reduce_mean_gate_matches_onnxruntime(tmp_path):
    net = Net()
    x = net.node("Relu", [net.conv("x", 2, 4, 3, bn=False)])
    s = net.node("ReduceMean", [x], axes=[2, 3], keepdims=1)
    g = net.node("Sigmoid", [net.conv(s, 4, 4, 1, bn=False)])
    y = net.node("Mul", [g, x])
    m = net.model(y, [2, 5, 5], [4, 5, 5])
    compare(m, rng.standard_normal((2, 2, 5, 5)).astype(np.float32), tmp_path)


def test_concat_matches_onnxruntime(tmp_path):
    net = Net()
    a = net.node("Relu", [net.conv("x", 3, 4, 3, bn=False)])
    b = net.node("Tanh", [net.conv("x", 3, 2, 1, bn=False)])
    y = net.node("Concat", [a, "x", b], axis=1)
    m = net.model(y, [3, 5, 5], [9, 5, 5])
    compare(m, rng.standard_normal((2, 3, 5, 5)).astype(np.float32), tmp_path)
