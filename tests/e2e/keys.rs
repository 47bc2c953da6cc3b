//! API keys as digests in kiln.toml (`key_sha256`, `kiln keyhash`) and
//! rotated without a restart: on SIGHUP under load, and on a change of the
//! file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::serve::{Server, digits_body, test_rows};

const OLD: &str = "old-key-0123456789abcdef";
const NEW: &str = "new-key-0123456789abcdef";

fn keyhash(key: &str) -> String {
    let dir = scratch();
    let file = dir.path().join("k");
    std::fs::write(&file, format!("{key}\n")).unwrap();
    kiln_ok(&["keyhash", s(&file)]).trim().to_string()
}

/// kiln.toml with one key for every model, as a digest, written through a
/// rename (a reader never sees half a file).
fn write_config(path: &Path, key: &str, extra: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!(
            "[server]\ncache_dir = {:?}\n{extra}\n[[keys]]\nkey_sha256 = \"{}\"\nmodels = [\"*\"]\n",
            path.parent().unwrap().join("cache"),
            keyhash(key)
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An HTTP/1.1 keep-alive connection: many requests, one TCP connection.
pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub(crate) fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn {
            reader: BufReader::new(s),
        }
    }

    /// POST `body` to `path` with `key`: the status, or the I/O error.
    pub(crate) fn post(&mut self, path: &str, key: &str, body: &str) -> Result<u16, String> {
        let s = self.reader.get_mut();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: kiln\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status line: {line:?}"))?;
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| e.to_string())?;
        Ok(status)
    }
}

#[test]
fn keyhash_prints_the_digest_kiln_toml_accepts() {
    // sha256("old-key-0123456789abcdef"), as `printf %s KEY | sha256sum`.
    use sha2::{Digest, Sha256};
    let want: String = Sha256::digest(OLD.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(keyhash(OLD), want);
    let mut child = kiln(&["keyhash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{OLD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
    let dir = scratch();
    let short = dir.path().join("short");
    std::fs::write(&short, "tooshort").unwrap();
    check_clean_failure(
        kiln(&["keyhash", s(&short)]).output().unwrap(),
        &["at least 16 characters"],
    );
}

/// Requests with the old key run without a pause on four keep-alive
/// connections while kiln.toml is swapped to the new key and SIGHUP sent.
/// Every answer is 200 or 401, never an error or a dropped connection;
/// requests answered before SIGHUP pass, requests sent after the reload's
/// log line are refused; the new key is refused before and accepted after; a
/// request in flight at the reload completes.
#[test]
fn keys_rotate_on_sighup_under_load_without_failing_a_request() {
    let dir = scratch();
    let cfg = dir.path().join("kiln.toml");
    // The file watch is slowed down: the reload here is the signal's.
    write_config(&cfg, OLD, "watch_interval_ms = 3600000");
    let slow = crate::serve::wat_module(
        "(local $i i32) (local.set $i (i32.const 0x7fffffff)) \
         (block (loop (br_if 1 (i32.eqz (local.tee $i (i32.sub (local.get $i) (i32.const 1))))) (br 0))) \
         i32.const 0",
    );
    let repo = crate::serve::repo_with(dir.path(), &[("slow.wasm", &slow)]);
    std::fs::create_dir_all(repo.join("digits/1")).unwrap();
    std::fs::copy(&digits().module, repo.join("digits/1/model.wasm")).unwrap();
    let cfg_text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        cfg_text.replace("[server]\n", "[defaults]\ntimeout_ms = 30000\n[server]\n"),
    )
    .unwrap();
    let server = Server::rest(&cfg, &[s(&repo)]);
    let addr = server.http;
    let body = Arc::new(digits_body(&test_rows(1)));
    let path = "/v2/models/digits/infer";
    let mut probe = Conn::open(addr);
    assert_eq!(probe.post(path, OLD, &body), Ok(200));
    assert_eq!(probe.post(path, NEW, &body), Ok(401));

    // (sent, answered, status) of every old-key request, per connection.
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (stop, body) = (stop.clone(), body.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = t0.elapsed();
                    let status = conn.post(path, OLD, &body);
                    seen.push((sent, t0.elapsed(), status));
                }
                seen
            })
        })
        .collect();
    // A request in flight across the reload (the slow model takes seconds).
    let inflight = std::thread::spawn(move || {
        let status = Conn::open(addr).post("/v2/models/slow/infer", OLD, crate::serve::ONE);
        (status, t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(400));
    write_config(&cfg, NEW, "watch_interval_ms = 3600000");
    let signalled = t0.elapsed();
    server.signal_hup();
    server.wait_stderr("reload (SIGHUP): 1 API keys from");
    let reloaded = t0.elapsed();
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<(Duration, Duration, Result<u16, String>)> =
        loops.into_iter().flat_map(|l| l.join().unwrap()).collect();
    let (status, answered) = inflight.join().unwrap();
    assert_eq!(status, Ok(200), "{}", server.stderr());
    assert!(
        answered > reloaded,
        "the slow request was answered at {answered:?}, before the reload at {reloaded:?}"
    );

    let (mut before, mut after) = (0, 0);
    for (sent, answered, status) in &seen {
        match status {
            Ok(200) if *answered < signalled => before += 1,
            Ok(401) if *sent > reloaded => after += 1,
            // Overlapping the reload (the key is checked when the server
            // reads the request): either is right.
            Ok(200 | 401) if *answered >= signalled && *sent <= reloaded => {}
            other => panic!(
                "request sent at {sent:?}, answered at {answered:?} \
                 (SIGHUP at {signalled:?}, reloaded by {reloaded:?}): {other:?}"
            ),
        }
    }
    assert!(before > 0 && after > 0, "{before} before, {after} after");
    assert_eq!(probe.post(path, NEW, &body), Ok(200));
    assert_eq!(probe.post(path, OLD, &body), Ok(401));
}

#[test]
fn keys_reload_when_kiln_toml_changes_and_a_bad_file_keeps_them() {
    let dir = scratch();
    let cfg = dir.path().join("kiln.toml");
    write_config(&cfg, OLD, "watch_interval_ms = 50");
    let server = Server::rest(&cfg, &[]);
    let body = digits_body(&test_rows(1));
    let path = "/v2/models/digits/infer";
    let mut conn = Conn::open(server.http);
    assert_eq!(conn.post(path, OLD, &body), Ok(200));
    write_config(&cfg, NEW, "watch_interval_ms = 50");
    server.wait_stderr("reload (a file changed): 1 API keys from");
    // The same connection, the new keys.
    assert_eq!(conn.post(path, NEW, &body), Ok(200));
    assert_eq!(conn.post(path, OLD, &body), Ok(401));
    // A file that does not parse: the keys in use stay.
    std::fs::write(&cfg, "[[keys]]\nkey_sha256 = \"abc\"\nmodels = [\"*\"]\n").unwrap();
    server.wait_stderr("keeping the API keys in use");
    assert!(
        server.stderr().contains("keys[0].key_sha256"),
        "{}",
        server.stderr()
    );
    assert_eq!(conn.post(path, NEW, &body), Ok(200));
    // Nor may a reload remove every key.
    std::fs::write(&cfg, "[server]\nwatch_interval_ms = 50\n").unwrap();
    server.wait_stderr("removing every key needs a restart");
    assert_eq!(conn.post(path, NEW, &body), Ok(200));
}
