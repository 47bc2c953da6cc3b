"""Soak and fault test of `kiln serve` (issue 16), loopback only, bounded.

One server, a repository of five models:
  healthy  the digits module (REST and gRPC load),
  swap     digits, hot-swapped every second between its f32 and int8 modules
           (a new version directory, then POST .../load),
  cycle    digits, unloaded and loaded every second (its failures while
           unloaded are expected and counted apart),
  loop     a module whose kiln_run never returns (timeout_ms = 100),
  bomb     a module whose kiln_run grows memory until refused, then traps
           (memory_mib = 2).
64 connections of mixed REST (aiohttp) and gRPC (grpc.aio) load. The hostile
modules are hit in every other WINDOW-second window; the windows without
them are the baseline, interleaved so that drifts in the machine's load fall
on both alike. Then SIGTERM under load.

It must show (exit 1 otherwise):
  * zero failed requests on healthy and swap (before SIGTERM);
  * server RSS growth under 10 % between the reference point (minute 2, or
    the first third of a shorter run) and the end;
  * p99 of `healthy` while the hostile modules are hit within 1.5x the
    baseline windows' (each request counts in the window it started in);
  * on SIGTERM: readiness 503 before the listeners close, every request
    in flight answered (200 or 503; a connection refused after the close is
    fine, a dropped request is not), exit status 0. The clients act as a
    load balancer probing readiness would: they keep sending after SIGTERM,
    and stop starting new requests LB_REACTION after readiness turns 503
    (well within the server's drain_ms), so what reaches the close is only
    what was in flight. (Clients that never stop would race the close: a
    request written to a keep-alive connection as the server closes it, or
    to a connection still in the kernel's backlog, is dropped by TCP.)

    python soak.py --kiln target/debug/kiln --seconds 60 [--json out.json]
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
ROW = [float((i * 7) % 17) for i in range(64)]
REST_WORKERS = {"healthy": 26, "swap": 12, "cycle": 4}
GRPC_WORKERS = {"healthy": 12, "swap": 8}
# One connection each: a looping module holds a core for its whole deadline,
# and this machine may have two.
HOSTILE_WORKERS = {"loop": 1, "bomb": 1}  # 64 connections with the above


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def name(s: str) -> bytes:
    return leb(len(s)) + s.encode()


def section(sid: int, body: bytes) -> bytes:
    return bytes([sid]) + leb(len(body)) + body


def abi_module(run_body: bytes) -> bytes:
    """An ABI v1 module (one input, one output, docs/abi.md) whose kiln_run
    is `run_body` (instructions, without the final `end`)."""
    meta = json.dumps({
        "abi_version": 1, "name": "hostile", "version": "1", "task": "regression",
        "input": {"name": "x", "datatype": "FP32", "shape": [1]},
        "output": {"name": "y", "datatype": "FP32", "shape": [1]},
        "model_sha256": "", "kiln_version": "soak",
    }).encode()
    types = leb(2) + b"\x60\x00\x01\x7f" + b"\x60\x01\x7f\x01\x7f"  # ()->i32, (i32)->i32
    funcs = [  # (export name, type, body)
        ("kiln_abi_version", 0, b"\x41\x01"),
        ("kiln_input_len", 0, b"\x41\x01"),
        ("kiln_output_len", 0, b"\x41\x01"),
        ("kiln_input", 1, b"\x41\xc0\x00"),
        ("kiln_output", 0, b"\x41\xc0\x00"),
        ("kiln_run", 1, run_body),
    ]
    exports = [name("memory") + b"\x02\x00"]
    exports += [name(n) + b"\x00" + leb(i) for i, (n, _, _) in enumerate(funcs)]
    code = b""
    for _, _, body in funcs:
        fn = b"\x00" + body + b"\x0b"
        code += leb(len(fn)) + fn
    return (
        b"\x00asm\x01\x00\x00\x00"
        + section(1, types)
        + section(3, leb(len(funcs)) + bytes(t for _, t, _ in funcs))
        + section(5, b"\x01\x00\x01")
        + section(7, leb(len(exports)) + b"".join(exports))
        + section(10, leb(len(funcs)) + code)
        + section(0, name("kiln.meta") + meta)
    )


# loop br 0 end; i32.const 0
LOOP = b"\x03\x40\x0c\x00\x0b\x41\x00"
# loop (memory.grow 16 pages) != -1 br_if 0 end; unreachable
BOMB = b"\x03\x40\x41\x10\x40\x00\x41\x7f\x47\x0d\x00\x0b\x00"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# The length of the alternating baseline and hostile windows.
WINDOW = 5.0

# How long after readiness turns 503 the clients stop sending, as a load
# balancer that probes readiness every second would.
LB_REACTION = 1.0


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))] if xs else float("nan")


class Stats:
    def __init__(self):
        self.phase = "baseline"
        self.latency = {"baseline": [], "hostile": []}  # healthy, seconds
        self.ok = {}
        self.failed = {}  # (model, what) -> count, before SIGTERM
        self.expected = {}  # cycle while unloaded, hostile modules
        self.after_term = {}  # outcome -> count
        self.term_at = None
        self.lb_out = False  # the "load balancer" sends no new requests

    def count(self, table, key):
        table[key] = table.get(key, 0) + 1

    def record(self, model, outcome, phase, seconds):
        if self.term_at is not None:
            self.count(self.after_term, outcome)
        elif outcome == "ok":
            self.count(self.ok, model)
            if model == "healthy":
                self.latency[phase].append(seconds)
        elif model in ("healthy", "swap"):
            self.count(self.failed, (model, outcome))
        else:
            self.count(self.expected, (model, outcome))


async def rest_worker(session, base, model, stats, stop, hostile=None):
    body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ROW}]}
    if model in ("loop", "bomb"):
        body = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}
    url = f"{base}/v2/models/{model}/infer"
    while not stop.is_set() and not stats.lb_out:
        if hostile is not None and not hostile.is_set():
            await asyncio.sleep(0.05)
            continue
        t0, phase = time.perf_counter(), stats.phase
        try:
            async with session.post(url, json=body) as r:
                await r.read()
                outcome = "ok" if r.status == 200 else f"http {r.status}"
        except aiohttp.ClientConnectorError:
            outcome = "refused"
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            outcome = f"dropped ({type(e).__name__})"
        stats.record(model, outcome, phase, time.perf_counter() - t0)
        if outcome == "refused":
            await asyncio.sleep(0.05)


async def grpc_worker(addr, model, stats, stop):
    req = service_pb2.ModelInferRequest(model_name=model)
    t = req.inputs.add(name="input", datatype="FP32", shape=[1, 64])
    t.contents.fp32_contents.extend(ROW)
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        while not stop.is_set() and not stats.lb_out:
            t0, phase = time.perf_counter(), stats.phase
            try:
                await stub.ModelInfer(req, timeout=10)
                outcome = "ok"
            except grpc.aio.AioRpcError as e:
                code = e.code()
                if code == grpc.StatusCode.UNAVAILABLE and stats.term_at is not None:
                    outcome = "refused"
                else:
                    outcome = f"grpc {code.name}"
            stats.record(model, outcome, phase, time.perf_counter() - t0)
            if outcome == "refused":
                await asyncio.sleep(0.05)


async def admin(session, base, repo, stats, stop, swaps):
    """Every second: a new `swap` version (f32 and int8 in turn), loaded;
    `cycle` unloaded or loaded."""
    version, loaded = 1, True
    while not stop.is_set():
        await asyncio.sleep(1)
        version += 1
        d = repo / "swap" / str(version)
        d.mkdir()
        shutil.copy(swaps[version % 2], d / "model.wasm")
        old = repo / "swap" / str(version - 2)
        for what, url in [
            ("swap load", f"{base}/v2/repository/models/swap/load"),
            ("cycle " + ("unload" if loaded else "load"),
             f"{base}/v2/repository/models/cycle/{'unload' if loaded else 'load'}"),
        ]:
            try:
                async with session.post(url, json={}) as r:
                    await r.read()
                    if r.status != 200:
                        stats.count(stats.failed, (what, f"http {r.status}"))
            except aiohttp.ClientError as e:
                if stats.term_at is None:
                    stats.count(stats.failed, (what, type(e).__name__))
        loaded = not loaded
        if old.exists():
            shutil.rmtree(old)


async def watch_rss(pid, samples, stop):
    t0 = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - t0, rss_kib(pid)))
        await asyncio.sleep(1)


async def shutdown(proc, base, stats):
    """SIGTERM, then readiness polled every 10 ms until the listener closes."""
    ready_503 = refused = None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        t0 = time.monotonic()
        stats.term_at = t0
        proc.send_signal(signal.SIGTERM)
        while time.monotonic() - t0 < 30:
            try:
                async with s.get(f"{base}/v2/health/ready") as r:
                    if r.status == 503 and ready_503 is None:
                        ready_503 = time.monotonic() - t0
                    if ready_503 is not None and time.monotonic() - t0 > ready_503 + LB_REACTION:
                        stats.lb_out = True
            except aiohttp.ClientConnectorError:
                refused = time.monotonic() - t0
                break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
    return ready_503, refused


async def main_async(a, proc, base, grpc_addr, repo, swaps):
    stats = Stats()
    stop, hostile, rss_stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    rss = []
    conn = aiohttp.TCPConnector(limit=sum(REST_WORKERS.values()) + sum(HOSTILE_WORKERS.values()))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session, \
            aiohttp.ClientSession(timeout=timeout) as admin_session:
        tasks = [asyncio.create_task(watch_rss(proc.pid, rss, rss_stop)),
                 asyncio.create_task(admin(admin_session, base, repo, stats, stop, swaps))]
        for model, n in REST_WORKERS.items():
            tasks += [asyncio.create_task(rest_worker(session, base, model, stats, stop))
                      for _ in range(n)]
        for model, n in HOSTILE_WORKERS.items():
            tasks += [asyncio.create_task(rest_worker(session, base, model, stats, stop, hostile))
                      for _ in range(n)]
        for model, n in GRPC_WORKERS.items():
            tasks += [asyncio.create_task(grpc_worker(grpc_addr, model, stats, stop))
                      for _ in range(n)]
        end = time.monotonic() + a.seconds
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(WINDOW, left))
            if hostile.is_set():
                hostile.clear()
                stats.phase = "baseline"
            else:
                stats.phase = "hostile"
                hostile.set()
        rss_stop.set()
        ready_503, refused = await shutdown(proc, base, stats)
        try:
            code = await asyncio.wait_for(asyncio.to_thread(proc.wait), 60)
        except asyncio.TimeoutError:
            code = None
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return stats, rss, ready_503, refused, code


def build_repo(kiln: str, repo: Path, work: Path):
    digits = ROOT / "runtime/data/digits.safetensors"
    f32, int8_st, int8 = work / "f32.wasm", work / "int8.safetensors", work / "int8.wasm"
    subprocess.run([kiln, "build", str(digits), "-o", str(f32)], check=True, capture_output=True)
    subprocess.run([kiln, "quantize", str(digits), "--dynamic", "-o", str(int8_st)], check=True,
                   capture_output=True)
    subprocess.run([kiln, "build", str(int8_st), "-o", str(int8)], check=True, capture_output=True)
    for m in ("healthy", "swap", "cycle"):
        (repo / m / "1").mkdir(parents=True)
        shutil.copy(f32, repo / m / "1" / "model.wasm")
    (repo / "loop.wasm").write_bytes(abi_module(LOOP))
    (repo / "bomb.wasm").write_bytes(abi_module(BOMB))
    return f32, int8


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kiln", default=os.environ.get("KILN", "target/debug/kiln"))
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kiln-soak-"))
    repo = work / "repo"
    f32, int8 = build_repo(a.kiln, repo, work)
    config = work / "kiln.toml"
    config.write_text(
        f'[server]\ncache_dir = "{work / "cache"}"\n'
        "[models.loop]\ntimeout_ms = 100\n[models.bomb]\nmemory_mib = 2\n"
    )
    proc = subprocess.Popen(
        [a.kiln, "serve", str(repo), "--config", str(config),
         "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=open(work / "serve.log", "w"), text=True)
    line = proc.stdout.readline()
    addrs = dict(kv.split("=", 1) for kv in line.split()[2:])
    base, grpc_addr = f"http://{addrs['http']}", addrs["grpc"]
    try:
        stats, rss, ready_503, refused, code = asyncio.run(
            main_async(a, proc, base, grpc_addr, repo, {0: f32, 1: int8}))
    finally:
        if proc.poll() is None:
            proc.kill()
    # RSS reference: minute 2, or a third of a shorter run.
    ref_t = min(120.0, a.seconds / 3)
    ref = next((kib for t, kib in rss if t >= ref_t), rss[-1][1])
    end = rss[-1][1]
    growth = (end - ref) / ref
    base_p99, hostile_p99 = p99(stats.latency["baseline"]), p99(stats.latency["hostile"])
    dropped = {k: v for k, v in stats.after_term.items() if k.startswith("dropped")
               or k.startswith("grpc") and k not in ("grpc UNAVAILABLE",)}
    figures = {
        "seconds": a.seconds,
        "requests_ok": stats.ok,
        "failed_healthy": {f"{m}: {w}": n for (m, w), n in stats.failed.items()},
        "expected_failures": {f"{m}: {w}": n for (m, w), n in stats.expected.items()},
        "rss_kib_reference": ref, "rss_kib_end": end, "rss_growth": round(growth, 4),
        "rss_kib_max": max(k for _, k in rss),
        "p99_ms_baseline": round(base_p99 * 1e3, 2), "p99_ms_hostile": round(hostile_p99 * 1e3, 2),
        "p99_ratio": round(hostile_p99 / base_p99, 3),
        "sigterm_ready_503_s": ready_503, "sigterm_listener_closed_s": refused,
        "after_sigterm": stats.after_term, "exit_code": code,
    }
    checks = {
        "zero failed requests on healthy models": not stats.failed,
        "RSS growth under 10 %": growth < 0.10,
        "p99 with hostile modules within 1.5x": hostile_p99 <= 1.5 * base_p99,
        "readiness 503 before the listeners close": ready_503 is not None
        and (refused is None or ready_503 < refused),
        "in-flight requests answered after SIGTERM": not dropped,
        "exit status 0": code == 0,
    }
    figures["checks"] = checks
    print(json.dumps(figures, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=2) + "\n")
    bad = [c for c, ok in checks.items() if not ok]
    if bad:
        print(f"soak: FAILED: {'; '.join(bad)} (server log: {work / 'serve.log'})", file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    print("soak: every check passed", file=sys.stderr)


if __name__ == "__main__":
    main()
