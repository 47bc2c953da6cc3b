"""Writes the small Keras files the Rust tests read (runtime/src/import/
keras/tests.rs), so `cargo test` needs no Python: run from the repository
root with the test venv, `.venv/bin/python tests/data/keras/make.py`.

* mlp.h5, mlp.keras, mlp_keras2.h5 — the MLP (Rescaling, Dense, Dropout,
  LeakyReLU, softmax) as Keras 3 saves it (legacy .h5, .keras) and in the
  Keras 2 layout (gzip-compressed chunked datasets);
* cnn.keras — Reshape, Rescaling, Conv2D same/dilated/strided, MaxPooling2D;
* bn_cnn.h5 — BatchNormalization after a conv, an activation and a dense;
* graph.keras — a functional graph (keras_models.graph: Add, Multiply,
  Concatenate, depthwise, separable, ZeroPadding2D, Keras 3 arithmetic, an
  RGB input), its batch-norm statistics moved;
* lstm.keras, lstm.h5 — an LSTM returning sequences, then a Bidirectional
  one; gru_keras2.h5 — the same with GRUs (reset_after=False) in the
  Keras 2 layout;
* lambda.keras, two_inputs.keras, custom.keras — models kiln refuses;
* expected.json — per model, 8 held-out rows and Keras's predictions."""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402
import keras_models as km  # noqa: E402
import numpy as np  # noqa: E402

out = Path(__file__).resolve().parent
x, y = km.digits()
train_x, train_y, held = x[:-200], y[:-200], x[-8:]
expected = {}


def keep(name, model, files):
    expected[name] = {
        "rows": held.tolist(),
        "scores": model.predict(km.rows(model, held), verbose=0).reshape(8, -1).tolist(),
        "files": files,
    }


m = km.train(km.mlp(), train_x, train_y, epochs=3)
m.save(out / "mlp.h5")
m.save(out / "mlp.keras")
km.save_keras2_h5(m, out / "mlp_keras2.h5")
keep("mlp", m, ["mlp.h5", "mlp.keras", "mlp_keras2.h5"])

m = km.train(km.cnn(), train_x, train_y, epochs=2)
m.save(out / "cnn.keras")
keep("cnn", m, ["cnn.keras"])

m = km.bn_cnn()
m = km.train(m, km.rows(m, train_x) / 16, train_y, epochs=2)
m.save(out / "bn_cnn.h5")
expected["bn_cnn"] = {
    "rows": (held / 16).tolist(),
    "scores": m.predict(km.rows(m, held / 16), verbose=0).tolist(),
    "files": ["bn_cnn.h5"],
}

m = km.moved_statistics(km.graph(), (8, 8, 3))
m.save(out / "graph.keras")
rgb = np.random.default_rng(3).uniform(0, 16, (8, 8, 8, 3)).astype(np.float32)
expected["graph"] = {
    "rows": rgb.reshape(8, -1).tolist(),
    "scores": m.predict(rgb, verbose=0).tolist(),
    "files": ["graph.keras"],
}

m = km.train(km.recurrent("lstm"), train_x.reshape(-1, 8, 8), train_y, epochs=1)
m.save(out / "lstm.keras")
m.save(out / "lstm.h5")
keep("lstm", m, ["lstm.keras", "lstm.h5"])
m = km.recurrent("gru", reset_after=False)
m = km.train(m, train_x.reshape(-1, 8, 8), train_y, epochs=1)
km.save_keras2_h5(m, out / "gru_keras2.h5")
keep("gru", m, ["gru_keras2.h5"])

keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2)]).save(
    out / "lambda.keras"
)
a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
keras.Model([a, b], keras.layers.Concatenate()([a, b])).save(out / "two_inputs.keras")


@keras.saving.register_keras_serializable(package="kiln_test")
class Doubler(keras.layers.Layer):
    def call(self, t):
        return t * 2


keras.Sequential([keras.Input((4,)), Doubler(name="doubler")]).save(out / "custom.keras")
(out / "expected.json").write_text(json.dumps(expected))
