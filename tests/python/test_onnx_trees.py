"""ONNX-ML tree ensembles and linear models through `kiln import` (issue
#22): scikit-learn models trained here with fixed seeds on its bundled data,
exported with skl2onnx, imported, built into a module and run by `kiln
predict` (wasmtime); every score is compared with onnxruntime's and with the
library's own predict / predict_proba. Hand-written graphs cover every
`nodes_modes` value, the post-transforms and the missing-value rules."""

import json

import numpy as np
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer, load_wine, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from onnx_kiln import import_build, kiln, ort_run, predict, refused, save

# kiln sums leaf values in f64 (docs/trees.md), onnxruntime in f32.
TOL = 2e-5


@pytest.fixture(scope="module")
def cancer():
    x, y = load_breast_cancer(return_X_y=True)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def wine():
    x, y = load_wine(return_X_y=True)
    return x.astype(np.float32), y


def onnx_of(model, x, zipmap=False):
    classifier = hasattr(model, "predict_proba")
    options = {id(model): {"zipmap": False}} if classifier and not zipmap else None
    return to_onnx(model, x[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})


def check(model, x, tmp_path, output="probabilities", zipmap=False, tol=TOL):
    """kiln against onnxruntime and the library; returns kiln's scores."""
    onx = onnx_of(model, x, zipmap)
    module = import_build(onx, tmp_path)
    got, lines = predict(module, x, tmp_path)
    want = ort_run(onnx_of(model, x), x, output)
    want = want.reshape(got.shape)
    scale = max(1.0, float(np.abs(want).max()))
    assert np.abs(got - want).max() <= tol * scale, f"kiln vs onnxruntime: {np.abs(got - want).max()}"
    if hasattr(model, "predict_proba"):
        lib = model.predict_proba(x)
        assert np.abs(got - lib).max() <= tol, f"kiln vs predict_proba: {np.abs(got - lib).max()}"
        assert [line["label"] for line in lines] == [str(c) for c in model.predict(x)]
    else:
        lib = model.predict(x).reshape(got.shape)
        assert np.abs(got - lib).max() <= tol * max(1.0, np.abs(lib).max())
    return module, got


def test_random_forest_binary_and_multiclass(cancer, wine, tmp_path):
    for i, (x, y) in enumerate([cancer, wine]):
        rf = RandomForestClassifier(n_estimators=25, max_depth=6, random_state=0).fit(x, y)
        d = tmp_path / str(i)
        d.mkdir()
        check(rf, x, d)


def test_gradient_boosting_classifier_binary_and_multiclass(cancer, wine, tmp_path):
    for i, (x, y) in enumerate([cancer, wine]):
        gb = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(x, y)
        d = tmp_path / str(i)
        d.mkdir()
        check(gb, x, d)


def test_gradient_boosting_regressor(tmp_path):
    x, y = make_regression(n_samples=300, n_features=12, noise=5.0, random_state=0)
    x = x.astype(np.float32)
    gb = GradientBoostingRegressor(n_estimators=40, max_depth=4, random_state=0).fit(x, y)
    check(gb, x, tmp_path, output="variable")


def test_logistic_regression_and_scaler_pipeline(cancer, tmp_path):
    x, y = cancer
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    onx = to_onnx(pipe, x[:1], options={"zipmap": False})
    module = import_build(onx, tmp_path)
    got, lines = predict(module, x, tmp_path)
    assert np.abs(got - ort_run(onx, x, "probabilities")).max() <= 1e-4
    assert np.abs(got - pipe.predict_proba(x)).max() <= 1e-4
    assert [line["label"] for line in lines] == [str(c) for c in pipe.predict(x)]


def test_zipmap_and_bits_everywhere(wine, tmp_path):
    """A ZipMap export imports as its probability tensor with its labels;
    wasmtime and native agree in bits, one row at a time too."""
    x, y = wine
    rf = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=1).fit(x, y)
    module, got = check(rf, x, tmp_path, zipmap=True)
    meta = json.loads(kiln("inspect", module).stdout)["meta"]
    assert meta["labels"] == ["0", "1", "2"]
    rows = tmp_path / "rows.json"
    for extra in (["--native"], ["--batch", "1"]):
        out = kiln("predict", module, "--input", rows, *extra).stdout
        other = np.array([json.loads(line)["scores"] for line in out.splitlines()], np.float32)
        assert got.tobytes() == other.tobytes(), extra


def test_nan_follows_the_exported_direction(cancer, tmp_path):
    """skl2onnx writes `nodes_missing_value_tracks_true` (all 0): a NaN is a
    missing value routed to the false child, as onnxruntime routes it."""
    x, y = cancer
    gb = GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0).fit(x, y)
    onx = onnx_of(gb, x)
    module = import_build(onx, tmp_path)
    xn = x[:40].copy()
    rng = np.random.default_rng(0)
    xn[rng.random(xn.shape) < 0.2] = np.nan
    rows = tmp_path / "nan.json"
    rows.write_text(json.dumps([[None if np.isnan(v) else float(v) for v in r] for r in xn]))
    out = kiln("predict", module, "--input", rows).stdout
    got = np.array([json.loads(line)["scores"] for line in out.splitlines()], np.float32)
    assert np.abs(got - ort_run(onx, xn, "probabilities")).max() <= TOL


