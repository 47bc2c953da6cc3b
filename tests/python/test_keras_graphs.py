"""`kiln import` of Keras functional graphs (issue #25) against real Keras
(3, JAX backend): keras.applications.MobileNetV2 (alpha 0.35) and
MobileNetV3Small at 96×96×3, their BatchNorm statistics moved by a short
fit on random data, saved as `.keras`, imported, built and run by `kiln
predict` (wasmtime): every score within 1e-4 of `model.predict`. Also a
small graph with every join (Add, Multiply as a squeeze-and-excitation
gate and element-wise, Concatenate), DepthwiseConv2D with a channel
multiplier, SeparableConv2D, ZeroPadding2D, ReLU(max_value=6),
hard_swish/hard_sigmoid, the tensor arithmetic Keras 3 records as
operations (`x + 3.0`), an RGB input and Dense → Reshape → Conv2D, as
.keras and Keras 3 .h5 (Keras 2 has no such operations), ≤ 1e-5. And
the refusals of what remains unsupported, by layer and class."""

import json

import keras_models as km  # sets KERAS_BACKEND before keras loads
import keras
import numpy as np
import pytest

from onnx_kiln import kiln, predict, refused

layers = keras.layers


def compare(model, x, tmp_path, path, tol):
    want = model.predict(x, verbose=0).reshape(len(x), -1)
    out = tmp_path / f"{path.stem}.safetensors"
    summary = json.loads(kiln("import", path, "-o", out).stdout)
    kiln("build", out, "-o", tmp_path / "m.wasm")
    got, _ = predict(tmp_path / "m.wasm", x, tmp_path)
    assert got.shape == want.shape
    diff = np.abs(got - want).max()
    print(f"{model.name} ({path.name}): max |kiln - keras| = {diff:.3g} over {len(x)} rows")
    assert diff <= tol, (path.name, diff)
    return summary


@pytest.mark.parametrize("which", ["v2", "v3small"])
def test_mobilenet(which, tmp_path):
    shape = (96, 96, 3)
    if which == "v2":
        model = keras.applications.MobileNetV2(
            weights=None, alpha=0.35, input_shape=shape, classes=10
        )
    else:
        model = keras.applications.MobileNetV3Small(weights=None, input_shape=shape, classes=10)
    km.moved_statistics(model, shape)
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(1).uniform(0, 255, (4, *shape)).astype(np.float32)
    if which == "v2":
        x = x / 127.5 - 1  # MobileNetV2 has no Rescaling layer: inputs in [-1, 1]
    summary = compare(model, x, tmp_path, tmp_path / "m.keras", 1e-4)
    assert summary["task"] == "classification"


def test_small_graph_all_formats(tmp_path):
    model = km.graph()
    km.moved_statistics(model, (8, 8, 3))
    x = np.random.default_rng(2).uniform(0, 16, (50, 8, 8, 3)).astype(np.float32)
    paths = {"keras": tmp_path / "g.keras", "h5": tmp_path / "g.h5"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    for path in paths.values():
        compare(model, x, tmp_path, path, 1e-5)


def test_graph_refusals(tmp_path):
    def err(model):
        model.save(tmp_path / "r.keras")
        return refused("import", tmp_path / "r.keras", "-o", tmp_path / "r.safetensors")

    inp = keras.Input((4, 4, 2))
    sub = keras.Model(inp, layers.Subtract(name="minus")([inp, inp]))
    e = err(sub)
    assert 'layer "minus" (Subtract)' in e and "nearest supported" in e, e

    a = layers.Conv2D(2, 1, name="a")(inp)
    two = keras.Model(inp, [a, layers.Conv2D(2, 1, name="b")(inp)])
    assert "outputs" in err(two)

    shared = layers.Dense(2, name="shared")
    vin = keras.Input((2,))
    e = err(keras.Model(vin, layers.Add()([shared(vin), shared(vin)])))
    assert 'layer "shared" (Dense)' in e and "shared layer" in e, e

    pad = layers.ZeroPadding2D(1, name="pad")(inp)
    e = err(keras.Model(inp, layers.MaxPooling2D(2, name="pool")(pad)))
    assert 'layer "pool" (MaxPooling2D)' in e and "ZeroPadding2D" in e, e

    e = err(keras.Model(inp, layers.Concatenate(axis=1, name="cat")([inp, inp])))
    assert 'layer "cat" (Concatenate)' in e and "axis" in e, e
