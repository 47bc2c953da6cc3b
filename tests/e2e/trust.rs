//! Signed modules (#17): `kiln keygen | sign | verify`, `kiln build
//! --sign`, `kiln predict --key`, and `kiln serve --trusted-keys` and
//! digest pins refusing what they must; interop with the `wasmsign2` CLI
//! both ways. (Sealed files: `seal`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use wasmparser::{Parser, Payload};

use crate::common::*;
use crate::serve::{Server, config, digits_body, http, json, repo_with, test_rows};

/// The digits module's scores on the first held-out rows, as bits.
pub(crate) fn predicted(module: &Path, extra: &[&str]) -> Vec<Vec<u32>> {
    let mut args = vec!["predict", s(module), "--input", s(&digits().test_csv)];
    args.extend_from_slice(extra);
    bits(&scores(&kiln_ok(&args)))
}

/// A signing pair `dir/NAME.key`, `dir/NAME.pub`.
pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let stem = dir.join(name);
    kiln_ok(&["keygen", "-o", s(&stem)]);
    (stem.with_extension("key"), stem.with_extension("pub"))
}

/// Offsets of one byte in each part a tamperer would change: the middle of
/// the code section, of the model blob in the data segment, and of the
/// `kiln.meta` JSON.
fn tamper_points(wasm: &[u8]) -> [(&'static str, usize); 3] {
    let (mut code, mut meta) = (None, None);
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            Payload::CodeSectionStart {
                unchecked_range: r, ..
            } => code = Some((r.start + (r.end - r.start) / 2) as usize),
            Payload::CustomSection(c) if c.name() == "kiln.meta" => {
                // Inside the model's name value, so the JSON stays valid.
                let at = c
                    .data()
                    .windows(8)
                    .position(|w| w == b"\"digits\"")
                    .unwrap();
                meta = Some(c.data_offset() as usize + at + 2);
            }
            _ => {}
        }
    }
    let blob = kiln::module::embedded_blob(wasm).unwrap().unwrap();
    let data = blob.as_ptr() as usize - wasm.as_ptr() as usize + blob.len() / 2;
    [
        ("code", code.unwrap()),
        ("data", data),
        ("kiln.meta", meta.unwrap()),
    ]
}

pub(crate) fn flipped(wasm: &[u8], at: usize) -> Vec<u8> {
    let mut w = wasm.to_vec();
    w[at] ^= 0x01;
    w
}

#[test]
fn signing_keeps_the_bits_and_verify_says_why_it_refuses() {
    let dir = scratch();
    let d = dir.path();
    let (secret, public) = keygen(d, "signer");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret key is private");
    }
    let err = kiln_err(&["keygen", "-o", s(&d.join("signer"))]);
    assert!(err.contains("--force"), "{err}");

    let signed = d.join("signed.wasm");
    kiln_ok(&[
        "sign",
        s(&digits().module),
        "--key",
        s(&secret),
        "-o",
        s(&signed),
    ]);
    kiln_ok(&["verify", s(&signed), "--key", s(&public)]);
    // Same bits in wasmtime and natively, signed or not; `--key` verifies.
    let before = predicted(&digits().module, &[]);
    assert_eq!(predicted(&signed, &["--key", s(&public)]), before);
    assert_eq!(
        predicted(&signed, &["--native", "--key", s(&public)]),
        before
    );
    // `kiln build --sign` writes the very bytes `kiln sign` does (Ed25519
    // signatures are deterministic).
    let built = d.join("built.wasm");
    kiln_ok(&[
        "build",
        s(&digits().model),
        "--sign",
        s(&secret),
        "-o",
        s(&built),
    ]);
    assert_eq!(
        std::fs::read(&built).unwrap(),
        std::fs::read(&signed).unwrap()
    );
    assert_eq!(kernel_of(&signed), kernel_of(&digits().module));
    // A signed int8 module still gets its relaxed-SIMD twin (the host
    // recognises kiln's module under the signature), with the same bits.
    let (int8, int8_wasm, int8_signed) = (
        d.join("int8.safetensors"),
        d.join("int8.wasm"),
        d.join("int8.signed.wasm"),
    );
    kiln_ok(&["quantize", s(&digits().model), "--dynamic", "-o", s(&int8)]);
    kiln_ok(&["build", s(&int8), "-o", s(&int8_wasm)]);
    kiln_ok(&[
        "build",
        s(&int8),
        "--sign",
        s(&secret),
        "-o",
        s(&int8_signed),
    ]);
    let twin = |p: &Path| kiln::module::relaxed_twin(&std::fs::read(p).unwrap()).unwrap();
    assert!(twin(&int8_wasm).is_some());
    assert_eq!(twin(&int8_signed), twin(&int8_wasm));
    assert_eq!(
        predicted(&int8_signed, &["--key", s(&public)]),
        predicted(&int8_wasm, &[])
    );

    let refusal = |module: &Path, key: &Path| {
        let verify = kiln_err(&["verify", s(module), "--key", s(key)]);
        let predict = kiln_err(&[
            "predict",
            s(module),
            "--input",
            s(&digits().test_csv),
            "--key",
            s(key),
        ]);
        assert_eq!(
            verify.lines().last(),
            predict.lines().last(),
            "verify and predict give the same reason"
        );
        verify
    };
    let e = refusal(&digits().module, &public);
    assert!(e.contains("unsigned"), "{e}");
    let (_, other) = keygen(d, "other");
    let e = refusal(&signed, &other);
    assert!(e.contains("signed by no trusted key"), "{e}");
    // A directory of keys: any of them may have signed.
    let keys = d.join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::copy(&other, keys.join("other.pub")).unwrap();
    std::fs::copy(&public, keys.join("signer.pub")).unwrap();
    kiln_ok(&["verify", s(&signed), "--key", s(&keys)]);

    let wasm = std::fs::read(&signed).unwrap();
    for (part, at) in tamper_points(&wasm) {
        let bad = d.join(format!("tampered-{part}.wasm"));
        std::fs::write(&bad, flipped(&wasm, at)).unwrap();
        let e = refusal(&bad, &public);
        assert!(e.contains("tampered"), "{part}: {e}");
    }
    let e = kiln_err(&["sign", s(&digits().module), "--key", s(&public)]);
    assert!(e.contains("cannot sign"), "{e}");
    let e = kiln_err(&[
        "predict",
        s(&digits().model),
        "--input",
        s(&digits().test_csv),
        "--key",
        s(&public),
    ]);
    assert!(e.contains("only modules carry signatures"), "{e}");
}

