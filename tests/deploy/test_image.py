"""The OCI image built by scripts/image.sh, run, and KServe's container
contract, with the stock tritonclient (http and grpc).

How the image runs: `podman run` fails on kiln's build machines (crun cannot
set RLIMIT_NOFILE/NPROC there), so each test runs the image's exact
entrypoint and arguments, read from its OCI config, against its unpacked
root filesystem, the way a container runtime would: chrooted into it,
mounted read-only, /tmp an empty tmpfs (the emptyDir of the manifests), the
models bind-mounted read-only at /mnt/models, as the image's user with only
the image's environment. tests/deploy/run.sh builds and unpacks the image
and runs this file as root in a private network namespace (so 8080/8081 are
free); KILN_BUNDLE names the umoci bundle, KILN_IMAGE_CONFIG the image config
(`skopeo inspect --config`).
"""

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUNDLE = pathlib.Path(os.environ.get("KILN_BUNDLE", ROOT / "target" / "image" / "bundle")).resolve()
ROOTFS = BUNDLE / "rootfs"
IMAGE = json.loads(pathlib.Path(
    os.environ.get("KILN_IMAGE_CONFIG", ROOT / "target" / "image" / "config.json")).read_text())
CONFIG = IMAGE["config"]
# The image's own binary is static: it also trains and builds the models here.
KILN = str(ROOTFS / "usr" / "local" / "bin" / "kiln")
ROWS = 8


def run(*args):
    return subprocess.run([KILN, *map(str, args)], check=True, capture_output=True, text=True).stdout


def image_sh(name):
    """A config variable of scripts/image.sh (NAME='value')."""
    for line in (ROOT / "scripts" / "image.sh").read_text().splitlines():
        if line.startswith(name + "="):
            return line.split("=", 1)[1].strip("'\"")
    raise KeyError(name)


class Container:
    """The image's root filesystem, run as a container runtime would."""

    def __init__(self, args, models):
        self.args = args
        user = CONFIG["User"]
        mounts = f"""
            set -e
            R={shlex.quote(str(ROOTFS))}
            mount --bind "$R" "$R"
            mount -t tmpfs -o mode=1777,size=64m tmpfs "$R/tmp"
            mount --bind -o ro {shlex.quote(str(models))} "$R/mnt/models"
            mount -o remount,bind,ro "$R"
            exec env -i {' '.join(shlex.quote(e) for e in CONFIG.get('Env', []))} \\
                {shutil.which("chroot")} --userspec={shlex.quote(user)} "$R" {' '.join(map(shlex.quote, args))}
        """
        # A file, not a pipe read only at the end: a full pipe would block
        # the server's log writes (one access line per request).
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mounts],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        first = self.proc.stdout.readline()
        if not first.startswith("kiln serve:"):
            self.proc.kill()
            pytest.fail(f"{args} did not start: {first!r} {self.stderr()}")
        self.addrs = dict(w.split("=", 1) for w in first.split()[2:])

    def local(self, key):
        """The listener `key` as a loopback address (kiln prints 0.0.0.0:PORT)."""
        return self.addrs[key].replace("0.0.0.0", "127.0.0.1")

    def stop(self):
        self.proc.terminate()
        code = self.proc.wait(timeout=20)
        return code, self.stderr()

    def stderr(self):
        self.log.seek(0)
        return self.log.read()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    run("train", "--data", "builtin:digits", "--seed", "1", "-o", d / "digits.safetensors",
        "--test-out", d / "test.csv")
    run("build", d / "digits.safetensors", "-o", d / "digits.wasm")
    lines = (d / "test.csv").read_text().splitlines()
    (d / "rows.csv").write_text("\n".join(lines[: ROWS + 1]) + "\n")
    header = lines[0].split(",")
    keep = [i for i, h in enumerate(header) if h != "digit"]
    rows = np.array([[float(l.split(",")[i]) for i in keep] for l in lines[1: ROWS + 1]],
                    dtype=np.float32)
    out = run("predict", d / "digits.wasm", "--input", d / "rows.csv", "--native")
    native = np.array([json.loads(l)["scores"] for l in out.splitlines()], dtype=np.float32)
    return {"dir": d, "wasm": d / "digits.wasm", "rows": rows, "native": native}


def layout(tmp_path, files):
    """A /mnt/models as the storage initializer leaves it: `files` maps a
    relative path to the file copied there."""
    root = tmp_path / "mnt-models"
    for rel, src in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(pathlib.Path(src).read_bytes())
    root.chmod(0o755)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    # The image's user must reach the directory through its parents.
    for parent in [tmp_path, *tmp_path.parents]:
        parent.chmod(parent.stat().st_mode | 0o005)
    return root


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def infer_both(c, name, rows, input_name="input"):
    """Scores of `rows` from model `name` over tritonclient http and grpc."""
    out = []
    for mod, url in [(httpclient, c.local("http")), (grpcclient, c.local("grpc"))]:
        client = mod.InferenceServerClient(url=url)
        assert client.is_server_ready() and client.is_model_ready(name)
        inp = mod.InferInput(input_name, list(rows.shape), "FP32")
        inp.set_data_from_numpy(rows)
        out.append(client.infer(name, [inp]).as_numpy("scores"))
    return out


