//! The trust keys of `kiln serve` reload without a restart (#17): the
//! trusted keys (`--trusted-keys`) and the unseal key (`--unseal-key-file`)
//! are read again on SIGHUP and when their files change, like the API keys
//! and certificates; connections stay open, loaded versions keep serving,
//! and the next load of a model is held to the new keys.

use std::path::Path;

use crate::common::*;
use crate::keys::Conn;
use crate::serve::{Server, config, digits_body, http, repo_with, test_rows};
use crate::trust::{first_rows_bits, index, keygen, refusal, served_bits};

/// Sends SIGHUP to the server.
fn hangup(server: &Server) {
    let pid = server.child.id().to_string();
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Waits until the server has logged `needle` `n` times.
fn wait_count(server: &Server, needle: &str, n: usize) {
    let start = std::time::Instant::now();
    while server.stderr().matches(needle).count() < n {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{needle:?} never logged {n} times: {}",
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
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

#[test]
fn trusted_and_unseal_keys_reload_on_sighup_and_on_change() {
    let dir = scratch();
    let d = dir.path();
    let (a_secret, a_public) = keygen(d, "a");
    let (b_secret, b_public) = keygen(d, "b");
    let secrets = d.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let (k1, k2) = (secrets.join("k1.sealkey"), secrets.join("k2.sealkey"));
    kiln_ok(&["keygen", "--seal", "-o", s(&k1)]);
    kiln_ok(&["keygen", "--seal", "-o", s(&k2)]);
    // The digits module signed by `key`, sealed under `seal`.
    let module = |key: &Path, seal: &Path| {
        let (signed, sealed) = (d.join("m.signed"), d.join("m.sealed"));
        kiln_ok(&[
            "sign",
            s(&digits().module),
            "--key",
            s(key),
            "-o",
            s(&signed),
        ]);
        kiln_ok(&["seal", s(&signed), "--key-file", s(seal), "-o", s(&sealed)]);
        std::fs::read(&sealed).unwrap()
    };
    let repo = repo_with(
        d,
        &[
            ("a/1/model.wasm", &module(&a_secret, &k1)),
            ("b/1/model.wasm", &module(&b_secret, &k1)),
            ("k2/1/model.wasm", &module(&a_secret, &k2)),
        ],
    );
    let trusted = d.join("trusted");
    std::fs::create_dir(&trusted).unwrap();
    std::fs::copy(&a_public, trusted.join("a.pub")).unwrap();
    let unseal = d.join("unseal.key");
    std::fs::copy(&k1, &unseal).unwrap();
    // header_timeout_ms also bounds an idle keep-alive connection: `conn`
    // waits through several loads.
    let cfg = config(d, "watch_interval_ms = 50\nheader_timeout_ms = 60000\n");
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
    assert_eq!(conn.post("/v2/models/a/infer", "", &body), Ok(200));

    // SIGHUP: key b replaces key a, k2 replaces k1 (written in place, as a
    // secret store would).
    std::fs::remove_file(trusted.join("a.pub")).unwrap();
    std::fs::copy(&b_public, trusted.join("b.pub")).unwrap();
    std::fs::copy(&k2, &unseal).unwrap();
    const RELOADED: &str = "trust keys read again";
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = server.stderr().matches(RELOADED).count();
    hangup(&server);
    wait_count(&server, RELOADED, before + 1);
    // The open connection and the loaded version carry on.
    assert_eq!(conn.post("/v2/models/a/infer", "", &body), Ok(200));
    // Signed by the newly trusted key: b loads now, with the same bits.
    let (status, text) = load(&server, "b");
    assert_eq!(status, 200, "{text}");
    assert_eq!(served_bits(&server, "b"), want);
    // k2 now unseals, but its signer (a) is no longer trusted.
    let (status, text) = load(&server, "k2");
    assert_ne!(status, 200, "{text}");
    assert!(text.contains("signed by no trusted key"), "{text}");
    // The removed unseal key: a's next load is refused (k2 does not unseal it).
    let (status, text) = load(&server, "a");
    assert_ne!(status, 200, "{text}");
    assert!(text.contains("cannot unseal"), "{text}");
    // Its version loaded before keeps serving, as after any failed reload.
    assert_eq!(conn.post("/v2/models/a/infer", "", &body), Ok(200));

    // A file change alone (no signal) reloads too: key a trusted again.
    let before = server.stderr().matches(RELOADED).count();
    std::fs::copy(&a_public, trusted.join("a.pub")).unwrap();
    wait_count(&server, RELOADED, before + 1);
    let (status, text) = load(&server, "k2");
    assert_eq!(status, 200, "{text}");
    assert_eq!(served_bits(&server, "k2"), want);
    assert_eq!(conn.post("/v2/models/b/infer", "", &body), Ok(200));

    // A directory left with no key is refused, and the keys in use stay.
    for key in ["a.pub", "b.pub"] {
        std::fs::remove_file(trusted.join(key)).unwrap();
    }
    const KEPT: &str = "keeping the trust keys in use";
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = server.stderr().matches(KEPT).count();
    hangup(&server);
    wait_count(&server, KEPT, before + 1);
    let (status, text) = load(&server, "b");
    assert_eq!(status, 200, "{text}");
}