# --- graphs written with onnx.helper ---------------------------------------

MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]


def regressor(modes, post="NONE", targets=1, missing=None, aggregate="SUM", base=None):
    """One stump per mode on feature k % 3 at threshold 0.5 + k, leaves to
    target k % targets (true: k + 1, false: −k)."""
    nodes = {k: [] for k in ["treeids", "nodeids", "featureids", "values", "modes", "truenodeids", "falsenodeids"]}
    tw = {k: [] for k in ["treeids", "nodeids", "ids", "weights"]}
    for k, mode in enumerate(modes):
        for nid, m, yes, no in [(0, mode, 1, 2), (1, "LEAF", 0, 0), (2, "LEAF", 0, 0)]:
            for key, v in zip(nodes, [k, nid, k % 3, 0.5 + k if nid == 0 else 0.0, m, yes, no]):
                nodes[key].append(v)
        for nid, w in [(1, k + 1.0), (2, -float(k))]:
            for key, v in zip(tw, [k, nid, k % targets, w]):
                tw[key].append(v)
    attrs = {f"nodes_{k}": v for k, v in nodes.items()}
    attrs.update({f"target_{k}": v for k, v in tw.items()})
    attrs.update(n_targets=targets, post_transform=post, aggregate_function=aggregate)
    if missing is not None:
        attrs["nodes_missing_value_tracks_true"] = [missing] * len(nodes["modes"])
    if base is not None:
        attrs["base_values"] = base
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", name="trees", **attrs)
    g = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, targets])],
    )
    return helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)], ir_version=8
    )


def grid_rows():
    # Each feature on, below and above the thresholds 0.5 + k.
    vals = [-1.0, 0.5, 1.0, 1.5, 2.5, 3.5, 4.5, 5.5, 6.0]
    rng = np.random.default_rng(3)
    return rng.choice(vals, size=(60, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "post,targets,aggregate,base",
    [
        ("NONE", 1, "SUM", None),
        ("NONE", 2, "AVERAGE", [0.25, -0.5]),
        # onnxruntime leaves a single score untransformed (but by PROBIT).
        ("LOGISTIC", 1, "SUM", [0.1]),
        ("LOGISTIC", 2, "SUM", [0.1, 0.2]),
        ("SOFTMAX", 3, "SUM", None),
        ("SOFTMAX_ZERO", 4, "SUM", None),
        ("PROBIT", 1, "AVERAGE", [0.0]),
    ],
)
def test_every_mode_and_post_transform(post, targets, aggregate, base, tmp_path):
    m = regressor(MODES, post, targets, aggregate=aggregate, base=base)
    if post == "PROBIT":
        # The probit of a probability: leaves within (0, 1).
        for a in m.graph.node[0].attribute:
            if a.name == "target_weights":
                a.floats[:] = [0.05 + 0.9 * (i % 7) / 7 for i in range(len(a.floats))]
    module = import_build(m, tmp_path)
    x = grid_rows()
    got, _ = predict(module, x, tmp_path)
    want = ort_run(m, x)
    assert np.abs(got - want).max() <= 1e-5, (post, np.abs(got - want).max())


def test_nan_without_a_direction_is_refused_by_feature(tmp_path):
    m = regressor(MODES[:2])
    module = import_build(m, tmp_path)
    rows = tmp_path / "nan.json"
    rows.write_text(json.dumps([[0.0, None, 1.0]]))
    err = refused("predict", module, "--input", rows)
    assert "feature 1 is missing (null)" in err, err
    # With a direction it is routed as onnxruntime routes it.
    m = regressor(MODES, missing=1)
    d = tmp_path / "dir"
    d.mkdir()
    module = import_build(m, d)
    x = grid_rows()[:20]
    x[::3, 1] = np.nan
    x[1::4, 0] = np.nan
    rows.write_text(json.dumps([[None if np.isnan(v) else float(v) for v in r] for r in x]))
    out = kiln("predict", module, "--input", rows).stdout
    got = np.array([json.loads(line)["scores"] for line in out.splitlines()], np.float32)
    assert np.abs(got - ort_run(m, x)).max() <= 1e-5


def test_unsupported_tree_attributes_are_named(tmp_path):
    m = regressor(MODES[:1], aggregate="MAX")
    err = refused("import", save(m, tmp_path / "bad.onnx"), "-o", tmp_path / "bad.safetensors")
    assert '"trees"' in err and "aggregate_function" in err, err
    m = regressor(MODES[:1])
    m.graph.node[0].attribute.append(helper.make_attribute("nodes_values_as_tensor", helper.make_tensor("t", TensorProto.DOUBLE, [3], [0.5, 0, 0])))
    err = refused("import", save(m, tmp_path / "bad.onnx"), "-o", tmp_path / "bad.safetensors")
    assert "nodes_values_as_tensor" in err, err
