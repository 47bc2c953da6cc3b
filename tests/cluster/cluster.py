"""What a three-replica kiln deployment must survive, on one machine.

Three `kiln serve` replicas, each a host of its own (a network namespace
joined to this one by a veth pair, 10.77.N.2 on a private subnet), behind
haproxy on loopback, which health-checks `/v2/health/ready` as a Kubernetes
Service's readiness probe would. Each replica runs with the arguments and
kiln.toml of deploy/k8s (the volume paths mapped to this test's
directories), as uid 65532. Under load from 64 keep-alive connections:

1. scaling: requests/s through the balancer with 1, 2 and 3 replicas (wrk),
   and each replica's memory;
2. a rolling update, one replica at a time: drain (as endpoint removal
   does) -> SIGTERM -> the new model version -> ready; no request may fail;
3. SIGKILL of one replica: failures bounded by the requests in flight on it,
   throughput back within 2 s;
4. a partition: another replica's link taken down, not the process killed;
   the same bounds.

Prints the figures and writes them as JSON (argument 1). Run by
tests/cluster/run.sh as root; stdlib only. Bounded: about 60 s.
"""

import asyncio
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
KILN = os.environ["KILN"]  # copied into the work directory, for uid 65532
REPLICAS = 3
CONNECTIONS = 64
UID = "65532"
TAG = f"k{os.getpid() % 100000}"  # netns and link names of this run


def sh(*args, check=True):
    return subprocess.run(list(map(str, args)), check=check, capture_output=True, text=True)


def deployment_args():
    """The Deployment's container args, and its kiln.toml from the ConfigMap."""
    k8s = ROOT / "deploy" / "k8s"
    # No YAML parser in the stdlib: the two fields are read as text, and
    # tests/deploy/test_manifests.py checks the same files with a real one.
    dep = (k8s / "deployment.yaml").read_text()
    block = dep.split("args:\n", 1)[1].split("ports:", 1)[0]
    args = [l.strip()[2:] for l in block.splitlines() if l.strip().startswith("- ")]
    cm = (k8s / "configmap.yaml").read_text().split("kiln.toml: |\n", 1)[1]
    toml = "\n".join(l[4:] for l in cm.splitlines())
    tomllib.loads(toml)
    return args, toml


