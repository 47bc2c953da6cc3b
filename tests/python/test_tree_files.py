"""XGBoost's JSON and LightGBM's text models through `kiln import FILE`
(told by content, issue #22): trained here with fixed seeds on
scikit-learn's bundled data, saved in each library's own format, imported,
built and run by `kiln predict` (wasmtime); scores compared with the
library's own predict, with NaN inputs too (docs/trees.md says how each
library compares thresholds; kiln matches it for f32 rows)."""

import json

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_wine, make_regression

from onnx_kiln import kiln

# kiln sums in f64; XGBoost sums f32 leaves in f32, LightGBM f64 leaves in
# f64 (kiln rounds them to f32).
TOL = 2e-5


def data(kind):
    if kind == "binary":
        x, y = load_breast_cancer(return_X_y=True)
    elif kind == "multiclass":
        x, y = load_wine(return_X_y=True)
    else:
        x, y = make_regression(n_samples=400, n_features=10, noise=3.0, random_state=0)
    return x.astype(np.float32), y


def with_nans(x, seed=0, rate=0.15):
    x = x.copy()
    x[np.random.default_rng(seed).random(x.shape) < rate] = np.nan
    return x


def run(path, x, tmp):
    model = tmp / "model.safetensors"
    out = json.loads(kiln("import", path, "-o", model).stdout)
    module = tmp / "model.wasm"
    kiln("build", model, "-o", module)
    rows = tmp / "rows.json"
    rows.write_text(json.dumps([[None if np.isnan(v) else float(v) for v in r] for r in x]))
    lines = [json.loads(line) for line in kiln("predict", module, "--input", rows).stdout.splitlines()]
    native = kiln("predict", module, "--input", rows, "--native").stdout.splitlines()
    got = np.array([line["scores"] for line in lines], np.float32)
    assert got.tobytes() == np.array([json.loads(line)["scores"] for line in native], np.float32).tobytes()
    return out, got, lines


def close(got, want, what):
    want = np.asarray(want, np.float64).reshape(got.shape)
    err = np.abs(got - want).max() / max(1.0, np.abs(want).max())
    assert err <= TOL, f"{what}: relative error {err}"


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_xgboost_json(kind, tmp_path):
    x, y = data(kind)
    params = {"max_depth": 4, "eta": 0.3, "seed": 0, "nthread": 1}
    params.update(
        {
            "binary": {"objective": "binary:logistic"},
            "multiclass": {"objective": "multi:softprob", "num_class": 3},
            "regression": {"objective": "reg:squarederror"},
        }[kind]
    )
    # Train with NaNs so the default directions are learned.
    xt = with_nans(x, seed=1, rate=0.05)
    booster = xgb.train(params, xgb.DMatrix(xt, label=y), num_boost_round=30)
    path = tmp_path / "m.json"
    booster.save_model(path)
    xq = with_nans(x, seed=2)
    out, got, lines = run(path, xq, tmp_path)
    assert out["format"] == "xgboost"
    want = booster.predict(xgb.DMatrix(xq))
    if kind == "binary":
        want = np.stack([1 - want, want], axis=1)
    close(got, want, f"xgboost {kind}")


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_lightgbm_text(kind, tmp_path):
    x, y = data(kind)
    params = {"num_leaves": 15, "learning_rate": 0.2, "seed": 0, "verbose": -1, "num_threads": 1}
    params.update(
        {
            "binary": {"objective": "binary"},
            "multiclass": {"objective": "multiclass", "num_class": 3},
            "regression": {"objective": "regression"},
        }[kind]
    )
    xt = with_nans(x, seed=1, rate=0.05)
    booster = lgb.train(params, lgb.Dataset(xt, label=y), num_boost_round=30)
    path = tmp_path / "model.txt"
    booster.save_model(path)
    xq = with_nans(x, seed=2)
    out, got, lines = run(path, xq, tmp_path)
    assert out["format"] == "lightgbm"
    want = booster.predict(xq)
    if kind == "binary":
        want = np.stack([1 - want, want], axis=1)
    close(got, want, f"lightgbm {kind}")
    if kind != "regression":
        assert [line["class"] for line in lines] == list(np.asarray(want).argmax(axis=1))


def test_lightgbm_without_nans_in_training_reads_nan_as_zero(tmp_path):
    """Missing type None: LightGBM reads a NaN as 0.0, and so does kiln."""
    x, y = data("regression")
    booster = lgb.train({"num_leaves": 7, "verbose": -1, "seed": 0}, lgb.Dataset(x, label=y), 10)
    path = tmp_path / "model.txt"
    booster.save_model(path)
    xq = with_nans(x[:50], seed=3, rate=0.3)
    _, got, _ = run(path, xq, tmp_path)
    close(got, booster.predict(xq), "lightgbm, NaN as 0")


def test_broken_files_are_named(tmp_path):
    x, y = data("regression")
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=y), num_boost_round=2)
    path = tmp_path / "m.json"
    booster.save_model(path)
    m = json.loads(path.read_text())
    m["learner"]["gradient_booster"]["model"]["trees"][1]["split_indices"][0] = 99
    path.write_text(json.dumps(m))
    r = kiln("import", path, "-o", tmp_path / "x.safetensors", check=False)
    assert r.returncode == 1 and "trees[1].split_indices[0]" in r.stderr, r.stderr
    m["learner"]["objective"]["name"] = "survival:cox"
    path.write_text(json.dumps(m))
    r = kiln("import", path, "-o", tmp_path / "x.safetensors", check=False)
    assert r.returncode == 1 and "survival:cox" in r.stderr, r.stderr
