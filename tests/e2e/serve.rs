//! `kiln serve` as a process: the demo model, sandbox limits under real
//! concurrency, the compile cache across restarts, `--watch`, SIGTERM.
//! (Limits on clients and connections in `serve_limits`.)
//! (Every route and status code is also tested without a socket in
//! `runtime/src/serve/tests.rs`; tritonclient drives it from Python in
//! `tests/python/`.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A running `kiln serve`, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) http: SocketAddr,
    /// `None` with `--no-grpc`.
    pub(crate) grpc: Option<SocketAddr>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// `kiln serve --http 127.0.0.1:0 --no-grpc --config CFG ARGS…`: REST
    /// only, on a free loopback port, as most tests start it (ARGS: the
    /// repository, if any, and other flags).
    pub(crate) fn rest(cfg: &Path, args: &[&str]) -> Server {
        let mut all = vec!["--http", "127.0.0.1:0", "--no-grpc", "--config", s(cfg)];
        all.extend_from_slice(args);
        Server::start(&all)
    }

    pub(crate) fn start(args: &[&str]) -> Server {
        let mut child = Command::new(kiln_bin())
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kiln serve");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err_pipe = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while err_pipe.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("kiln serve: http="),
            "unexpected first line {line:?}; stderr: {}",
            stderr.lock().unwrap()
        );
        let addr = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|a| a.parse().ok())
        };
        Server {
            child,
            http: addr("http=").unwrap(),
            grpc: addr("grpc="),
            stderr,
        }
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until stderr contains `needle`.
    pub(crate) fn wait_stderr(&self, needle: &str) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "stderr never said {needle:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (up to 10 s) until a line of stderr contains all of `needles`
    /// (the log is read by a thread: it may lag behind an answer).
    pub(crate) fn wait_line(&self, needles: &[&str]) {
        let start = Instant::now();
        while !self
            .stderr()
            .lines()
            .any(|l| needles.iter().all(|n| l.contains(n)))
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no stderr line said all of {needles:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn signal_term(&self) {
        self.signal("-TERM");
    }

    /// SIGHUP: the server reads its keys and certificates again.
    pub(crate) fn signal_hup(&self) {
        self.signal("-HUP");
    }

    fn signal(&self, flag: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([flag, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal_term();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
pub(crate) fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

pub(crate) fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A hand-written module (one input, one output) with `kiln_run` = `body`.
pub(crate) fn wat_module(run_body: &str) -> Vec<u8> {
    let meta = serde_json::json!({
        "abi_version": 1, "name": "t", "version": "1", "task": "regression",
        "input": {"name": "x", "datatype": "FP32", "shape": [1]},
        "output": {"name": "y", "datatype": "FP32", "shape": [1]},
        "model_sha256": "", "kiln_version": "test"
    })
    .to_string()
    .replace('"', "\\\"");
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 1)
          (func (export "kiln_abi_version") (result i32) i32.const 1)
          (func (export "kiln_input_len") (result i32) i32.const 1)
          (func (export "kiln_output_len") (result i32) i32.const 1)
          (func (export "kiln_input") (param i32) (result i32) i32.const 64)
          (func (export "kiln_output") (result i32) i32.const 64)
          (func (export "kiln_run") (param i32) (result i32) {run_body})
          (@custom "kiln.meta" "{meta}"))"#
    ))
    .unwrap()
}

pub(crate) const ONE: &str =
    r#"{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}]}"#;

pub(crate) fn digits_body(rows: &[Vec<f32>]) -> String {
    let data: Vec<f32> = rows.iter().flatten().copied().collect();
    serde_json::json!({"inputs": [{"name": "input", "shape": [rows.len(), 64], "datatype": "FP32", "data": data}]})
        .to_string()
}

/// The first `n` held-out digits rows (without the target column).
pub(crate) fn test_rows(n: usize) -> Vec<Vec<f32>> {
    let text = std::fs::read_to_string(&digits().test_csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let target = header.iter().position(|h| *h == "digit").unwrap();
    lines
        .take(n)
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != target)
                .map(|(_, v)| v.parse().unwrap())
                .collect()
        })
        .collect()
}

pub(crate) fn repo_with(dir: &Path, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let repo = dir.join("repo");
    for (rel, bytes) in files {
        let p = repo.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    repo
}

pub(crate) fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join("kiln.toml");
    std::fs::write(
        &p,
        format!("[server]\ncache_dir = {:?}\n{extra}", dir.join("cache")),
    )
    .unwrap();
    p
}

#[test]
fn committed_demo_model_is_what_train_writes() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.safetensors");
    let trained = std::fs::read(&digits().model).unwrap();
    assert!(
        std::fs::read(&committed).unwrap() == trained,
        "runtime/data/digits.safetensors differs from `kiln train --data builtin:digits --seed 1 -o digits.safetensors`; regenerate it"
    );
}

