"""Black-box probes of issue #16's holes against a `kiln serve` binary.

Each probe starts the binary on loopback with its own repository and config,
does what the issue says an attacker (or an operator) does, and prints PASS
when the server behaves as the fixed server must, FAIL otherwise. Run against
the binary of 06b8a8a (before the fixes) every probe fails; against main's,
every probe passes (docs/security.md, "The hole tests before the fixes").
They restate, through the network, holes whose own tests run in-process
(runtime/src/serve/tests, registry/batching.rs, sandbox/cache.rs).

    .venv/bin/python tests/holes/probe.py --kiln target/debug/kiln [PROBE...]
"""

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = "admin-key-0123456789abcdef"
USER = "user-key-0123456789abcdef"
USER2 = "user2-key-0123456789abcdef"
KEYS = f"""
[[keys]]
key = "{KEY}"
admin = true
[[keys]]
key = "{USER}"
models = ["*"]
[[keys]]
key = "{USER2}"
models = ["*"]
"""


class Server:
    def __init__(self, kiln, repo, config, *extra, grpc=False):
        args = [kiln, "serve", repo, "--config", config, "--http", "127.0.0.1:0"]
        args += ["--grpc", "127.0.0.1:0"] if grpc else ["--no-grpc"]
        self.log = tempfile.TemporaryFile()
        self.p = subprocess.Popen(args + list(extra), stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("kiln serve:"):
            self.log.seek(0)
            raise RuntimeError(f"kiln serve did not start: {line!r} {self.log.read().decode()[-2000:]}")
        fields = dict(w.split("=", 1) for w in line.split()[2:])
        self.http = fields["http"]
        self.grpc = fields.get("grpc")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def hwm_kib(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0


def request(server, method, path, body=b"", headers=None, timeout=30):
    headers = headers or ({"Content-Type": "application/json"} if method == "POST" else {})
    req = urllib.request.Request(f"http://{server.http}{path}", data=body if method == "POST" else None,
                                 method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def bearer(key):
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def leb(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def section(i, body):
    return bytes([i]) + leb(len(body)) + body


def vec(items):
    return leb(len(items)) + b"".join(items)


def name(s):
    return leb(len(s)) + s.encode()


def abi_module(run_code, meta_name="t"):
    """An ABI v1 module (one value in, one out; input at 64, output at 1024)
    whose kiln_run body is `run_code` (bytes, ending with the result)."""
    meta = json.dumps({"abi_version": 1, "name": meta_name, "version": "1", "task": "regression",
                       "input": {"name": "x", "datatype": "FP32", "shape": [1]},
                       "output": {"name": "y", "datatype": "FP32", "shape": [1]},
                       "model_sha256": "", "kiln_version": "test"})
    exports = ["kiln_abi_version", "kiln_input_len", "kiln_output_len", "kiln_input", "kiln_output", "kiln_run"]
    code = lambda ops: leb(len(ops) + 1) + b"\0" + ops
    return (b"\0asm\1\0\0\0"
            + section(1, vec([b"\x60\x00\x01\x7f", b"\x60\x01\x7f\x01\x7f"]))
            + section(3, vec([b"\0", b"\0", b"\0", b"\1", b"\0", b"\1"]))
            + section(5, vec([b"\x00\x01"]))
            + section(7, vec([name("memory") + b"\x02\x00"] + [name(e) + bytes([0, i]) for i, e in enumerate(exports)]))
            + section(10, vec([code(b"\x41\x01\x0b")] * 3 + [code(b"\x41\xc0\x00\x0b"), code(b"\x41\x80\x08\x0b"),
                               code(run_code + b"\x0b")]))
            + section(0, name("kiln.meta") + meta.encode()))


# kiln_run(n): the outputs of rows 0..7 are all n (the batch size it saw).
BATCH_SIZE = b"".join(b"\x41" + leb(1024 + 4 * i) + b"\x20\x00\xb2\x38\x02\x00" for i in range(8)) + b"\x41\x00"


class Case:
    def __init__(self, kiln, root):
        self.kiln, self.root = kiln, root
        self.repo = os.path.join(root, "repo")
        os.makedirs(self.repo)
        self.digits = os.path.join(root, "digits.wasm")
        subprocess.run([kiln, "build", os.path.join(ROOT, "runtime/data/digits.safetensors"), "-o", self.digits],
                       check=True, capture_output=True)

    def put(self, rel, data):
        p = os.path.join(self.repo, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def config(self, text):
        p = os.path.join(self.root, "kiln.toml")
        with open(p, "w") as f:
            f.write(f'[server]\ncache_dir = "{self.root}/cache"\n' + text)
        return p

    def serve(self, config_text, *extra, grpc=False):
        return Server(self.kiln, self.repo, self.config(config_text), *extra, grpc=grpc)


def digits_wasm(c):
    with open(c.digits, "rb") as f:
        return f.read()


def probe_1(c):
    """gRPC: an unauthenticated 4 MB message of 2,000,000 empty inputs must
    cost the server no decode (peak RSS grows < 100 MB) and get UNAUTHENTICATED."""
    import grpc
    c.put("digits/1/model.wasm", digits_wasm(c))
    s = c.serve(KEYS, grpc=True)
    try:
        before = s.hwm_kib()
        msg = b"\x0a\x06digits" + b"\x2a\x00" * 2_000_000
        ch = grpc.insecure_channel(s.grpc)
        call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            call(msg, timeout=60)
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        grown = (s.hwm_kib() - before) // 1024
        return code == "UNAUTHENTICATED" and grown < 100, f"{code}, peak RSS +{grown} MB"
    finally:
        s.stop()


def probe_2(c):
    """With keys configured, GET / names no model, failure reason or path."""
    c.put("digits/1/model.wasm", digits_wasm(c))
    c.put("secretmodel.wasm", b"\0asm\1\0\0\0garbage")
    s = c.serve(KEYS)
    try:
        status, _, body = request(s, "GET", "/")
        text = body.decode(errors="replace")
        shown = [w for w in ["digits", "secretmodel", c.repo] if w in text]
        return not shown, f"{status}, shows {shown}"
    finally:
        s.stop()


def probe_3(c):
    """model.safetensors symlinked to the config (holding the keys) is not
    served to a caller with a model key."""
    c.put("digits/1/model.wasm", digits_wasm(c))
    config = c.config(KEYS)
    os.symlink(config, os.path.join(c.repo, "digits/1/model.safetensors"))
    s = Server(c.kiln, c.repo, config)
    try:
        status, _, body = request(s, "GET", "/models/digits/model.safetensors", headers=bearer(USER))
        leaked = KEY.encode() in body
        return not leaked, f"{status}, {'the config with its keys' if leaked else 'no key'} in the body"
    finally:
        s.stop()


def probe_5(c):
    """A binary-extension request of shape [2^56, 64] (2^64 bytes, which wraps
    to 0) is refused with 400, not answered 200 or by a panic."""
    c.put("digits/1/model.wasm", digits_wasm(c))
    s = c.serve("")
    try:
        header = json.dumps({"inputs": [{"name": "input", "shape": [2**56, 64], "datatype": "FP32",
                                         "parameters": {"binary_data_size": 0}}]}).encode()
        try:
            status, _, body = request(s, "POST", "/v2/models/digits/infer", header, {
                "Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})
            what = f"{status} {body[:120]!r}"
        except Exception as e:  # the connection closed under a panic
            status, what = None, f"no answer ({type(e).__name__})"
        return status == 400, what
    finally:
        s.stop()


def probe_4(c):
    """Requests of two API keys are not batched together: each sees a batch of 1."""
    c.put("size.wasm", abi_module(BATCH_SIZE))
    s = c.serve(KEYS + "[models.size]\nmax_batch = 8\nmax_queue_delay_us = 300000\n")
    try:
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}).encode()
        with cf.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda k: request(s, "POST", "/v2/models/size/infer", body, bearer(k)),
                                    [USER, USER2]))
        seen = [json.loads(b)["outputs"][0]["data"][0] if st == 200 else st for st, _, b in answers]
        return seen == [1, 1], f"batch sizes seen {seen}"
    finally:
        s.stop()


def probe_6(c):
    """Bounded queue: 300 requests to a looping model (1 s deadline) get 503
    with Retry-After within 10 s, rather than all waiting their turn."""
    c.put("loop.wasm", abi_module(b"\x03\x40\x0c\x00\x0b\x41\x00"))
    s = c.serve("[models.loop]\ntimeout_ms = 1000\n")
    try:
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}).encode()
        pool = cf.ThreadPoolExecutor(300)
        futures = [pool.submit(request, s, "POST", "/v2/models/loop/infer", body,
                               {"Content-Type": "application/json"}, 30) for _ in range(300)]
        done, _ = cf.wait(futures, timeout=10)
        busy = [f.result() for f in done if f.exception() is None and f.result()[0] == 503]
        retry = sum(1 for st, h, _ in busy if any(k.lower() == "retry-after" for k in h))
        s.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        return retry > 0, f"{len(done)} answered within 10 s, {len(busy)} with 503, {retry} with Retry-After"
    finally:
        s.stop()


def probe_7(c):
    """With --watch, an admin's unload is not silently undone by the next poll."""
    c.put("digits/1/model.wasm", digits_wasm(c))
    s = c.serve("watch_interval_ms = 100\n", "--watch")
    try:
        status, _, body = request(s, "POST", "/v2/repository/models/digits/unload", b"")
        time.sleep(1.0)
        ready, _, _ = request(s, "GET", "/v2/models/digits/ready")
        undone = status == 200 and ready == 200
        return not undone, f"unload {status}, ready 1 s later {ready}"
    finally:
        s.stop()


def probe_8(c):
    """The compile cache directory is created 0700."""
    c.put("digits/1/model.wasm", digits_wasm(c))
    s = c.serve("")
    try:
        mode = os.stat(os.path.join(c.root, "cache")).st_mode & 0o777
        return mode & 0o077 == 0, f"cache directory mode {mode:o}"
    finally:
        s.stop()


def probe_9(c):
    """A slow compile (a 14 MB module) blocks no other model's unload."""
    c.put("digits/1/model.wasm", digits_wasm(c))
    s = c.serve("")
    try:
        types = section(1, vec([b"\x60\x01\x7f\x00"]))
        body = b"\0" + b"\x20\x00\x41\x01\x6a\x21\x00" * 1000 + b"\x0b"
        funcs = 2000
        c.put("big.wasm", b"\0asm\1\0\0\0" + types + section(3, vec([b"\0"] * funcs))
              + section(10, vec([leb(len(body)) + body] * funcs)))
        pool = cf.ThreadPoolExecutor(1)
        pool.submit(request, s, "POST", "/v2/repository/models/big/load", b"", None, 300)
        time.sleep(0.5)
        t0 = time.monotonic()
        status, _, _ = request(s, "POST", "/v2/repository/models/digits/unload", b"", None, 300)
        took = time.monotonic() - t0
        s.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        return status == 200 and took < 2, f"unload {status} after {took:.1f} s"
    finally:
        s.stop()


def probe_11(c):
    """gRPC: FP32 with int64_contents, and raw contents with typed ones, are refused."""
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as rpc
    c.put("digits/1/model.wasm", digits_wasm(c))
    s = c.serve("", grpc=True)
    try:
        stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(s.grpc))
        codes = []
        for make in ("int64", "raw+typed"):
            t = pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=[1, 64])
            r = pb.ModelInferRequest(model_name="digits")
            if make == "int64":
                t.contents.int64_contents.extend([1] * 64)
            else:
                t.contents.fp32_contents.extend([1.0] * 64)
                r.raw_input_contents.append(struct.pack("<64f", *[2.0] * 64))
            r.inputs.append(t)
            try:
                stub.ModelInfer(r, timeout=30)
                codes.append("OK")
            except grpc.RpcError as e:
                codes.append(e.code().name)
        return codes == ["INVALID_ARGUMENT"] * 2, f"int64_contents: {codes[0]}, raw+typed: {codes[1]}"
    finally:
        s.stop()


