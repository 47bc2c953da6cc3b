"""`kiln import` against real Keras (3, JAX backend): small models trained
here on scikit-learn's digits — an MLP, a CNN (same/dilated/strided
convolutions, pooling), a BatchNormalization CNN whose moving statistics
training moved, a Normalization regression, Rescaling in the first two —
saved as Keras 3 saves them (.keras, legacy .h5) and in the Keras 2 /
tf.keras .h5 layout (keras_models.save_keras2_h5), then imported, built
into a wasm module and run by `kiln predict` (wasmtime): every score within
1e-5 of `model.predict` on 200 held-out rows (and `kiln build` of the Keras
file itself gives the same scores). A Lambda layer, a multi-input
model and a custom layer are refused with errors naming them."""

import json
import re
import subprocess
import sys
from pathlib import Path

import keras_models as km  # sets KERAS_BACKEND before keras loads
import keras
import numpy as np
import pytest

from onnx_kiln import kiln, predict, refused

TOL = 1e-5
HELD = 200


@pytest.fixture(scope="module")
def digits():
    x, y = km.digits()
    return x[:-HELD], y[:-HELD], x[-HELD:]


def saves(model, tmp):
    paths = {"keras": tmp / "m.keras", "h5": tmp / "m.h5", "keras2.h5": tmp / "m2.h5"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    km.save_keras2_h5(model, paths["keras2.h5"])
    return paths


def check_all_formats(model, held, tmp_path, task="classification"):
    want = model.predict(km.rows(model, held), verbose=0).reshape(len(held), -1)
    for fmt, path in saves(model, tmp_path).items():
        out = tmp_path / f"{path.stem}.safetensors"
        summary = kiln("import", path, "-o", out).stdout
        assert f'"task":"{task}"' in summary, summary
        kiln("build", out, "-o", tmp_path / "m.wasm")
        got, _ = predict(tmp_path / "m.wasm", held, tmp_path)
        diff = np.abs(got - want).max()
        print(f"{model.name} ({fmt}): max |kiln - keras| = {diff:.3g} over {len(held)} rows")
        assert got.shape == want.shape
        assert diff <= TOL, fmt
        # `kiln build` takes the Keras file directly: the same bits.
        kiln("build", path, "-o", tmp_path / "direct.wasm")
        direct, _ = predict(tmp_path / "direct.wasm", held, tmp_path)
        assert np.array_equal(direct, got), fmt


def test_mlp(digits, tmp_path):
    x, y, held = digits
    check_all_formats(km.train(km.mlp(), x, y), held, tmp_path)


def test_cnn(digits, tmp_path):
    x, y, held = digits
    check_all_formats(km.train(km.cnn(), x, y, epochs=4), held, tmp_path)


def test_batch_norm_cnn(digits, tmp_path):
    x, y, held = digits
    model = km.bn_cnn()
    km.train(model, km.rows(model, x) / 16, y, epochs=4)
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    # Training moved the moving statistics away from their initial zeros and
    # ones (the conv ones far: their inputs are not centred).
    assert len(bn) == 3
    for layer in bn:
        assert np.abs(layer.moving_mean.numpy()).max() > 5e-4
        assert np.abs(layer.moving_variance.numpy() - 1).max() > 0.05
    assert np.abs(bn[0].moving_mean.numpy()).max() > 0.05
    check_all_formats(model, held / 16, tmp_path)


def test_normalization_regression(digits, tmp_path):
    x, y, held = digits
    model = km.train(km.normalized(x), x, y.astype(np.float32), regression=True)
    check_all_formats(model, held, tmp_path, task="regression")


@pytest.mark.parametrize(
    "kind, options",
    [("lstm", {}), ("gru", {}), ("gru", {"reset_after": False}), ("rnn", {})],
    ids=["lstm", "gru", "gru-reset-before", "simple-rnn"],
)
def test_recurrent(kind, options, digits, tmp_path):
    """A recurrent layer returning sequences, then a Bidirectional one:
    kiln's rnn/gru/lstm (reset_after=False → linear_before_reset false)."""
    x, y, held = digits
    model = km.train(km.recurrent(kind, **options), x.reshape(-1, 8, 8), y, epochs=3)
    check_all_formats(model, held.reshape(-1, 8, 8), tmp_path)


def test_refusals(tmp_path):
    lam = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2)])
    lam.save(tmp_path / "lambda.keras")
    err = refused("import", tmp_path / "lambda.keras", "-o", tmp_path / "x.safetensors")
    assert 'layer "lambda" (Lambda)' in err and "nearest supported" in err, err

    a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    two = keras.Model([a, b], keras.layers.Add()([a, b]))
    for path in (tmp_path / "two.keras", tmp_path / "two.h5"):
        two.save(path)
        err = refused("import", path, "-o", tmp_path / "x.safetensors")
        assert 'multi-input functional model (inputs ["a", "b"])' in err, err

    class Doubler(keras.layers.Layer):
        def call(self, t):
            return t * 2

    custom = keras.Sequential([keras.Input((4,)), Doubler(name="twice")])
    custom.save(tmp_path / "custom.keras")
    err = refused("import", tmp_path / "custom.keras", "-o", tmp_path / "x.safetensors")
    assert 'layer "twice" (Doubler)' in err and "custom layer" in err, err

    rnn = keras.Sequential([keras.Input((8, 8)), keras.layers.LSTM(4, go_backwards=True)])
    rnn.save(tmp_path / "rnn.h5")
    err = refused("import", tmp_path / "rnn.h5", "-o", tmp_path / "x.safetensors")
    assert '(LSTM): `go_backwards` = true is not supported' in err, err


def test_readme_keras_section(tmp_path):
    """The README's Keras section, run: its Python saves model.h5 and prints
    Keras's predictions; `kiln import` prints what the README shows, and
    `kiln predict` gives Keras's predictions and the README's."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Models trained elsewhere: Keras", 1)[1].split("\n## ", 1)[0]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    console = re.search(r"```console\n(.*?)```", section, re.S).group(1)
    script = tmp_path / "save_model.py"
    script.write_text("import os\nos.environ.setdefault('KERAS_BACKEND', 'jax')\n" + python)
    out = subprocess.run(
        [sys.executable, script], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    keras_pred = np.array([float(v) for v in re.findall(r"-?\d+\.\d*", out)], dtype=np.float32)
    assert keras_pred.shape == (3,), out

    shown = console.splitlines()
    summary = json.loads(kiln("import", tmp_path / "model.h5", "-o", tmp_path / "model.safetensors").stdout)
    readme_summary = json.loads(shown[shown.index("$ kiln import model.h5 -o model.safetensors") + 1])
    for key in ("input", "keras_layers", "layers", "task"):
        assert summary[key] == readme_summary[key], key
    # The module the README builds, byte for byte as large.
    built = json.loads(kiln("build", tmp_path / "model.safetensors", "-o", tmp_path / "m.wasm").stdout)
    readme_built = json.loads(shown[shown.index("$ kiln build model.safetensors -o model.wasm"
                                                "      # or directly: kiln build model.h5 -o model.wasm") + 1])
    assert built["bytes"] == readme_built["bytes"]
    kiln("build", tmp_path / "model.h5", "-o", tmp_path / "model.wasm")
    got, _ = predict(tmp_path / "model.wasm", np.array([[1, 2], [3, 4], [5, 6]]), tmp_path)
    assert np.abs(got[:, 0] - keras_pred).max() <= TOL
    readme_values = [json.loads(line)["value"] for line in shown if line.startswith('{"value"')]
    assert np.abs(got[:, 0] - np.array(readme_values)).max() <= 1e-3