#[test]
fn demo_server_matches_predict_native_and_exits_on_sigterm() {
    let dir = scratch();
    let cfg = config(dir.path(), "");
    let mut server = Server::rest(&cfg, &[]);
    let (status, page) = http(server.http, "GET", "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("digits") && page.contains("curl"), "{page}");

    let rows = test_rows(20);
    let (status, body) = http(
        server.http,
        "POST",
        "/v2/models/digits/infer",
        &digits_body(&rows),
    );
    assert_eq!(status, 200, "{body}");
    let served: Vec<u32> = json(&body)["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v.as_f64().unwrap() as f32).to_bits())
        .collect();
    let head: String = std::fs::read_to_string(&digits().test_csv)
        .unwrap()
        .lines()
        .take(21)
        .map(|l| format!("{l}\n"))
        .collect();
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, head).unwrap();
    let native = scores(&kiln_ok(&[
        "predict",
        s(&digits().module),
        "--input",
        s(&csv),
        "--native",
    ]));
    let native: Vec<u32> = bits(&native).into_iter().flatten().collect();
    assert_eq!(served, native);

    let status = server.terminate();
    assert!(status.success(), "{status:?}: {}", server.stderr());
    server.wait_stderr("shutting down");
}

#[test]
fn json_logs_are_one_object_per_line_with_an_access_line_per_request() {
    let dir = scratch();
    let cfg = config(dir.path(), "");
    let mut server = Server::rest(&cfg, &["--log-format", "json"]);
    let (status, _) = http(
        server.http,
        "POST",
        "/v2/models/digits/infer",
        &digits_body(&test_rows(1)),
    );
    assert_eq!(status, 200);
    assert!(server.terminate().success());
    server.wait_stderr("shutting down");
    let lines: Vec<serde_json::Value> = server
        .stderr()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| {
        l["level"] == "INFO"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("loaded model `digits`"))
    }));
    let access = lines
        .iter()
        .find(|l| l["target"] == "kiln::access")
        .expect("an access line");
    assert_eq!(access["status"], 200);
    assert_eq!(access["model"], "digits");
    assert_eq!(access["route"], "/v2/models/{m}/infer");
    // A filter that does not parse is refused, naming where it came from.
    let err = kiln_err(&[
        "serve",
        "--no-grpc",
        "--config",
        s(&cfg),
        "--log-level",
        "info,kiln=loud",
    ]);
    assert!(
        err.contains("--log-level") && err.contains("info,kiln=loud"),
        "{err}"
    );
}

#[test]
fn endless_loop_is_stopped_at_its_deadline_while_another_model_answers() {
    let dir = scratch();
    let digits_wasm = std::fs::read(&digits().module).unwrap();
    let repo = repo_with(
        dir.path(),
        &[
            ("loop.wasm", &wat_module("(loop br 0) i32.const 0")),
            ("digits.wasm", &digits_wasm),
        ],
    );
    let cfg = config(dir.path(), "[models.loop]\ntimeout_ms = 200\n");
    let server = Server::rest(&cfg, &[s(&repo)]);
    let addr = server.http;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let done = done.clone();
        let body = digits_body(&test_rows(1));
        std::thread::spawn(move || {
            let mut answered = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, b) = http(addr, "POST", "/v2/models/digits/infer", &body);
                assert_eq!(status, 200, "{b}");
                answered += 1;
            }
            answered
        })
    };
    let (mut best, mut worst) = (Duration::MAX, Duration::ZERO);
    for _ in 0..5 {
        let start = Instant::now();
        let (status, body) = http(addr, "POST", "/v2/models/loop/infer", ONE);
        (best, worst) = (best.min(start.elapsed()), worst.max(start.elapsed()));
        assert_eq!(status, 504, "{body}");
        assert!(body.contains("deadline"), "{body}");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = other.join().unwrap();
    // Not a speed test: the bounds only tell a deadline from a coarser
    // clock (whole seconds) or none, with room for a loaded machine.
    assert!(
        best >= Duration::from_millis(200) && worst < Duration::from_secs(1),
        "a 200 ms deadline took {best:?} to {worst:?}"
    );
    assert!(
        answered >= 5,
        "the other model answered only {answered} times in 1 s"
    );
}

#[test]
fn memory_growth_is_stopped_at_the_cap_and_server_memory_stays_bounded() {
    let dir = scratch();
    // Grows one page at a time and writes to each new page, so a leaked
    // instance would leave 4 KiB per page resident.
    let grow = wat_module(
        "(local $p i32) \
         (loop (local.set $p (memory.grow (i32.const 1))) \
               (i32.store (i32.shl (local.get $p) (i32.const 16)) (i32.const 1)) \
               (br 0)) \
         i32.const 0",
    );
    let repo = repo_with(dir.path(), &[("grow.wasm", &grow)]);
    let cfg = config(dir.path(), "");
    let server = Server::rest(&cfg, &[s(&repo)]);
    let hit = |n: usize| {
        for _ in 0..n {
            let (status, body) = http(server.http, "POST", "/v2/models/grow/infer", ONE);
            assert_eq!(status, 500, "{body}");
            assert!(body.contains("memory cap of 67108864 bytes"), "{body}");
        }
    };
    hit(20);
    let early = server.rss_kib();
    hit(200);
    let late = server.rss_kib();
    // 200 more instances each touching 1,024 pages (4 MiB resident): the server's memory
    // must not follow (slots are reset and their pages released).
    assert!(
        late < early + 48 * 1024,
        "RSS grew from {early} KiB to {late} KiB over 200 capped requests"
    );
}

