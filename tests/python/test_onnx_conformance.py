"""The PyTorch-converted conformance cases shipped inside the `onnx` package
(`onnx/backend/test/data/pytorch-converted/*`), and its PyTorch-operator
cases of the graph ops (`pytorch-operator/*` with `Concat` or
`ReduceMean`; pytorch-converted has none): every case whose ops kiln
supports must import, build and predict within 1e-4 of the reference
outputs; every other case must be refused with an error naming the node and
its op (or the unsupported input type, or the graph's inputs when it has
several). Prints the pass count."""

import glob
import os
import re

import numpy as np
import onnx
from onnx import numpy_helper

from onnx_kiln import kiln, predict

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend/test/data")
CASES = os.path.join(DATA, "pytorch-converted")
# The pytorch-operator cases of these ops join the table.
GRAPH_OPS = {"Concat", "ReduceMean"}
TOL = 1e-4

# The ops `kiln import` lowers (docs/onnx.md).
SUPPORTED = {
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg", "Relu", "LeakyRelu", "PRelu", "Sigmoid",
    "Tanh", "Softmax", "LogSoftmax", "Flatten", "Reshape", "Transpose", "BatchNormalization",
    "GlobalAveragePool", "Dropout", "Identity", "Constant", "Cast",
    "Conv", "MaxPool", "AveragePool", "Clip", "HardSigmoid", "HardSwish", "Pad",
    "Concat", "ReduceMean",
}  # fmt: skip
# Cases made of supported ops that use them outside the supported set:
# PixelShuffle transposes the computed tensor (only weights may be transposed).
OUT_OF_SCOPE = {"test_PixelShuffle": "Transpose"}


def joins_in_scope(m):
    """A kiln model has one input; Concat joins along the channel axis
    (axis 1), ReduceMean averages exactly H and W of [N, C, H, W]."""
    weights = {t.name for t in m.graph.initializer}
    if len([i for i in m.graph.input if i.name not in weights]) != 1:
        return False
    rank = len(m.graph.input[0].type.tensor_type.shape.dim)
    for n in m.graph.node:
        at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Concat" and at.get("axis") not in (1, 1 - rank):
            return False
        if n.op_type == "ReduceMean" and (rank != 4 or sorted(a % 4 for a in at.get("axes", [])) != [2, 3]):
            return False
    return True


def window_in_scope(m):
    """Conv and pools map onto kiln's conv2d / max_pool / avg_pool: 2-D over
    [N, C, H, W], one stride; convolutions with any padding and one
    dilation for both axes, pools undilated and unpadded with square
    windows and no ceil_mode. A Pad is in scope when a Conv reads it."""
    rank = len(m.graph.input[0].type.tensor_type.shape.dim)
    for n in m.graph.node:
        if n.op_type == "Pad":
            at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            readers = [r.op_type for r in m.graph.node if n.output[0] in r.input]
            p = list(at.get("pads", [1]))
            zero = at.get("mode", b"constant") == b"constant" and at.get("value", 0.0) == 0.0
            if readers != ["Conv"] or not zero or len(p) != 8 or any(p[i] for i in (0, 1, 4, 5)):
                return False
        if n.op_type not in ("Conv", "MaxPool", "AveragePool"):
            continue
        if rank != 4:
            return False
        at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        pads = list(at.get("pads", [0, 0, 0, 0]))
        strides = list(at.get("strides", [1, 1]))
        dilations = list(at.get("dilations", [1, 1]))
        if dilations[0] != dilations[1] or strides[0] != strides[1]:
            return False
        if n.op_type != "Conv" and (dilations != [1, 1] or at.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID")):
            return False
        if n.op_type != "Conv":
            k = list(at["kernel_shape"])
            if any(pads) or k[0] != k[1] or at.get("ceil_mode", 0) != 0:
                return False
    return True


def run_case(case_dir, tmp):
    """None if the case passes; otherwise why not."""
    m = onnx.load(os.path.join(case_dir, "model.onnx"))
    ops = {n.op_type for n in m.graph.node}
    name = os.path.basename(case_dir)
    in_scope = ops <= SUPPORTED and name not in OUT_OF_SCOPE and window_in_scope(m) and joins_in_scope(m)
    lib = tmp / f"{name}.safetensors"
    r = kiln("import", os.path.join(case_dir, "model.onnx"), "-o", lib, check=False)
    if r.returncode != 0:
        assert r.returncode == 1 and "panicked" not in r.stderr, r.stderr
        assert not in_scope, f"{name}: in scope but refused: {r.stderr}"
        named_op = re.search(r"node \d+ .*\((\w+)\)", r.stderr)
        named_input = re.search(r"input `[^`]*`: has element type \w+", r.stderr)
        named_input = named_input or re.search(r"the graph has \d+ inputs \[.*\]; kiln models take exactly one", r.stderr)
        assert named_input or (named_op and named_op.group(1) in ops), (
            f"{name}: refusal does not name the node and op: {r.stderr}"
        )
        if name in OUT_OF_SCOPE:
            assert OUT_OF_SCOPE[name] in r.stderr, r.stderr
        return "refused"
    assert in_scope, f"{name}: imported although {ops - SUPPORTED or name} is out of scope"
    module = tmp / f"{name}.wasm"
    kiln("build", lib, "-o", module)
    sets = sorted(glob.glob(os.path.join(case_dir, "test_data_set_*")))
    assert sets, f"{name}: no test data"
    for ds in sets:
        x = numpy_helper.to_array(onnx.load_tensor(os.path.join(ds, "input_0.pb")))
        want = numpy_helper.to_array(onnx.load_tensor(os.path.join(ds, "output_0.pb")))
        got, _ = predict(module, x, tmp)
        want = want.reshape(want.shape[0], -1)
        assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
        diff = float(np.abs(got - want).max())
        assert diff <= TOL, f"{name}: max |kiln - reference| = {diff}"
    return None


def graph_op_cases():
    """The pytorch-operator cases using `GRAPH_OPS`."""
    found = []
    for case in sorted(glob.glob(os.path.join(DATA, "pytorch-operator", "test_*"))):
        ops = {n.op_type for n in onnx.load(os.path.join(case, "model.onnx")).graph.node}
        if ops & GRAPH_OPS:
            found.append(case)
    return found


def test_pytorch_converted_cases(tmp_path):
    cases = sorted(glob.glob(os.path.join(CASES, "test_*")))
    assert cases, f"no conformance cases under {CASES}"
    operator = graph_op_cases()
    assert {n.op_type for c in operator for n in onnx.load(os.path.join(c, "model.onnx")).graph.node} >= GRAPH_OPS
    cases += operator
    passed, refused = [], []
    for case in cases:
        (refused if run_case(case, tmp_path) else passed).append(os.path.basename(case))
    print(
        f"\npytorch-converted + {len(operator)} pytorch-operator: {len(passed)} of {len(cases)} cases pass through "
        f"kiln import + build + predict; {len(refused)} refused with a named error"
    )
    print("passed:", " ".join(passed))
    assert passed, "no case passed"
