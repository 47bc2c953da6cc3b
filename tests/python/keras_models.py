"""Small Keras models trained on scikit-learn's digits, and the ways Keras
saves them: shared by tests/python/test_keras_import.py (which trains and
compares them against `kiln predict`) and tests/data/keras/make.py (which
keeps a few saved files for the Rust tests).

Keras runs on the JAX backend (requirements/test.txt: keras + jax[cpu]); no
TensorFlow is needed. A Keras 2 / tf.keras `.h5` cannot be written without
TensorFlow, so `save_keras2_h5` writes that layout with h5py from a Keras 3
model: the `model_config` of tf.keras (class `Model`/`Sequential`,
`batch_input_shape`, nested `inbound_nodes` lists) as a fixed-length string,
`layer_names`/`weight_names` as fixed-length string arrays, weights under
`model_weights/<layer>/<layer>/<weight>:0` — and, to cover what other HDF5
writers do, chunked, gzip-compressed datasets."""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

layers = keras.layers


def digits():
    """Pixels in [0, 16], labels; the last 200 rows are held out."""
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y


def mlp():
    return keras.Sequential(
        [
            keras.Input((64,)),
            layers.Rescaling(1 / 16),
            layers.Dense(32, activation="relu"),
            layers.Dropout(0.1),
            layers.Dense(16),
            layers.LeakyReLU(negative_slope=0.1),
            layers.Dense(10, activation="softmax"),
        ]
    )


def cnn():
    """Image rows: [8, 8, 1] channels-last, fed flat as Keras takes them."""
    inp = keras.Input((64,))
    x = layers.Reshape((8, 8, 1))(inp)
    x = layers.Rescaling(1 / 16)(x)
    x = layers.Conv2D(6, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(8, 2, padding="same", dilation_rate=2)(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="tanh")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inp, x)


def bn_cnn():
    """Batch norms after a conv (folded into it), after an activation (a
    per-channel affine) and after a dense layer; trained, so the moving
    statistics are not the initial zeros and ones."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(8, 3, use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Conv2D(8, 3, padding="valid", activation="relu"),
            layers.BatchNormalization(),
            layers.AveragePooling2D(2),
            layers.GlobalAveragePooling2D(),
            layers.Dense(16),
            layers.BatchNormalization(),
            layers.Activation("sigmoid"),
            layers.Dense(10),
            layers.Softmax(),
        ]
    )


def recurrent(kind, **options):
    """Digits as sequences: 8 steps (image rows) of 8 features."""
    cell = {"lstm": layers.LSTM, "gru": layers.GRU, "rnn": layers.SimpleRNN}[kind]
    return keras.Sequential(
        [
            keras.Input((8, 8)),
            layers.Rescaling(1 / 16),
            cell(16, return_sequences=True, **options),
            layers.Bidirectional(cell(8, **options)),
            layers.Dense(10, activation="softmax"),
        ]
    )


def graph():
    """Every join and the MobileNet pieces, on an RGB 8×8 input."""
    inp = keras.Input((8, 8, 3))
    x = layers.Rescaling(1 / 8, offset=-1)(inp)
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(max_value=6)(x)
    r = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=1)(x)
    r = layers.Activation("hard_swish")(r)
    x = layers.Add()([x, r])
    # Squeeze and excitation, with the arithmetic Keras 3 records as ops.
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.Conv2D(4, 1, activation="relu")(s)
    s = layers.Conv2D(8, 1)(s)
    s = layers.ReLU(6.0)(s + 3.0) * (1.0 / 6.0)
    x = layers.Multiply()([s, x])
    p = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    p = layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, activation="hard_sigmoid")(p)
    q = layers.SeparableConv2D(16, 3, strides=2, padding="same")(x)
    x = layers.Concatenate()([p, q])
    x = layers.Multiply()([x, layers.Activation("sigmoid")(x)])
    x = layers.GlobalAveragePooling2D()(x)
    d = layers.Dense(2 * 2 * 4, activation="tanh")(x)
    d = layers.Reshape((2, 2, 4))(d)
    d = layers.Conv2D(4, 2, dilation_rate=1, activation="relu")(d)
    d = layers.Flatten()(d)
    x = layers.Concatenate()([x, d])
    x = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inp, x)


def moved_statistics(model, shape, steps=3):
    """A short fit on random data: the BatchNorm moving statistics move."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16 * steps, *shape)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    bn = [l for l in model.layers if isinstance(l, layers.BatchNormalization)]
    assert bn and max(np.abs(l.moving_mean.numpy()).max() for l in bn) > 1e-3
    return model


