//! Sealed model files (#17): `kiln keygen --seal`, `kiln seal | unseal`,
//! and `kiln serve --unseal-key-file` serving sealed files from memory and
//! refusing what does not unseal.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::serve::{Server, config, repo_with};
use crate::trust::{first_rows_bits, flipped, index, refusal, served_bits};

#[test]
fn sealed_files_round_trip_and_refuse_a_wrong_key_or_a_flipped_byte() {
    let dir = scratch();
    let d = dir.path();
    let (key, other) = (d.join("k.sealkey"), d.join("other.sealkey"));
    kiln_ok(&["keygen", "--seal", "-o", s(&key)]);
    kiln_ok(&["keygen", "--seal", "-o", s(&other)]);
    let sealed = d.join("digits.sealed");
    kiln_ok(&[
        "seal",
        s(&digits().module),
        "--key-file",
        s(&key),
        "-o",
        s(&sealed),
    ]);
    let plain = std::fs::read(&digits().module).unwrap();
    let bytes = std::fs::read(&sealed).unwrap();
    assert!(bytes.starts_with(b"KILNSEAL"));
    let has_meta = |b: &[u8]| b.windows(12).any(|w| w == b"model_sha256");
    assert!(
        has_meta(&plain) && !has_meta(&bytes),
        "the metadata is not readable sealed"
    );
    let back = d.join("back.wasm");
    kiln_ok(&["unseal", s(&sealed), "--key-file", s(&key), "-o", s(&back)]);
    assert_eq!(std::fs::read(&back).unwrap(), plain);

    let out = d.join("never.wasm");
    let e = kiln_err(&["unseal", s(&sealed), "--key-file", s(&other), "-o", s(&out)]);
    assert!(e.contains("wrong key"), "{e}");
    let flippedfile = d.join("flipped.sealed");
    std::fs::write(&flippedfile, flipped(&bytes, bytes.len() / 2)).unwrap();
    let e = kiln_err(&[
        "unseal",
        s(&flippedfile),
        "--key-file",
        s(&key),
        "-o",
        s(&out),
    ]);
    assert!(e.contains("changed"), "{e}");
    assert!(!out.exists(), "nothing is written on a refusal");
}

#[test]
fn serve_unseals_in_memory_and_refuses_what_does_not_unseal() {
    let dir = scratch();
    let d = dir.path();
    let secrets = d.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let (key, other) = (secrets.join("k.sealkey"), secrets.join("other.sealkey"));
    kiln_ok(&["keygen", "--seal", "-o", s(&key)]);
    kiln_ok(&["keygen", "--seal", "-o", s(&other)]);
    let seal = |with: &Path| {
        let out = d.join("sealed.tmp");
        kiln_ok(&[
            "seal",
            s(&digits().module),
            "--key-file",
            s(with),
            "-o",
            s(&out),
        ]);
        std::fs::read(&out).unwrap()
    };
    let good = seal(&key);
    let plain = std::fs::read(&digits().module).unwrap();
    let repo = repo_with(
        d,
        &[
            ("good/1/model.wasm", &good),
            ("wrongkey/1/model.wasm", &seal(&other)),
            ("flipped/1/model.wasm", &flipped(&good, good.len() - 5)),
            ("plain/1/model.wasm", &plain),
        ],
    );
    let cfg = config(d, "");
    let start = |extra: &[&str]| Server::rest(&cfg, &[&[s(&repo)][..], extra].concat());
    let server = start(&["--unseal-key-file", s(&key)]);
    let rows = index(&server);
    for (name, why) in [
        ("wrongkey", "cannot unseal"),
        ("flipped", "cannot unseal"),
        ("plain", "not sealed"),
    ] {
        let reason = refusal(&rows, name);
        assert!(
            reason.contains(&format!("model `{name}` version 1")) && reason.contains(why),
            "{name}: {reason}"
        );
    }
    assert_eq!(
        served_bits(&server, "good"),
        first_rows_bits(&digits().module)
    );
    drop(server);
    // Compiled code holds the model: with sealed files the cache stays off.
    let cache = d.join("cache");
    assert!(
        !cache.exists() || std::fs::read_dir(&cache).unwrap().next().is_none(),
        "the compile cache was written"
    );

    // Without the key, a sealed file is refused and says what is missing.
    let server = start(&[]);
    assert!(refusal(&index(&server), "good").contains("--unseal-key-file"));
    drop(server);

    // The key may not live in the repository.
    std::fs::copy(&key, repo.join("k.sealkey")).unwrap();
    let out = Command::new(kiln_bin())
        .args([
            "serve",
            s(&repo),
            "--http",
            "127.0.0.1:0",
            "--no-grpc",
            "--config",
            s(&cfg),
        ])
        .args(["--unseal-key-file", s(&repo.join("k.sealkey"))])
        .output()
        .unwrap();
    let e = check_clean_failure(out, &["serve"]);
    assert!(e.contains("inside the model repository"), "{e}");
}