class Replica:
    def __init__(self, n, work, args, toml):
        self.n, self.ns, self.link = n, f"{TAG}-r{n}", f"{TAG}v{n}"
        self.addr = f"10.77.{n}.2"
        self.repo = work / f"models-{n}"
        self.config = work / f"kiln-{n}.toml"
        self.config.write_text(toml)
        self.args = [a.replace("/mnt/models", str(self.repo))
                     .replace("/etc/kiln/kiln.toml", str(self.config)) for a in args]
        self.proc = None
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        sh("ip", "addr", "add", f"10.77.{n}.1/24", "dev", self.link)
        sh("ip", "link", "set", self.link, "up")
        for cmd in (["ip", "addr", "add", f"{self.addr}/24", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"]):
            sh("ip", "netns", "exec", self.ns, *cmd)

    def install(self, wasm, version):
        d = self.repo / "digits" / str(version)
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(wasm, d / "model.wasm")

    def start(self):
        env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(self.repo.parent / f"cache-{self.n}")}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "setpriv", f"--reuid={UID}", f"--regid={UID}",
             "--clear-groups", KILN, *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        first = self.proc.stdout.readline()
        if not first.startswith("kiln serve:"):
            raise RuntimeError(f"replica {self.n} did not start: {first!r}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.addr}:8080/v2/health/ready", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"replica {self.n} never became ready")

    def pid(self):
        # `ip netns exec` and setpriv exec in turn: the child is kiln itself.
        return self.proc.pid

    def memory_kib(self):
        s = pathlib.Path(f"/proc/{self.pid()}/status").read_text()
        return {k: int(re.search(rf"^{k}:\s+(\d+)", s, re.M).group(1)) for k in ("VmRSS", "VmHWM")}

    def stop(self, sig=signal.SIGTERM, timeout=20):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def set_link(self, state):
        # A shell already in the namespace: `ip netns exec` itself takes
        # ~100 ms on a loaded machine, which would blur the event.
        if not hasattr(self, "shell"):
            self.shell = subprocess.Popen(["ip", "netns", "exec", self.ns, "sh"], text=True,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self.shell.stdin.write("echo ok\n")
            self.shell.stdin.flush()
            self.shell.stdout.readline()
        self.shell.stdin.write(f"ip link set eth0 {state} && echo ok\n")
        self.shell.stdin.flush()
        assert self.shell.stdout.readline() == "ok\n"

    def remove(self):
        if hasattr(self, "shell"):
            self.shell.kill()
            self.shell.wait()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        sh("ip", "netns", "del", self.ns, check=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Balancer:
    """haproxy, configured as a Service over ready endpoints."""

    def __init__(self, work, replicas):
        self.port = free_port()
        self.sock = work / "haproxy.sock"
        cfg = work / "haproxy.cfg"
        servers = "\n".join(
            f"    server r{r.n} {r.addr}:8080 check" for r in replicas)
        cfg.write_text(f"""
global
    stats socket {self.sock} level admin
    maxconn 4096
    log stdout format raw local0
defaults
    mode http
    log global
    timeout connect 250ms
    timeout client 30s
    # kiln's own deadline per request is 1 s (timeout_ms in kiln.toml): a
    # replica silent for longer is gone.
    timeout server 1500ms
    retries 2
    option redispatch 1
    # A request is only ever sent on a connection opened for it (no pooled
    # idle connections): if its replica is gone, the connect fails and the
    # request goes to another one; only requests already sent can fail.
    option http-server-close
    # Inference is a pure function of its input: a request whose replica
    # closed the connection without answering (it was killed) is sent to
    # another one. A replica that stops answering (a partition) is not
    # retried: its requests in flight fail after `timeout server`.
    retry-on conn-failure empty-response
    option http-buffer-request
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
    # One line per request: the client's request id, the replica it went to
    # (the test counts per replica), the status and termination flags.
    capture request header x-request-id len 24
    log-format "%hr %s %ST %ts"
backend be
    balance leastconn
    option httpchk GET /v2/health/ready
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down
{servers}
""")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.log = {}  # request id -> (replica, status, termination flags)
        threading.Thread(target=self.read_log, daemon=True).start()
        deadline = time.monotonic() + 5
        while not self.sock.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("haproxy did not start")
            time.sleep(0.05)

    def read_log(self):
        for line in self.proc.stdout:
            m = re.match(r"\{(\d+)\} (\S+) (-?\d+) (\S+)", line)
            if m:
                self.log[int(m.group(1))] = (m.group(2), int(m.group(3)), m.group(4))

    def cmd(self, text):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.sock))
            s.sendall(text.encode() + b"\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def servers(self):
        """svname -> {status, scur, eresp, ...} of the backend's servers."""
        lines = self.cmd("show stat").splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for l in lines[1:]:
            row = dict(zip(head, l.split(",")))
            if row.get("pxname") == "be" and row["svname"].startswith("r"):
                out[row["svname"]] = row
        return out

    def wait_status(self, name, want, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.servers()[name]["status"].startswith(want):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{name} never became {want}: {self.servers()[name]['status']}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Load:
    """64 keep-alive connections posting inferences as fast as answered; every
    outcome is recorded as (time sent, time done, ok, model version, request
    id, what went wrong); haproxy's log names the replica of each request id."""

    def __init__(self, port, body):
        self.port, self.body = port, body
        self.records = []
        self.ids = iter(range(1, 1 << 62))
        self.running = True
        self.thread = threading.Thread(target=lambda: asyncio.run(self.main()), daemon=True)
        self.thread.start()

    async def main(self):
        await asyncio.gather(*(self.conn() for _ in range(CONNECTIONS)))

    async def conn(self):
        prefix = (f"POST /v2/models/digits/infer HTTP/1.1\r\nHost: kiln\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n")
        reader = writer = None
        sent, rid = time.monotonic(), 0
        while self.running:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                rid = next(self.ids)
                sent = time.monotonic()
                writer.write(f"{prefix}x-request-id: {rid}\r\n\r\n".encode() + self.body)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                n = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                body = await reader.readexactly(n)
                m = re.search(rb'"model_version":"(\d+)"', body)
                self.records.append((sent, time.monotonic(), status == 200,
                                     m and m.group(1).decode(), rid, status))
                if re.search(rb"(?i)connection:\s*close", head):
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError, AttributeError) as e:
                self.records.append((sent, time.monotonic(), False, None, rid, repr(e)))
                if writer:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)

    def stop(self):
        self.running = False
        self.thread.join(timeout=10)

    def window(self, t0, t1):
        """The requests answered (or failed) in [t0, t1)."""
        r = [x for x in self.records if t0 <= x[1] < t1]
        return {"requests": len(r), "failed": sum(not x[2] for x in r),
                "versions": sorted({x[3] for x in r if x[2]})}

    def around(self, t0, t1, replica, log):
        """What became of the requests around an event on `replica` that took
        from t0 to t1: those in flight on it (sent to it before t1, not
        answered before t0), how many of them failed, and how many other
        requests failed."""
        r = [x for x in self.records if x[1] >= t0]
        on_it = [x for x in r if x[0] < t1 and log.get(x[4], ("?",))[0] == replica]
        return {"in_flight_on_replica": len(on_it),
                "failed_in_flight": sum(not x[2] for x in on_it),
                "failed_elsewhere_or_later": sum(not x[2] for x in r) - sum(not x[2] for x in on_it)}

    def recovery(self, t_event, baseline, step=0.5, horizon=4.0):
        """Seconds after t_event until throughput is back: the first `step`
        window from which a whole second runs at >= 70 % of `baseline`
        (requests/s). A whole second, not the rest of the run: the machine is
        shared (other builds, the load generator itself) and its later dips
        are not the event's."""
        marks = [t_event + i * step for i in range(int(horizon / step))]
        rates = [self.window(a, a + step)["requests"] / step for a in marks]
        per = int(1 / step)
        for i in range(len(rates) - per + 1):
            if sum(rates[i:i + per]) / per >= 0.7 * baseline:
                return round(i * step, 2), [round(r) for r in rates]
        return None, [round(r) for r in rates]


def wrk(port, body_file, seconds):
    lua = body_file.with_suffix(".lua")
    lua.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                   f'wrk.body = io.open("{body_file}"):read("*a")\n')
    out = sh("wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", lua,
             f"http://127.0.0.1:{port}/v2/models/digits/infer").stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(non2xx.group(1)) if non2xx else 0


