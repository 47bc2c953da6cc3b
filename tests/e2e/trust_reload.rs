//! The trust keys of `kiln serve` reload without a restart (#17): the
//! trusted keys (`--trusted-keys`) and the unseal key (`--unseal-key-file`)
//! are read again on SIGHUP and when their files change, like the API keys
//! and certificates; connections stay open, loaded versions keep serving,
//! the next load of a model is held to the new keys, and keys that fail to
//! read are not taken.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::keys::Conn;
use crate::serve::{Server, config, digits_body, http, repo_with, test_rows};
use crate::trust::{first_rows_bits, index, keygen, refusal, served_bits};

#[test]
fn trust_keys_reload_on_sighup() {
    // The files are not polled (watch_interval_ms: an hour): only the
    // signal reloads.
    key_changes_take_effect("SIGHUP", "watch_interval_ms = 3600000\n");
}

#[test]
fn trust_keys_reload_when_their_files_change() {
    key_changes_take_effect("a file changed", "watch_interval_ms = 50\n");
}

/// Changes the keys of a running server one at a time, each followed by a
/// reload `why` ("SIGHUP": sent by the test; "a file changed": the
/// server's poll), and checks what each change makes loads accept.
///
/// Models: `a` signed by key A, `b` and `k2` by key B; `a` and `b` sealed
/// under k1, `k2` under k2. The server starts trusting A and unsealing k1.
fn key_changes_take_effect(why: &str, watch: &str) {
    let dir = scratch();
    let d = dir.path();
    let (a_secret, a_public) = keygen(d, "a");
    let (b_secret, b_public) = keygen(d, "b");
    let secrets = d.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let (k1, k2) = (secrets.join("k1.sealkey"), secrets.join("k2.sealkey"));
    kiln_ok(&["keygen", "--seal", "-o", s(&k1)]);
    kiln_ok(&["keygen", "--seal", "-o", s(&k2)]);
    let module = |key: &Path, seal: &Path| {
        let (signed, sealed) = (d.join("m.signed"), d.join("m.sealed"));
        let digits = &digits().module;
        kiln_ok(&["sign", s(digits), "--key", s(key), "-o", s(&signed)]);
        kiln_ok(&["seal", s(&signed), "--key-file", s(seal), "-o", s(&sealed)]);
        std::fs::read(&sealed).unwrap()
    };
    let repo = repo_with(
        d,
        &[
            ("a/1/model.wasm", &module(&a_secret, &k1)),
            ("b/1/model.wasm", &module(&b_secret, &k1)),
            ("k2/1/model.wasm", &module(&b_secret, &k2)),
        ],
    );
    let trusted = d.join("trusted");
    std::fs::create_dir(&trusted).unwrap();
    put(d, &a_public, &trusted.join("a.pub"));
    let unseal = d.join("unseal.key");
    put(d, &k1, &unseal);
    // header_timeout_ms also bounds an idle keep-alive connection: `conn`
    // stays open through every reload.
    let cfg = config(d, &format!("{watch}header_timeout_ms = 60000\n"));
    let server = Server::rest(
        &cfg,
        &[
            s(&repo),
            "--trusted-keys",
            s(&trusted),
            "--unseal-key-file",
            s(&unseal),
        ],
    );
    let rows = index(&server);
    assert!(
        rows.iter().any(|r| r.0 == "a" && r.2 == "READY"),
        "{rows:?}"
    );
    assert!(refusal(&rows, "b").contains("signed by no trusted key"));
    assert!(refusal(&rows, "k2").contains("cannot unseal"));
    let want = first_rows_bits(&digits().module);
    let body = digits_body(&test_rows(5));
    let mut conn = Conn::open(server.http);
    let mut serves = |name: &str| {
        let path = format!("/v2/models/{name}/infer");
        assert_eq!(conn.post(&path, "", &body), Ok(200), "{name}");
        assert_eq!(served_bits(&server, name), want, "{name}");
    };
    serves("a");
    let reloads = Reloads {
        server: &server,
        why,
    };

    // A key added: b loads.
    reloads.after(Outcome::Taken, || put(d, &b_public, &trusted.join("b.pub")));
    loads(&server, "b");
    serves("b");

    // A key removed: a's next load is refused, its loaded version serves on.
    reloads.after(Outcome::Taken, || {
        std::fs::remove_file(trusted.join("a.pub")).unwrap()
    });
    refused_but_serving(&server, "a", "signed by no trusted key");
    serves("a");

    // The unseal key replaced: k2 loads, b's next load is refused.
    reloads.after(Outcome::Taken, || put(d, &k2, &unseal));
    loads(&server, "k2");
    serves("k2");
    refused_but_serving(&server, "b", "cannot unseal");
    serves("b");

    // Keys that do not read are not taken: an unseal key file of junk, then
    // a trusted-keys directory left with no key. Each time k2, signed by B
    // and sealed under k2, still loads (the keys in use stay), and what
    // was loaded serves on.
    let junk = d.join("junk");
    std::fs::write(&junk, b"not a key").unwrap();
    let kept = reloads.after(Outcome::Kept, || put(d, &junk, &unseal));
    assert!(kept.contains(s(&unseal)), "{kept}");
    loads(&server, "k2");
    reloads.after(Outcome::Taken, || put(d, &k2, &unseal));
    let kept = reloads.after(Outcome::Kept, || {
        std::fs::remove_file(trusted.join("b.pub")).unwrap()
    });
    assert!(kept.contains(s(&trusted)), "{kept}");
    loads(&server, "k2");
    for name in ["a", "b", "k2"] {
        serves(name);
    }
}