def normalized(x):
    norm = layers.Normalization()
    norm.adapt(x)
    return keras.Sequential(
        [keras.Input((64,)), norm, layers.Dense(16, activation="tanh"), layers.Dense(1)]
    )


def train(model, x, y, epochs=8, regression=False):
    keras.utils.set_random_seed(0)
    loss = "mse" if regression else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


def rows(model, x):
    """The rows as the model takes them (image models take [8, 8, 1])."""
    shape = model.inputs[0].shape[1:]
    return x.reshape((len(x), *shape))


def save_keras2_h5(model, path):
    """`model` in the Keras 2 / tf.keras legacy HDF5 layout (see above)."""

    def k2(layer_cfg):
        cfg = dict(layer_cfg["config"])
        cfg.pop("dtype", None)
        if "batch_shape" in cfg:
            cfg["batch_input_shape"] = cfg.pop("batch_shape")
        return cfg

    cfg = json.loads(json.dumps(model.get_config()))
    is_seq = isinstance(model, keras.Sequential)
    if is_seq:
        config = {"name": cfg["name"], "layers": []}
        for lc in cfg["layers"]:
            config["layers"].append({"class_name": lc["class_name"], "config": k2(lc)})
    else:
        config = {"name": cfg["name"], "layers": [], "input_layers": [], "output_layers": []}
        for lc in cfg["layers"]:
            nodes = []
            for node in lc["inbound_nodes"]:
                hists = list(keras_histories(node["args"]))
                nodes.append([[h[0], h[1], h[2], {}] for h in hists])
            config["layers"].append(
                {
                    "class_name": lc["class_name"],
                    "config": k2(lc),
                    "name": lc["name"],
                    "inbound_nodes": nodes,
                }
            )
        config["input_layers"] = [cfg["input_layers"]]
        config["output_layers"] = [cfg["output_layers"]]
    model_config = {"class_name": "Sequential" if is_seq else "Model", "config": config}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(model_config).encode()
        g = f.create_group("model_weights")
        names = [layer.name for layer in model.layers]
        g.attrs["layer_names"] = np.array([n.encode() for n in names])
        for layer in model.layers:
            lg = g.create_group(layer.name)
            ws = layer.trainable_weights + layer.non_trainable_weights
            wnames = [f"{keras2_weight_name(layer, w)}:0".encode() for w in ws]
            lg.attrs["weight_names"] = np.array(wnames, dtype="S") if wnames else np.array([])
            for wname, w in zip(wnames, ws):
                v = np.asarray(w.numpy(), dtype=np.float32)
                # Scalars (Normalization's count) cannot be chunked.
                packed = {"chunks": v.shape, "compression": "gzip"} if v.ndim else {}
                lg.create_dataset(wname.decode(), data=v, **packed)


def keras_histories(v):
    """The `keras_history` triples in a Keras 3 node's arguments, in order."""
    if isinstance(v, dict):
        if "keras_history" in v.get("config", {}):
            yield v["config"]["keras_history"]
        else:
            for x in v.values():
                yield from keras_histories(x)
    elif isinstance(v, list):
        for x in v:
            yield from keras_histories(x)


def keras2_weight_name(layer, w):
    """tf.keras's name of a weight: the layer's name, then the path inside
    it (`lstm/lstm_cell/kernel`, `bidirectional/forward_lstm/...`)."""
    parts = w.path.split("/")
    if layer.name in parts:
        return "/".join(parts[parts.index(layer.name):])
    return f"{layer.name}/{w.name}"