def train(work, seed):
    st = work / f"digits-{seed}.safetensors"
    sh(KILN, "train", "--data", "builtin:digits", "--seed", seed, "-o", st,
       "--test-out", work / "test.csv")
    sh(KILN, "build", st, "-o", work / f"digits-{seed}.wasm")
    return work / f"digits-{seed}.wasm"


def main(out_path):
    work = pathlib.Path(tempfile.mkdtemp(prefix="kiln-cluster-"))
    work.chmod(0o755)
    global KILN
    KILN = str(shutil.copy(KILN, work / "kiln"))
    replicas, balancer, load = [], None, None
    figures = {"kiln": KILN, "cores": os.cpu_count(), "connections": CONNECTIONS}
    failures = []
    try:
        args, toml = deployment_args()
        v1, v2 = train(work, 1), train(work, 2)
        row = (work / "test.csv").read_text().splitlines()[1].split(",")
        header = (work / "test.csv").read_text().splitlines()[0].split(",")
        data = [float(v) for h, v in zip(header, row) if h != "digit"]
        body = json.dumps({"inputs": [{"name": "input", "shape": [1, len(data)],
                                       "datatype": "FP32", "data": data}]}).encode()
        (work / "body.json").write_bytes(body)
        for n in range(1, REPLICAS + 1):
            r = Replica(n, work, args, toml)
            replicas.append(r)
            r.install(v1, 1)
        sh("chown", "-R", f"{UID}:{UID}", work)
        for r in replicas:
            r.start()
        balancer = Balancer(work, replicas)
        for r in replicas:
            balancer.wait_status(f"r{r.n}", "UP")

        # 1. Scaling (wrk, 5 s each), then memory.
        scaling = {}
        for k in range(1, REPLICAS + 1):
            for r in replicas:
                balancer.cmd(f"{'enable' if r.n <= k else 'disable'} server be/r{r.n}")
            for r in replicas[:k]:
                balancer.wait_status(f"r{r.n}", "UP")
            rps, bad = wrk(balancer.port, work / "body.json", 5)
            scaling[k] = {"requests_per_s": round(rps), "non_2xx": bad}
        figures["scaling"] = scaling
        figures["memory_kib"] = {f"r{r.n}": r.memory_kib() for r in replicas}

        load = Load(balancer.port, body)
        time.sleep(2)

        # 2. Rolling update to version 2, one replica at a time.
        t0 = time.monotonic()
        for r in replicas:
            name = f"r{r.n}"
            balancer.cmd(f"set server be/{name} state drain")
            deadline = time.monotonic() + 5
            while int(balancer.servers()[name]["scur"] or 0) and time.monotonic() < deadline:
                time.sleep(0.02)
            code = r.stop(signal.SIGTERM)
            if code != 0:
                failures.append(f"{name} exited {code} on SIGTERM")
            shutil.rmtree(r.repo / "digits" / "1")
            r.install(v2, 2)
            sh("chown", "-R", f"{UID}:{UID}", r.repo)
            r.start()
            balancer.cmd(f"set server be/{name} state ready")
            balancer.wait_status(name, "UP")
        t1 = time.monotonic()
        time.sleep(1)
        roll = load.window(t0, t1)
        after = load.window(t1 + 0.5, time.monotonic())
        figures["rolling_update"] = {**roll, "seconds": round(t1 - t0, 2),
                                     "versions_after": after["versions"]}
        if roll["failed"]:
            failures.append(f"rolling update: {roll['failed']} failed requests")
        if after["versions"] != ["2"]:
            failures.append(f"after the roll, versions served: {after['versions']}")

        # 3. SIGKILL one replica mid-load.
        for phase, victim, act in [("sigkill", replicas[1], "kill"),
                                   ("partition", replicas[2], "partition")]:
            time.sleep(2)
            t = time.monotonic()
            baseline = load.window(t - 2, t)["requests"] / 2
            # The event lasts until the process is reaped (its sockets close
            # last) or the link is down: requests sent to the replica before
            # then are in flight on it.
            if act == "kill":
                victim.stop(signal.SIGKILL)
            else:
                victim.set_link("down")
            t_end = time.monotonic()
            time.sleep(4)
            time.sleep(0.2)  # the last log lines
            hit = load.window(t, t + 4)
            fate = load.around(t, t_end, f"r{victim.n}", balancer.log)
            fate["event_ms"] = round((t_end - t) * 1000)
            took, rates = load.recovery(t, baseline)
            figures[phase] = {**fate, "failed": hit["failed"], "requests_in_4s": hit["requests"],
                              "baseline_per_s": round(baseline), "recovered_in_s": took,
                              "per_s_in_half_seconds": rates}
            if os.environ.get("CLUSTER_DEBUG"):
                for x in load.records:
                    if not x[2] and x[1] >= t:
                        print(phase, round(x[0] - t, 4), round(x[1] - t, 4), x[3:],
                              balancer.log.get(x[4]), file=sys.stderr)
            if fate["failed_elsewhere_or_later"]:
                failures.append(f"{phase}: {fate['failed_elsewhere_or_later']} requests failed "
                                "that were not in flight on the replica")
            if took is None or took > 2:
                failures.append(f"{phase}: throughput not back within 2 s ({rates})")
            if act == "kill":
                victim.start()
            else:
                victim.set_link("up")
            balancer.wait_status(f"r{victim.n}", "UP")
        load.stop()
        figures["total"] = load.window(0, float("inf"))
    finally:
        if load:
            load.stop()
        if balancer:
            balancer.stop()
        for r in replicas:
            r.remove()
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(figures, indent=2)
    print(text)
    if out_path:
        pathlib.Path(out_path).write_text(text + "\n")
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
