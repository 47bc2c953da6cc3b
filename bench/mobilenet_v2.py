"""Writes MobileNetV2-0.35 for 96×96×3 inputs and 10 classes as an ONNX
file, with seeded random weights (issue #25's graph model):

    python3 bench/mobilenet_v2.py OUT.onnx [SEED]

Keras's `MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), classes=10)`
layer for layer, in ONNX's NCHW: a 3×3 stride-2 stem convolution (SAME:
the odd row and column at the bottom and right), 17 inverted residual
blocks (1×1 expansion ×6 — none in the first — + BatchNormalization +
ReLU6 as Clip(0, 6); 3×3 depthwise convolution, stride 1 or 2; 1×1 linear
projection + BatchNormalization; a residual Add where shape allows), a
1×1 convolution to 1280 channels, GlobalAveragePool, Flatten, Gemm and
Softmax. Input `input` [N, 3, 96, 96], output `scores` [N, 10].

Weights are He-normal from `SEED` (default 25); BatchNorm statistics are
random near (0, 1), so every block's activations stay in ReLU6's range
rather than vanishing. The ONNX file is checked by `onnx.checker`. Used by
bench/run.sh (bench/make_models.py), the browser and worker tests
(tests/js-common/kiln.js) and the README's MobileNet example.
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ALPHA = 0.35
SIZE = 96
CLASSES = 10
# (expansion t, output channels c, repeats n, first stride s): the paper's table 2.
BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def divisible(v, d=8):
    """Keras's `_make_divisible`: the nearest multiple of `d`, never 10 % below `v`."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


class Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, kind):
        self.n += 1
        return f"{kind}{self.n}"

    def tensor(self, name, array):
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x, cin, cout, k=1, stride=1, group=1):
        """Conv (no bias: BatchNormalization follows) with SAME padding."""
        n = self.name("conv")
        fan_in = cin // group * k * k
        w = self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)
        # SAME on even sizes (every stride-2 input here is): k - stride in
        # all, the odd one at the bottom and right, as TensorFlow puts it.
        total = max(k - stride, 0)
        lo, hi = total // 2, total - total // 2
        self.nodes.append(
            helper.make_node(
                "Conv", [x, self.tensor(f"{n}.w", w)], [n], strides=[stride] * 2,
                pads=[lo, lo, hi, hi], group=group, name=n,
            )
        )
        return self.bn(n, cout)

    def bn(self, x, c):
        n = self.name("bn")
        r = self.rng
        params = [
            self.tensor(f"{n}.gamma", r.uniform(0.8, 1.2, c)),
            self.tensor(f"{n}.beta", r.normal(0.1, 0.1, c)),
            self.tensor(f"{n}.mean", r.normal(0.0, 0.1, c)),
            self.tensor(f"{n}.var", r.uniform(0.8, 1.2, c)),
        ]
        self.nodes.append(helper.make_node("BatchNormalization", [x, *params], [n], epsilon=1e-3, name=n))
        return n

    def relu6(self, x):
        n = self.name("relu6")
        self.nodes.append(helper.make_node("Clip", [x, "zero", "six"], [n], name=n))
        return n

    def block(self, x, cin, t, cout, stride):
        h = x
        if t != 1:
            h = self.relu6(self.conv(h, cin, cin * t))
        h = self.relu6(self.conv(h, cin * t, cin * t, k=3, stride=stride, group=cin * t))
        h = self.conv(h, cin * t, cout)
        if stride == 1 and cin == cout:
            n = self.name("add")
            self.nodes.append(helper.make_node("Add", [x, h], [n], name=n))
            h = n
        return h


def mobilenet_v2(seed=25, alpha=ALPHA, classes=CLASSES):
    """The ONNX model (checked)."""
    b = Builder(seed)
    b.tensor("zero", np.array(0.0))
    b.tensor("six", np.array(6.0))
    c = divisible(32 * alpha)
    x = b.relu6(b.conv("input", 3, c, k=3, stride=2))
    for t, cout, repeats, stride in BLOCKS:
        cout = divisible(cout * alpha)
        for i in range(repeats):
            x = b.block(x, c, t, cout, stride if i == 0 else 1)
            c = cout
    last = 1280 if alpha <= 1.0 else divisible(1280 * alpha)
    x = b.relu6(b.conv(x, c, last))
    w = b.rng.standard_normal((classes, last)) * np.sqrt(1.0 / last)
    b.tensor("fc.w", w)
    b.tensor("fc.b", np.full(classes, 0.01))
    b.nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1, name="softmax"),
    ]
    graph = helper.make_graph(
        b.nodes,
        f"mobilenet_v2_{alpha}_{SIZE}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    onnx.save(mobilenet_v2(int(sys.argv[2]) if len(sys.argv) == 3 else 25), sys.argv[1])