/// The `wasmsign2` CLI (crate wasmsign2-cli; scripts/test.sh installs it
/// through scripts/lib.sh), if this machine has it.
fn wasmsign2() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("CARGO_HOME").map(|h| PathBuf::from(h).join("bin")))
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")));
    candidates
        .map(|d| d.join("wasmsign2"))
        .find(|p| p.is_file())
}

#[test]
fn wasmsign2_verifies_kiln_signatures_and_kiln_verifies_its() {
    let Some(tool) = wasmsign2() else {
        eprintln!(
            "SKIPPED: the wasmsign2 CLI is not installed (scripts/test.sh installs it: \
             `source scripts/lib.sh && ensure_wasmsign2`)"
        );
        return;
    };
    let dir = scratch();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = Command::new(&tool).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // kiln signs, wasmsign2 verifies (with kiln's public key file).
    let (secret, public) = keygen(d, "kiln");
    let signed = d.join("kiln-signed.wasm");
    kiln_ok(&[
        "build",
        s(&digits().model),
        "--sign",
        s(&secret),
        "-o",
        s(&signed),
    ]);
    let (ok, err) = run(&["verify", "-i", s(&signed), "-K", s(&public)]);
    assert!(ok, "wasmsign2 refused kiln's signature: {err}");
    // ...and refuses it once a byte of the data segment changed.
    let wasm = std::fs::read(&signed).unwrap();
    let bad = d.join("bad.wasm");
    std::fs::write(&bad, flipped(&wasm, tamper_points(&wasm)[1].1)).unwrap();
    assert!(!run(&["verify", "-i", s(&bad), "-K", s(&public)]).0);

    // wasmsign2 makes the keys and signs, kiln verifies and runs it.
    let (sk, pk) = (d.join("ws.key"), d.join("ws.pub"));
    let (ok, err) = run(&["keygen", "-k", s(&sk), "-K", s(&pk)]);
    assert!(ok, "{err}");
    let theirs = d.join("ws-signed.wasm");
    let (ok, err) = run(&[
        "sign",
        "-i",
        s(&digits().module),
        "-o",
        s(&theirs),
        "-k",
        s(&sk),
    ]);
    assert!(ok, "{err}");
    kiln_ok(&["verify", s(&theirs), "--key", s(&pk)]);
    // With the signer's key id in the signature (`-K` when signing) too.
    let with_id = d.join("ws-signed-id.wasm");
    let (ok, err) = run(&[
        "sign",
        "-i",
        s(&digits().module),
        "-o",
        s(&with_id),
        "-k",
        s(&sk),
        "-K",
        s(&pk),
    ]);
    assert!(ok, "{err}");
    kiln_ok(&["verify", s(&with_id), "--key", s(&pk)]);
    assert_eq!(
        predicted(&theirs, &["--key", s(&pk)]),
        predicted(&digits().module, &[])
    );
    let e = kiln_err(&["verify", s(&theirs), "--key", s(&public)]);
    assert!(e.contains("signed by no trusted key"), "{e}");
}

/// The repository index as (name, version, state, reason) rows.
pub(crate) fn index(server: &Server) -> Vec<(String, String, String, String)> {
    let (status, body) = http(server.http, "POST", "/v2/repository/index", "{}");
    assert_eq!(status, 200, "{body}");
    json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (f("name"), f("version"), f("state"), f("reason"))
        })
        .collect()
}

