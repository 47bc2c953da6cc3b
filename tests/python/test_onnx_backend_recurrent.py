"""ONNX's own backend test cases for RNN, GRU and LSTM, as the `onnx` pip
package ships them (`onnx.backend.test.case.node.{rnn,gru,lstm}`, the
definitions `onnx/backend/test/data/node/test_{rnn,gru,lstm,simple_rnn}_*`
are generated from; this wheel carries the definitions, not the generated
directories).

A case's weights are graph inputs with values in its data set; kiln imports
weights only as constants, so each case becomes one model per output it
checks: the same node, its non-X inputs as initializers holding the case's
values, the one output read (made batch-first by a Transpose in layout 0,
as exporters do). Every model whose node kiln supports must import, build,
and predict (`kiln predict`, wasmtime) the case's expected output within
TOL; every other one must be refused with an error naming the node and its
op. The test prints the counts."""

import re
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.backend.test.case.node import collect_testcases

from onnx_kiln import kiln, predict, save

TOL = 1e-5
OPS = ("RNN", "GRU", "LSTM")
OUTPUTS = ("Y", "Y_h", "Y_c")


def cases():
    out = []
    # Collecting runs every op's case module once (it filters by op only
    # on the first call), so take them all and keep the recurrent ones.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        every = collect_testcases()
    for case in every:
        node = case.model.graph.node[0]
        if len(case.model.graph.node) != 1 or node.op_type not in OPS:
            continue
        inputs, expected = case.data_sets[0]
        names = [o for o in node.output if o]
        for name, want in zip(names, expected):
            out.append(pytest.param(case, node, inputs, name, want, id=f"{case.name}[{name}]"))
    return out


def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def supported(node, inputs, which):
    """What kiln's recurrent layers compute (docs/onnx.md): forward or
    bidirectional, Y or Y_h, full-length sequence_lens, zero initial
    states and peepholes."""
    at = attrs(node)
    if at.get("direction", b"forward") not in (b"forward", b"bidirectional") or which == 2:
        return False
    steps = inputs[0].shape[1 if at.get("layout", 0) else 0]
    for i, v in enumerate(inputs[4:], start=4):
        if i < len(node.input) and node.input[i]:
            if i == 4 and not np.all(v == steps):
                return False
            if i > 4 and np.any(v != 0):
                return False
    return True


def one_output(case, node, inputs, name, want):
    """The case's node reading its weights as constants, `name` its one
    output, made batch-first as `y`."""
    layout = attrs(node).get("layout", 0)
    which = list(node.output).index(name)
    outputs = ["" for _ in node.output]
    outputs[which] = "y" if layout == 1 else "o"
    n = helper.make_node(node.op_type, list(node.input), outputs)
    n.attribute.extend(node.attribute)
    nodes = [n]
    if layout == 0:
        perm = [2, 0, 1, 3] if which == 0 else [1, 0, 2]
        nodes.append(helper.make_node("Transpose", ["o"], ["y"], perm=perm))
    inits = [
        numpy_helper.from_array(v, node.input[i])
        for i, v in enumerate(inputs)
        if i > 0 and i < len(node.input) and node.input[i]
    ]
    batch_axis = 0 if layout else (2 if which == 0 else 1)
    x = inputs[0]
    in_shape = ["N", x.shape[1], x.shape[2]] if layout else [x.shape[0], "N", x.shape[2]]
    g = helper.make_graph(
        nodes,
        "case",
        [helper.make_tensor_value_info(node.input[0], TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *(int(v) for v in np.delete(want.shape, batch_axis))])],
        inits,
    )
    return helper.make_model(g, opset_imports=list(case.model.opset_import), ir_version=8), which, layout


@pytest.mark.parametrize("case,node,inputs,name,want", cases())
def test_backend_case(case, node, inputs, name, want, tmp_path):
    m, which, layout = one_output(case, node, inputs, name, want)
    src = save(m, tmp_path / "case.onnx")
    r = kiln("import", src, "-o", tmp_path / "case.safetensors", check=False)
    if not supported(node, inputs, which):
        assert r.returncode == 1 and "panicked" not in r.stderr, r.stderr
        named = re.findall(r"node \d+ \((\w+)\)", r.stderr)
        assert node.op_type in named, f"refusal does not name the node: {r.stderr}"
        print(f"{case.name}[{name}]: refused: {r.stderr.strip()}")
        return
    assert r.returncode == 0, f"{case.name}[{name}] is supported but refused: {r.stderr}"
    kiln("build", tmp_path / "case.safetensors", "-o", tmp_path / "case.wasm")
    x = inputs[0] if layout else inputs[0].transpose(1, 0, 2)
    got, _ = predict(tmp_path / "case.wasm", x, tmp_path)
    if layout == 0:
        want = want.transpose(2, 0, 1, 3) if which == 0 else want.transpose(1, 0, 2)
    want = want.reshape(len(x), -1)
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = float(np.abs(got - want).max())
    print(f"{case.name}[{name}]: max |kiln − onnx| = {diff:.2e}")
    assert diff <= TOL, f"{case.name}[{name}]: {diff}"


def test_every_op_has_cases():
    """The suite is not silently empty: each op ships cases, some of them
    supported and some refused."""
    params = cases()
    assert {p.values[1].op_type for p in params} == set(OPS)
    kinds = {supported(p.values[1], p.values[2], list(p.values[1].output).index(p.values[3])) for p in params}
    assert kinds == {True, False}, kinds
