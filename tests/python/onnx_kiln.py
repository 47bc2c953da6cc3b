"""Shared helpers for the ONNX import tests: run the `kiln` binary (path in
$KILN, set by scripts/test.sh) and onnxruntime on the same model and rows."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def kiln_bin() -> str:
    path = os.environ.get("KILN")
    if not path or not Path(path).is_file():
        raise RuntimeError(
            "set KILN to the kiln binary (scripts/test.sh does: KILN=target/debug/kiln)"
        )
    # Absolute: tests run commands from scratch directories.
    return str(Path(path).resolve())


def kiln(*args, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([kiln_bin(), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"kiln {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r


def refused(*args) -> str:
    """Runs kiln expecting a clean failure; returns its stderr."""
    r = kiln(*args, check=False)
    assert r.returncode in (1, 2), f"expected a clean failure, got {r.returncode}: {r.stderr}"
    assert "panicked" not in r.stderr, r.stderr
    return r.stderr


def save(model, path: Path) -> Path:
    if isinstance(model, onnx.ModelProto):
        onnx.checker.check_model(model)
        model = model.SerializeToString()
    path.write_bytes(model)
    return path


def import_build(model, tmp: Path, *import_args) -> Path:
    """`kiln import` + `kiln build`; returns the module's path."""
    src = save(model, tmp / "model.onnx")
    kiln("import", src, "-o", tmp / "model.safetensors", *import_args)
    kiln("build", tmp / "model.safetensors", "-o", tmp / "model.wasm")
    return tmp / "model.wasm"


def predict(module: Path, x: np.ndarray, tmp: Path) -> tuple[np.ndarray, list]:
    """`kiln predict` (wasm, in wasmtime) on the rows of `x`; scores and lines."""
    rows = tmp / "rows.json"
    rows.write_text(json.dumps(x.reshape(x.shape[0], -1).astype(np.float32).tolist()))
    out = kiln("predict", module, "--input", rows).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    return np.array([line["scores"] for line in lines], dtype=np.float32), lines


def ort_run(model, x: np.ndarray, output: str | None = None) -> np.ndarray:
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    outs = [output] if output else None
    return s.run(outs, {name: x.astype(np.float32)})[0]