#[test]
fn compiled_code_is_cached_across_restarts() {
    let dir = scratch();
    let digits_wasm = std::fs::read(&digits().module).unwrap();
    let repo = repo_with(dir.path(), &[("digits/1/model.wasm", &digits_wasm)]);
    let cfg = config(dir.path(), "");
    let mut first = Server::rest(&cfg, &[s(&repo)]);
    first.wait_stderr("(compiled)");
    first.terminate();
    let second = Server::rest(&cfg, &[s(&repo)]);
    second.wait_stderr("(from the compile cache)");
    let (status, _) = http(
        second.http,
        "POST",
        "/v2/models/digits/infer",
        &digits_body(&test_rows(1)),
    );
    assert_eq!(status, 200);
}

#[test]
fn watch_loads_new_versions_and_unloads_removed_models() {
    let dir = scratch();
    let digits_wasm = std::fs::read(&digits().module).unwrap();
    let repo = repo_with(dir.path(), &[("digits/1/model.wasm", &digits_wasm)]);
    let cfg = config(dir.path(), "watch_interval_ms = 50\n");
    let server = Server::rest(&cfg, &[s(&repo), "--watch"]);
    let wait_for = |what: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !what() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{}",
                server.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    std::fs::create_dir_all(repo.join("digits/2")).unwrap();
    std::fs::write(repo.join("digits/2/model.wasm"), &digits_wasm).unwrap();
    wait_for(&|| {
        let (_, b) = http(server.http, "GET", "/v2/models/digits", "");
        b.contains("\"versions\":[\"2\"]")
    });
    std::fs::write(repo.join("other.wasm"), &digits_wasm).unwrap();
    wait_for(&|| http(server.http, "GET", "/v2/models/other/ready", "").0 == 200);
    std::fs::remove_file(repo.join("other.wasm")).unwrap();
    wait_for(&|| http(server.http, "GET", "/v2/models/other/ready", "").0 == 404);
}

#[test]
fn without_keys_only_loopback_is_served() {
    let dir = scratch();
    let cfg = config(dir.path(), "");
    let server = Server::start(&["--http", "0.0.0.0:0", "--no-grpc", "--config", s(&cfg)]);
    assert!(server.http.ip().is_loopback(), "{}", server.http);
    server.wait_stderr("loopback only");
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let dir = scratch();
    // Counts down from 2^29 in a loop: well under a second, well over 50 ms.
    let slow = wat_module(
        "(local $i i32) (local.set $i (i32.const 0x20000000)) \
         (block (loop (br_if 1 (i32.eqz (local.tee $i (i32.sub (local.get $i) (i32.const 1))))) (br 0))) \
         i32.const 0",
    );
    let repo = repo_with(dir.path(), &[("slow.wasm", &slow)]);
    let cfg = config(dir.path(), "[defaults]\ntimeout_ms = 30000\n");
    let mut server = Server::rest(&cfg, &[s(&repo)]);
    let addr = server.http;
    let inflight = std::thread::spawn(move || http(addr, "POST", "/v2/models/slow/infer", ONE));
    std::thread::sleep(Duration::from_millis(150));
    let status = server.terminate();
    let (code, body) = inflight.join().unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(status.success(), "{}", server.stderr());
    // The listener is closed: new requests are refused.
    assert!(TcpStream::connect(addr).is_err());
}

/// On SIGTERM readiness turns 503 at once, while requests are still
/// answered for `drain_ms` (load balancers see the 503 and stop sending
/// before the listener closes); then the server exits 0.
#[test]
fn sigterm_turns_readiness_503_then_serves_through_the_drain() {
    let dir = scratch();
    let cfg = config(dir.path(), "drain_ms = 1500\n");
    let mut server = Server::rest(&cfg, &[]);
    let body = digits_body(&test_rows(1));
    assert_eq!(http(server.http, "GET", "/v2/health/ready", "").0, 200);
    server.signal_term();
    server.wait_stderr("shutting down");
    assert_eq!(http(server.http, "GET", "/v2/health/ready", "").0, 503);
    let (code, text) = http(server.http, "POST", "/v2/models/digits/infer", &body);
    assert_eq!(code, 200, "{text}");
    let status = server.terminate();
    assert!(status.success(), "{}", server.stderr());
}

#[test]
fn bad_config_is_refused_with_the_field() {
    let dir = scratch();
    let cfg = dir.path().join("kiln.toml");
    std::fs::write(&cfg, "[defaults]\ntimeout_ms = 0\n").unwrap();
    let err = kiln_err(&["serve", "--config", s(&cfg)]);
    assert!(err.contains("defaults.timeout_ms"), "{err}");
    let err = kiln_err(&["serve", s(&dir.path().join("missing"))]);
    assert!(err.contains("not a directory"), "{err}");
}