/// The reason `name` is unavailable; panics if it is served.
pub(crate) fn refusal(rows: &[(String, String, String, String)], name: &str) -> String {
    let row = rows
        .iter()
        .find(|r| r.0 == name)
        .unwrap_or_else(|| panic!("{name} not in {rows:?}"));
    assert_eq!(row.2, "UNAVAILABLE", "{name} was served: {rows:?}");
    row.3.clone()
}

/// The digits scores of the first 5 held-out rows served as `name`, as bits.
pub(crate) fn served_bits(server: &Server, name: &str) -> Vec<u32> {
    let (status, body) = http(
        server.http,
        "POST",
        &format!("/v2/models/{name}/infer"),
        &digits_body(&test_rows(5)),
    );
    assert_eq!(status, 200, "{body}");
    json(&body)["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v.as_f64().unwrap() as f32).to_bits())
        .collect()
}

pub(crate) fn first_rows_bits(module: &Path) -> Vec<u32> {
    predicted(module, &[])
        .into_iter()
        .take(5)
        .flatten()
        .collect()
}

#[test]
fn serve_loads_only_signed_untampered_pinned_modules() {
    let dir = scratch();
    let d = dir.path();
    let (secret, public) = keygen(d, "signer");
    let keys = d.join("trusted");
    std::fs::create_dir(&keys).unwrap();
    std::fs::copy(&public, keys.join("signer.pub")).unwrap();
    let signed_path = d.join("signed.wasm");
    kiln_ok(&[
        "sign",
        s(&digits().module),
        "--key",
        s(&secret),
        "-o",
        s(&signed_path),
    ]);
    let signed = std::fs::read(&signed_path).unwrap();
    let unsigned = std::fs::read(&digits().module).unwrap();
    let [code, data, meta] = tamper_points(&signed).map(|(_, at)| flipped(&signed, at));
    let repo = repo_with(
        d,
        &[
            ("good/3/model.wasm", &signed),
            ("unsigned/1/model.wasm", &unsigned),
            ("code/1/model.wasm", &code),
            ("data/1/model.wasm", &data),
            ("meta/1/model.wasm", &meta),
            ("pinned/1/model.wasm", &signed),
            ("mispinned/1/model.wasm", &signed),
        ],
    );
    let digest = kiln::module::sha256_hex(&signed);
    let cfg = config(
        d,
        &format!(
            "[models.pinned]\nsha256 = {:?}\n[models.mispinned]\nsha256 = [{:?}]\n",
            digest.to_uppercase(),
            kiln::module::sha256_hex(&unsigned)
        ),
    );
    let server = Server::rest(&cfg, &[s(&repo), "--trusted-keys", s(&keys)]);
    let rows = index(&server);
    for (name, why) in [
        ("unsigned", "unsigned"),
        ("code", "tampered"),
        ("data", "tampered"),
        ("meta", "tampered"),
        ("mispinned", "matches no pinned digest"),
    ] {
        let reason = refusal(&rows, name);
        assert!(
            reason.contains(&format!("model `{name}` version 1 (")) && reason.contains(why),
            "{name}: {reason}"
        );
        // The log names the model, the version and why, like other load failures.
        server.wait_line(&[&format!("model `{name}` version 1"), why]);
    }
    // The good and the correctly pinned are served, with the unsigned module's bits.
    let want = first_rows_bits(&digits().module);
    assert_eq!(served_bits(&server, "good"), want);
    assert_eq!(served_bits(&server, "pinned"), want);
    drop(server);

    // Without trusted keys the unsigned module serves; a pin still holds.
    let server = Server::rest(&cfg, &[s(&repo)]);
    let rows = index(&server);
    assert!(
        rows.iter().any(|r| r.0 == "unsigned" && r.2 == "READY"),
        "{rows:?}"
    );
    assert!(refusal(&rows, "mispinned").contains("matches no pinned digest"));
    drop(server);

    // kiln.toml's `trusted_keys` is --trusted-keys.
    let in_toml = config(d, &format!("trusted_keys = {keys:?}\n"));
    let server = Server::rest(&in_toml, &[s(&repo)]);
    let rows = index(&server);
    assert!(refusal(&rows, "unsigned").contains("unsigned"), "{rows:?}");
    assert!(
        rows.iter().any(|r| r.0 == "good" && r.2 == "READY"),
        "{rows:?}"
    );
    drop(server);

    // A bad pin in kiln.toml is refused with its field.
    let bad = config(d, "[models.x]\nsha256 = \"abc\"\n");
    let out = Command::new(kiln_bin())
        .args([
            "serve",
            s(&repo),
            "--http",
            "127.0.0.1:0",
            "--no-grpc",
            "--config",
            s(&bad),
        ])
        .output()
        .unwrap();
    let e = check_clean_failure(out, &["serve"]);
    assert!(e.contains("models.x.sha256"), "{e}");
}
