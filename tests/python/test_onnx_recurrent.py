"""`kiln import` of ONNX RNN, GRU and LSTM against onnxruntime: every
supported attribute combination — each op (GRU with and without
linear_before_reset), forward and bidirectional, output Y or Y_h, layout 0
and 1 — written with onnx.helper, imported, built and run by `kiln predict`
(wasmtime), within 1e-5 of onnxruntime. onnxruntime refuses layout 1
("Batchwise recurrent operations are not supported"), so a layout-1 model
is compared with onnxruntime on the same weights in layout 0. Also the
shape patterns exporters put after the ops, stacked layers with a dense
head, and the refusals, each naming the node."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx_kiln import import_build, ort_run, predict, refused, save

TOL = 1e-5
OPSET = 17
T, F, H, N = 5, 3, 4, 7
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
rng = np.random.default_rng(19)


def tensors(op, d, f=F, h=H, prefix=""):
    g = GATES[op] * h
    arrays = {
        "W": rng.uniform(-0.7, 0.7, (d, g, f)),
        "R": rng.uniform(-0.7, 0.7, (d, g, h)),
        "B": rng.uniform(-0.5, 0.5, (d, 2 * g)),
    }
    return [numpy_helper.from_array(v.astype(np.float32), prefix + k) for k, v in arrays.items()]


def graph(nodes, inits, in_shape, out_shape, opset=OPSET):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def single(op, direction, output, layout, lbr=0):
    """One recurrent op over x, its output Y or Y_h made batch-first as y
    (layout 0: by a Transpose; layout 1: as it is)."""
    d = 2 if direction == "bidirectional" else 1
    attrs = {"linear_before_reset": lbr} if op == "GRU" else {}
    name = "y" if layout == 1 else "o"
    outputs = [name, ""] if output == "Y" else ["", name]
    nodes = [
        helper.make_node(
            op, ["x", "W", "R", "B"], outputs, hidden_size=H, direction=direction, layout=layout, **attrs
        )
    ]
    if layout == 0:
        perm = [2, 0, 1, 3] if output == "Y" else [1, 0, 2]
        nodes.append(helper.make_node("Transpose", ["o"], ["y"], perm=perm))
    in_shape = ["N", T, F] if layout == 1 else [T, "N", F]
    out_shape = ["N", T, d, H] if output == "Y" else ["N", d, H]
    inits = tensors(op, d)
    return graph(nodes, inits, in_shape, out_shape), inits


def ort_batch_first(m, x, layout):
    """onnxruntime on batch-first rows `x` [N, T, F]."""
    feed = x if layout == 1 else x.transpose(1, 0, 2)
    return ort_run(m, feed).reshape(len(x), -1)


def kiln_rows(m, x, tmp_path):
    module = import_build(m, tmp_path)
    got, _ = predict(module, x, tmp_path)
    return got


def check(got, want):
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = np.abs(got - want).max()
    assert diff <= TOL, diff
    return diff


def x_rows(n=N):
    return rng.uniform(-2, 2, (n, T, F)).astype(np.float32)


CELLS = [("RNN", 0), ("GRU", 0), ("GRU", 1), ("LSTM", 0)]


@pytest.mark.parametrize("op,lbr", CELLS)
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("output", ["Y", "Y_h"])
def test_layout_0_against_onnxruntime(op, lbr, direction, output, tmp_path):
    m, _ = single(op, direction, output, 0, lbr)
    x = x_rows()
    check(kiln_rows(m, x, tmp_path), ort_batch_first(m, x, 0))


@pytest.mark.parametrize("op,lbr", CELLS)
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("output", ["Y", "Y_h"])
def test_layout_1_equals_layout_0(op, lbr, direction, output, tmp_path):
    m1, inits = single(op, direction, output, 1, lbr)
    # The same weights in layout 0, which onnxruntime runs.
    m0, _ = single(op, direction, output, 0, lbr)
    m0.graph.ClearField("initializer")
    m0.graph.initializer.extend(inits)
    x = x_rows()
    check(kiln_rows(m1, x, tmp_path), ort_batch_first(m0, x, 0))


def test_optional_inputs_and_default_attributes(tmp_path):
    """No B; explicit default activations; sequence_lens constant at the
    full length; zero initial states; opset 14 without `layout`."""
    d = 2
    w, r, _ = tensors("LSTM", d)
    lens = numpy_helper.from_array(np.full(N, T, dtype=np.int32), "lens")
    zeros = numpy_helper.from_array(np.zeros((d, N, H), np.float32), "h0")
    node = helper.make_node(
        "LSTM",
        ["x", "W", "R", "", "lens", "h0", "h0"],
        ["", "o"],
        hidden_size=H,
        direction="bidirectional",
        activations=["Sigmoid", "Tanh", "Tanh"] * 2,
    )
    tr = helper.make_node("Transpose", ["o"], ["y"], perm=[1, 0, 2])
    m = graph([node, tr], [w, r, lens, zeros], [T, "N", F], ["N", d, H], opset=14)
    x = x_rows()
    check(kiln_rows(m, x, tmp_path), ort_batch_first(m, x, 0))


def test_exporter_patterns_and_a_stacked_model(tmp_path):
    """PyTorch's shapes: a bidirectional LSTM's Y through Transpose
    [0, 2, 1, 3] and Reshape [0, 0, -1] into a GRU (time-major, as PyTorch
    stacks layers), whose Y_h is squeezed ([1, N, H] → [N, H]); then Gemm
    and Softmax."""
    lstm = tensors("LSTM", 2, prefix="a")
    gru = tensors("GRU", 1, f=2 * H, h=5, prefix="b")
    nodes = [
        helper.make_node("LSTM", ["x", "aW", "aR", "aB"], ["y1"], hidden_size=H, direction="bidirectional"),
        helper.make_node("Transpose", ["y1"], ["t1"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["t1", "shape"], ["r1"]),
        helper.make_node("GRU", ["r1", "bW", "bR", "bB"], ["", "h2"], hidden_size=5, linear_before_reset=1),
        helper.make_node("Squeeze", ["h2", "axes"], ["s2"]),
        helper.make_node("Gemm", ["s2", "fc", "fcb"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"]),
    ]
    inits = lstm + gru + [
        numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(rng.uniform(-1, 1, (3, 5)).astype(np.float32), "fc"),
        numpy_helper.from_array(rng.uniform(-1, 1, 3).astype(np.float32), "fcb"),
    ]
    m = graph(nodes, inits, [T, "N", F], ["N", 3])
    x = x_rows()
    check(kiln_rows(m, x, tmp_path), ort_batch_first(m, x, 0))


def test_refusals_name_the_node(tmp_path):
    def err(m):
        return refused("import", save(m, tmp_path / "bad.onnx"), "-o", tmp_path / "bad.safetensors")

    def rnn(**attrs):
        return helper.make_node("RNN", ["x", "W", "R", "B", *attrs.pop("extra", [])], ["", "o"], hidden_size=H, **attrs)

    tr = helper.make_node("Transpose", ["o"], ["y"], perm=[1, 0, 2])
    inits = tensors("RNN", 1)

    def model(node, more=()):
        return graph([node, tr], inits + list(more), [T, "N", F], ["N", 1, H])

    cases = [
        (rnn(activations=["Relu"]), (), "activations"),
        (rnn(direction="reverse"), (), "direction"),
        (rnn(clip=3.0), (), "clip"),
        (
            rnn(extra=["lens"]),
            [numpy_helper.from_array(np.full(N, T - 1, np.int32), "lens")],
            "sequence_lens",
        ),
        (
            rnn(extra=["", "h0"]),
            [numpy_helper.from_array(np.ones((1, N, H), np.float32), "h0")],
            "initial_h",
        ),
    ]
    for node, more, what in cases:
        node.name = "rec"
        e = err(model(node, more))
        assert '"rec" (RNN)' in e and what in e, e
    # Both outputs read.
    both = helper.make_node("RNN", ["x", "W", "R", "B"], ["o", "hh"], hidden_size=H, name="rec")
    nodes = [
        both,
        helper.make_node("Transpose", ["hh"], ["t"], perm=[1, 0, 2]),
        helper.make_node("Add", ["t", "o"], ["y"]),
    ]
    e = err(graph(nodes, inits, [T, "N", F], ["N", 1, H]))
    assert '"rec" (RNN)' in e and "Y_h" in e, e
