//! `kiln serve` over TLS (`--tls-cert`, `--tls-key`, `--tls-client-ca`),
//! seen by a rustls client: the refusal to send keys in cleartext beyond
//! loopback, mutual TLS, and certificates reloaded on SIGHUP. (The stock
//! tritonclient over TLS and mTLS, both protocols: tests/python/test_tls.py.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::certs::{self, Certs};
use crate::common::*;
use crate::serve::{Server, config};

const KEY: &str = "tls-test-key-0123456789";

fn keys_config(dir: &Path) -> std::path::PathBuf {
    config(
        dir,
        &format!("[[keys]]\nkey = \"{KEY}\"\nmodels = [\"*\"]\n"),
    )
}

/// A client trusting `ca`, presenting `client` (certificate, key) if given.
fn client_config(ca: &Path, client: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)] // kiln serves with ring's provider too (serve/tls.rs)
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    })
}

/// One HTTPS GET of `path` with the API key: the status, or the error
/// (handshake refused, connection closed), and the server's certificate.
fn https_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(u16, CertificateDer<'static>), String> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let cert = tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    Ok((status, cert))
}

fn der(pem: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(pem).unwrap()
}

fn tls_args<'a>(c: &'a Certs, cfg: &'a Path) -> Vec<&'a str> {
    vec![
        "--http",
        "127.0.0.1:0",
        "--grpc",
        "127.0.0.1:0",
        "--config",
        s(cfg),
        "--tls-cert",
        s(&c.server_cert),
        "--tls-key",
        s(&c.server_key),
    ]
}

#[test]
fn keys_beyond_loopback_need_tls_or_insecure_no_tls() {
    let dir = scratch();
    let cfg = keys_config(dir.path());
    let c = certs::write(&dir.path().join("certs"));
    for http in ["0.0.0.0:0", "127.0.0.1:0"] {
        // REST on loopback, gRPC beyond it: refused too.
        let grpc = if http.starts_with("127") {
            "0.0.0.0:0"
        } else {
            "127.0.0.1:0"
        };
        let out = kiln(&["serve", "--http", http, "--grpc", grpc, "--config", s(&cfg)])
            .output()
            .unwrap();
        let err = check_clean_failure(out, &["cleartext", "0.0.0.0:0", "--tls-cert"]);
        assert!(err.contains("--insecure-no-tls"), "{err}");
    }
    // Loopback only: no TLS needed (a proxy on the host may terminate it).
    let server = Server::rest(&cfg, &[]);
    drop(server);
    let server = Server::start(&[
        "--http",
        "0.0.0.0:0",
        "--no-grpc",
        "--config",
        s(&cfg),
        "--insecure-no-tls",
    ]);
    server.wait_stderr("travel in cleartext");
    drop(server);
    // With TLS, the same address serves HTTPS.
    let mut args = tls_args(&c, &cfg);
    args[1] = "0.0.0.0:0";
    let server = Server::start(&args);
    let addr = SocketAddr::from(([127, 0, 0, 1], server.http.port()));
    let (code, cert) = https_get(addr, client_config(&c.ca, None), "/v2/models/digits").unwrap();
    assert_eq!(code, 200);
    assert_eq!(cert, der(&c.server_cert));
    // A cleartext request on the TLS port gets no HTTP answer.
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = tcp.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    assert!(!raw.starts_with(b"HTTP/1.1"), "{raw:?}");
}