def probe_10(c):
    """On SIGTERM, readiness turns 503 while the server still answers (the
    default drain), rather than the listener closing at once."""
    c.put("digits/1/model.wasm", digits_wasm(c))
    s = c.serve("")
    try:
        assert request(s, "GET", "/v2/health/ready")[0] == 200
        s.p.send_signal(signal.SIGTERM)
        seen = []
        for _ in range(20):
            try:
                seen.append(request(s, "GET", "/v2/health/ready", timeout=5)[0])
            except Exception as e:
                seen.append(f"{type(e).__name__}: {getattr(e, 'reason', e)}")
            if seen[-1] == 503:
                break
            time.sleep(0.05)
        return seen[-1] == 503, f"readiness after SIGTERM: {seen[-3:]}"
    finally:
        s.stop()


PROBES = {"1": probe_1, "2": probe_2, "3": probe_3, "4": probe_4, "5": probe_5, "6": probe_6,
          "7": probe_7, "8": probe_8, "9": probe_9, "10": probe_10,
          "11": probe_11}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("probes", nargs="*", default=list(PROBES))
    a = ap.parse_args()
    failed = 0
    for hole in a.probes:
        root = tempfile.mkdtemp(prefix=f"kiln-hole{hole}-")
        try:
            ok, what = PROBES[hole](Case(os.path.abspath(a.kiln), root))
        except Exception as e:
            ok, what = False, f"error: {type(e).__name__}: {e}"
        finally:
            shutil.rmtree(root, ignore_errors=True)
        failed += not ok
        print(f"hole {hole}: {'PASS' if ok else 'FAIL'} ({what})", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