/// Whether a reload took the keys or kept those in use.
#[derive(Clone, Copy)]
enum Outcome {
    Taken,
    Kept,
}

/// Counts the server's reloads of one cause and waits for the next.
struct Reloads<'a> {
    server: &'a Server,
    why: &'a str,
}

impl Reloads<'_> {
    /// Makes `change`, then (for SIGHUP) signals, and waits until the
    /// server logs one more reload with `outcome`. Returns that log line.
    fn after(&self, outcome: Outcome, change: impl FnOnce()) -> String {
        let needle = match outcome {
            Outcome::Taken => format!("reload ({}): trust keys read again", self.why),
            Outcome::Kept => format!("reload ({}): keeping the trust keys in use", self.why),
        };
        let lines = || -> Vec<String> {
            let err = self.server.stderr();
            err.lines()
                .filter(|l| l.contains(&needle))
                .map(String::from)
                .collect()
        };
        let before = lines().len();
        change();
        if self.why == "SIGHUP" {
            self.server.signal_hup();
        }
        let start = Instant::now();
        loop {
            if let Some(line) = lines().get(before) {
                return line.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "never logged {needle:?} again: {}",
                self.server.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Copies `from` to `to` through a rename (a key file is never seen half
/// written); the copy is made in `scratch`, outside any watched directory.
fn put(scratch: &Path, from: &Path, to: &Path) {
    let tmp: PathBuf = scratch.join("put.tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// `POST /v2/repository/models/{name}/load`: (status, body).
fn load(server: &Server, name: &str) -> (u16, String) {
    http(
        server.http,
        "POST",
        &format!("/v2/repository/models/{name}/load"),
        "{}",
    )
}

/// A load of `name` succeeds.
fn loads(server: &Server, name: &str) {
    let (status, text) = load(server, name);
    assert_eq!(status, 200, "{name}: {text}");
}

/// A load of `name` is refused for `why`, and the index says its loaded
/// versions still serve.
fn refused_but_serving(server: &Server, name: &str, why: &str) {
    let (status, text) = load(server, name);
    assert_ne!(status, 200, "{text}");
    assert!(text.contains(why), "{text}");
    let rows = index(server);
    let row = rows.iter().find(|r| r.0 == name).unwrap();
    assert_eq!(row.2, "READY", "{rows:?}");
    assert!(
        row.3.contains("previous versions still serving"),
        "{rows:?}"
    );
}