#[test]
fn bad_tls_files_are_refused_at_start_naming_the_file() {
    let dir = scratch();
    let cfg = keys_config(dir.path());
    let c = certs::write(&dir.path().join("certs"));
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let run = |cert: &Path, key: &Path| {
        kiln(&[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--no-grpc",
            "--config",
            s(&cfg),
            "--tls-cert",
            s(cert),
            "--tls-key",
            s(key),
        ])
        .output()
        .unwrap()
    };
    check_clean_failure(run(&junk, &c.server_key), &["--tls-cert", s(&junk)]);
    check_clean_failure(run(&c.server_cert, &junk), &["--tls-key", s(&junk)]);
    // A key that is not the certificate's.
    check_clean_failure(run(&c.server_cert, &c.client_key), &["--tls-key"]);
    let out = kiln(&["serve", "--tls-cert", s(&c.server_cert)])
        .output()
        .unwrap();
    check_clean_failure(out, &["--tls-key"]);
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate_of_the_ca() {
    let dir = scratch();
    let cfg = keys_config(dir.path());
    let c = certs::write(&dir.path().join("certs"));
    let mut args = tls_args(&c, &cfg);
    args.extend(["--tls-client-ca", s(&c.ca)]);
    let server = Server::start(&args);
    let get = |client| {
        https_get(
            server.http,
            client_config(&c.ca, client),
            "/v2/health/ready",
        )
    };
    assert_eq!(get(Some((&c.client_cert, &c.client_key))).unwrap().0, 200);
    for (what, client) in [
        ("no certificate", None),
        (
            "another CA's",
            Some((c.other_client_cert.as_path(), c.other_client_key.as_path())),
        ),
    ] {
        // Refused in the handshake: no HTTP answer, whether the client
        // reads the server's alert or, having already written its request,
        // a reset connection.
        let err = get(client).expect_err(what);
        assert!(!err.contains("HTTP/"), "{what}: {err}");
    }
    // Still serving after the refusals.
    assert_eq!(get(Some((&c.client_cert, &c.client_key))).unwrap().0, 200);
}

#[test]
fn sighup_reloads_the_certificate_and_a_bad_one_keeps_the_old() {
    let dir = scratch();
    let cfg = keys_config(dir.path());
    let c = certs::write(&dir.path().join("certs"));
    // The served files: copies, replaced during the test.
    let (cert, key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
    std::fs::copy(&c.server_cert, &cert).unwrap();
    std::fs::copy(&c.server_key, &key).unwrap();
    let server = Server::rest(&cfg, &["--tls-cert", s(&cert), "--tls-key", s(&key)]);
    let client = client_config(&c.ca, None);
    let served = || https_get(server.http, client.clone(), "/v2/health/live").unwrap();
    assert_eq!(served().1, der(&c.server_cert));
    // An open connection, kept across the reload.
    let mut kept = rustls::StreamOwned::new(
        rustls::ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap())
            .unwrap(),
        TcpStream::connect(server.http).unwrap(),
    );
    let ask = |s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>| {
        write!(s, "GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(ask(&mut kept).starts_with("HTTP/1.1 200"));

    let loaded = |server: &Server| {
        server
            .stderr()
            .matches("loaded; new connections use it")
            .count()
    };
    let before = loaded(&server);
    // Replace the pair through renames (atomic: no half-written file).
    let tmp = dir.path().join("tmp");
    std::fs::copy(&c.server2_key, &tmp).unwrap();
    std::fs::rename(&tmp, &key).unwrap();
    std::fs::copy(&c.server2_cert, &tmp).unwrap();
    std::fs::rename(&tmp, &cert).unwrap();
    server.signal_hup();
    let start = std::time::Instant::now();
    while served().1 != der(&c.server2_cert) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The log line may trail the reload by the log's flush period.
    while loaded(&server) <= before {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The connection opened before the reload still works.
    assert!(ask(&mut kept).starts_with("HTTP/1.1 200"));

    // A broken certificate: the log says why, the new one keeps serving.
    std::fs::write(
        &tmp,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::rename(&tmp, &cert).unwrap();
    server.signal_hup();
    server.wait_stderr("keeping the TLS certificate in use");
    assert!(server.stderr().contains(s(&cert)), "{}", server.stderr());
    assert_eq!(served().1, der(&c.server2_cert));
    assert!(ask(&mut kept).starts_with("HTTP/1.1 200"));
}