def test_image_config_is_image_sh_s():
    assert CONFIG["Entrypoint"] == json.loads(image_sh("ENTRYPOINT"))
    assert CONFIG["Cmd"] == json.loads(image_sh("CMD"))
    assert CONFIG["User"] == image_sh("USER_ID")
    assert sorted(CONFIG["ExposedPorts"]) == sorted(f"{p}/tcp" for p in image_sh("PORTS").split())
    assert set(image_sh("ENV_VARS").split()) <= set(CONFIG.get("Env", []))
    labels = CONFIG["Labels"]
    for key in ["title", "version", "revision", "created", "licenses", "source"]:
        assert labels.get(f"org.opencontainers.image.{key}"), key


def test_image_size():
    size = sum(p.stat().st_size for p in ROOTFS.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"image root filesystem: {size} bytes")
    assert size <= 30 << 20, f"the image's files take {size} bytes, over the 30 MiB goal"


def test_default_command_serves_a_repository(models, tmp_path):
    repo = layout(tmp_path, {"digits/1/model.wasm": models["wasm"], "iris.wasm": models["wasm"]})
    c = Container(CONFIG["Entrypoint"] + CONFIG["Cmd"], repo)
    try:
        assert c.addrs == {"http": "0.0.0.0:8080", "grpc": "0.0.0.0:8081"}
        # The process runs as the image's user, on a read-only root.
        status = pathlib.Path(f"/proc/{c.proc.pid}/status").read_text()
        uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
        assert uid == CONFIG["User"].split(":")[0]
        mounts = pathlib.Path(f"/proc/{c.proc.pid}/mountinfo").read_text().splitlines()
        root = [m.split() for m in mounts if m.split()[4] == "/"][-1]
        assert "ro" in root[5].split(","), root
        for name in ["digits", "iris"]:
            for scores in infer_both(c, name, models["rows"]):
                assert np.array_equal(bits(scores), bits(models["native"]))
    finally:
        code, err = c.stop()
    assert code == 0, err


def kserve_container():
    """The runtime's container, its args filled in as KServe fills them from
    the InferenceService's metadata (Go templates over ObjectMeta)."""
    runtime = yaml.safe_load((ROOT / "deploy" / "kserve" / "servingruntime.yaml").read_text())
    isvc = yaml.safe_load((ROOT / "deploy" / "kserve" / "inferenceservice.yaml").read_text())
    meta = {"Name": isvc["metadata"]["name"], "Namespace": "default"}
    (container,) = runtime["spec"]["containers"]
    args = [re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: meta[m.group(1)], a)
            for a in container["args"]]
    assert not any("{{" in a for a in args), args
    # No `command`: KServe's args replace the image's Cmd, after its Entrypoint.
    assert "command" not in container
    return container, meta["Name"], CONFIG["Entrypoint"] + args


def onnx_model(path):
    """A softmax regression over the digits' 64 inputs, as ONNX."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    w = rng.standard_normal((64, 10)).astype(np.float32) * 0.1
    b = rng.standard_normal(10).astype(np.float32) * 0.1
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["z"]),
         helper.make_node("Softmax", ["z"], ["y"], axis=1)],
        "softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return w, b


@pytest.mark.parametrize("files", [
    {"model.wasm": "wasm"},                          # storageUri: a directory with model.wasm
    {"1/model.wasm": "wasm", "2/model.wasm": "wasm"},  # versions
    {"digits-v3.wasm": "wasm"},                      # storageUri: one file, any name
    {"digits/1/model.wasm": "wasm"},                 # a repository that has the model
], ids=["model.wasm", "versions", "one-file", "repository"])
def test_kserve_contract(models, tmp_path, files):
    container, name, args = kserve_container()
    mnt = layout(tmp_path, {rel: models[src] for rel, src in files.items()})
    c = Container(args, mnt)
    try:
        port = container["ports"][0]["containerPort"]
        assert c.addrs["http"] == f"0.0.0.0:{port}"
        for probe in ["readinessProbe", "livenessProbe"]:
            get = container[probe]["httpGet"]
            assert get["port"] == port
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{get['path']}") as r:
                assert r.status == 200
        for scores in infer_both(c, name, models["rows"]):
            assert np.array_equal(bits(scores), bits(models["native"]))
    finally:
        code, err = c.stop()
    assert code == 0, err


def test_kserve_contract_onnx(models, tmp_path):
    container, name, args = kserve_container()
    w, b = onnx_model(tmp_path / "clf.onnx")
    mnt = layout(tmp_path, {"model.onnx": tmp_path / "clf.onnx"})
    c = Container(args, mnt)
    try:
        rows = models["rows"]
        z = rows @ w + b
        want = np.exp(z - z.max(axis=1, keepdims=True))
        want /= want.sum(axis=1, keepdims=True)
        # An imported model keeps the ONNX graph's input name.
        for scores in infer_both(c, name, rows, input_name="x"):
            np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)
    finally:
        code, err = c.stop()
    assert code == 0, err


def test_kserve_contract_refuses_a_repository_without_the_model(models, tmp_path):
    _, name, args = kserve_container()
    mnt = layout(tmp_path, {"a.wasm": models["wasm"], "b.wasm": models["wasm"]})
    proc = subprocess.run(
        ["unshare", "--mount", "--", "sh", "-c",
         f"mount --bind -o ro {shlex.quote(str(mnt))} {shlex.quote(str(ROOTFS))}/mnt/models && "
         f"exec {shutil.which('chroot')} --userspec={CONFIG['User']} {shlex.quote(str(ROOTFS))} "
         + " ".join(map(shlex.quote, args))],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, proc
    assert f"--model_name `{name}`" in proc.stderr and "a, b" in proc.stderr, proc.stderr
