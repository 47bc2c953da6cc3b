"""The stock Python tritonclient (http and grpc) against a real `kiln serve`.

Two models (an MLP and a softmax regression, trained here by `kiln train`),
served from a Triton-style repository; scores must be bit-identical to
`kiln predict --native`. Run by scripts/test.sh; KILN names the binary.
"""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ROOT = pathlib.Path(__file__).resolve().parents[2]
KILN = os.environ.get("KILN", str(ROOT / "target" / "debug" / "kiln"))
ROWS = 16


def run(*args):
    return subprocess.run([KILN, *args], check=True, capture_output=True, text=True).stdout


def native_scores(module, csv):
    out = run("predict", str(module), "--input", str(csv), "--native")
    return np.array([json.loads(l)["scores"] for l in out.splitlines()], dtype=np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("kiln")
    if not pathlib.Path(KILN).exists():
        pytest.fail(f"{KILN} does not exist: build it with `cargo build -p kiln` or set KILN")
    run("train", "--data", "builtin:digits", "--seed", "1", "-o", str(d / "digits.safetensors"),
        "--test-out", str(d / "test.csv"))
    run("train", "--data", "builtin:digits", "--model", "softmax", "--seed", "2",
        "-o", str(d / "softmax.safetensors"))
    repo = d / "repo"
    (repo / "digits" / "1").mkdir(parents=True)
    run("build", str(d / "digits.safetensors"), "-o", str(repo / "digits" / "1" / "model.wasm"))
    run("build", str(d / "softmax.safetensors"), "-o", str(repo / "softmax.wasm"))

    lines = (d / "test.csv").read_text().splitlines()
    (d / "rows.csv").write_text("\n".join(lines[: ROWS + 1]) + "\n")
    header = lines[0].split(",")
    keep = [i for i, h in enumerate(header) if h != "digit"]
    rows = np.array([[float(l.split(",")[i]) for i in keep] for l in lines[1 : ROWS + 1]],
                    dtype=np.float32)
    native = {
        "digits": native_scores(repo / "digits" / "1" / "model.wasm", d / "rows.csv"),
        "softmax": native_scores(repo / "softmax.wasm", d / "rows.csv"),
    }
    (d / "kiln.toml").write_text(f'[server]\ncache_dir = "{d / "cache"}"\n')
    proc = subprocess.Popen(
        [KILN, "serve", str(repo), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0",
         "--config", str(d / "kiln.toml")],
        # A file, not a pipe nobody reads: a full pipe would block the
        # server's log writes (one access line per request).
        stdout=subprocess.PIPE, stderr=open(d / "serve.log", "w"), text=True)
    first = proc.stdout.readline()
    if not first.startswith("kiln serve:"):
        proc.kill()
        pytest.fail(f"kiln serve did not start: {first!r} {(d / 'serve.log').read_text()}")
    addrs = dict(w.split("=", 1) for w in first.split()[2:])
    yield {"http": addrs["http"], "grpc": addrs["grpc"], "rows": rows, "native": native}
    proc.terminate()
    assert proc.wait(timeout=20) == 0


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


@pytest.fixture(params=["http", "grpc"])
def client(request, server):
    if request.param == "http":
        return httpclient, httpclient.InferenceServerClient(url=server["http"])
    return grpcclient, grpcclient.InferenceServerClient(url=server["grpc"])


def test_health_and_metadata(client):
    mod, c = client
    assert c.is_server_live()
    assert c.is_server_ready()
    assert c.is_model_ready("digits")
    assert c.is_model_ready("softmax", "1")
    assert not c.is_model_ready("nope")
    if mod is httpclient:
        meta = c.get_server_metadata()
        model = c.get_model_metadata("digits")
    else:
        meta = c.get_server_metadata(as_json=True)
        model = c.get_model_metadata("digits", as_json=True)
    assert meta["name"] == "kiln"
    assert model["name"] == "digits"
    assert model["inputs"][0]["name"] == "input"
    assert [int(d) for d in model["inputs"][0]["shape"]] == [-1, 64]
    assert [int(d) for d in model["outputs"][0]["shape"]] == [-1, 10]


@pytest.mark.parametrize("model", ["digits", "softmax"])
@pytest.mark.parametrize("binary", [True, False])
def test_infer_is_bit_identical_to_native(client, server, model, binary):
    mod, c = client
    rows = server["rows"]
    inp = mod.InferInput("input", list(rows.shape), "FP32")
    if mod is httpclient:
        inp.set_data_from_numpy(rows, binary_data=binary)
        out = mod.InferRequestedOutput("scores", binary_data=binary)
    else:
        inp.set_data_from_numpy(rows)
        out = mod.InferRequestedOutput("scores")
    result = c.infer(model, [inp], outputs=[out])
    scores = result.as_numpy("scores")
    assert scores.shape == server["native"][model].shape
    assert (bits(scores) == bits(server["native"][model])).all()


def test_infer_errors_are_reported(client, server):
    mod, c = client
    bad = mod.InferInput("input", [1, 63], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 63), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="shape"):
        c.infer("digits", [bad])
    good = mod.InferInput("input", [1, 64], "FP32")
    good.set_data_from_numpy(np.zeros((1, 64), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="unknown model"):
        c.infer("nope", [good])


def test_unload_and_load(client, server):
    mod, c = client
    rows = server["rows"][:1]
    inp = mod.InferInput("input", [1, 64], "FP32")
    inp.set_data_from_numpy(rows)
    c.unload_model("softmax")
    assert not c.is_model_ready("softmax")
    with pytest.raises(InferenceServerException):
        c.infer("softmax", [inp])
    if mod is httpclient:
        index = c.get_model_repository_index()
    else:
        index = c.get_model_repository_index(as_json=True)["models"]
    states = {m["name"]: m.get("state") for m in index}
    assert states == {"digits": "READY", "softmax": "UNAVAILABLE"}
    c.load_model("softmax")
    assert c.is_model_ready("softmax")
    scores = c.infer("softmax", [inp]).as_numpy("scores")
    assert (bits(scores) == bits(server["native"]["softmax"][:1])).all()
