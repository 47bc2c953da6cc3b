//! `kiln serve` limits that need a real process: oversized bodies, slow
//! clients, connections counted on both listeners, and an exit that does
//! not wait for a compile still running (issue #16).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::serve::{Server, config, repo_with};
use crate::common::*;

/// HTTP/2's client preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// The first frame header (9 bytes) the server sends, within `wait`.
fn first_frame(s: &mut TcpStream, wait: Duration) -> std::io::Result<[u8; 9]> {
    s.set_read_timeout(Some(wait))?;
    let mut header = [0; 9];
    s.read_exact(&mut header)?;
    Ok(header)
}

/// At most `max_connections` gRPC connections are served at once: a third
/// gets no HTTP/2 SETTINGS from the server until one of two open ones
/// closes.
#[test]
fn grpc_connections_are_bounded() {
    let dir = scratch();
    let cfg = config(dir.path(), "max_connections = 2\n");
    let server = Server::start(&[
        "--http",
        "127.0.0.1:0",
        "--grpc",
        "127.0.0.1:0",
        "--config",
        s(&cfg),
    ]);
    let grpc = server.grpc.expect("a gRPC address");
    let open = || {
        let mut s = TcpStream::connect(grpc).unwrap();
        s.write_all(PREFACE).unwrap();
        s
    };
    let settings =
        |s: &mut TcpStream, wait| first_frame(s, Duration::from_millis(wait)).map(|h| h[3]);
    let (mut first, mut second) = (open(), open());
    assert_eq!(settings(&mut first, 5000).unwrap(), 4, "SETTINGS");
    assert_eq!(settings(&mut second, 5000).unwrap(), 4, "SETTINGS");
    let mut third = open();
    assert!(
        settings(&mut third, 300).is_err(),
        "a third gRPC connection was served past max_connections = 2"
    );
    drop(first);
    assert_eq!(
        settings(&mut third, 5000).unwrap(),
        4,
        "SETTINGS once a slot is free"
    );
}

/// A module of `funcs` functions of 4,000 instructions each (no exports):
/// Cranelift takes seconds per megabyte of it.
fn slow_to_compile(funcs: u32) -> Vec<u8> {
    use wasm_encoder::{CodeSection, Function, FunctionSection, Instruction, TypeSection, ValType};
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], []);
    let (mut funcs_section, mut code) = (FunctionSection::new(), CodeSection::new());
    let mut f = Function::new([]);
    for _ in 0..1000 {
        f.instruction(&Instruction::LocalGet(0))
            .instruction(&Instruction::I32Const(1))
            .instruction(&Instruction::I32Add)
            .instruction(&Instruction::LocalSet(0));
    }
    f.instruction(&Instruction::End);
    for _ in 0..funcs {
        funcs_section.function(0);
        code.function(&f);
    }
    let mut module = wasm_encoder::Module::new();
    module
        .section(&types)
        .section(&funcs_section)
        .section(&code);
    module.finish()
}

/// A compile given up on (`compile_timeout_ms`) keeps its thread, but the
/// process does not wait for it: after SIGTERM it exits 0 within the drain
/// and the grace, and the compile never finished (nothing reached the
/// compile cache, which a finished compile writes).
#[test]
fn exit_does_not_wait_for_a_compile_past_its_timeout() {
    let dir = scratch();
    // 14 MB of code: well over a minute of compiling on this machine.
    let repo = repo_with(dir.path(), &[("big.wasm", &slow_to_compile(2000))]);
    let cfg = config(
        dir.path(),
        "drain_ms = 0\nshutdown_grace_ms = 500\n[defaults]\ncompile_timeout_ms = 300\n",
    );
    let mut server = Server::rest(&cfg, &[s(&repo)]);
    server.wait_stderr("compiling took longer than");
    let signalled = Instant::now();
    let status = server.terminate();
    let took = signalled.elapsed();
    assert!(status.success(), "{}", server.stderr());
    assert!(
        took < Duration::from_secs(3),
        "exit took {took:?} after SIGTERM with a compile running: {}",
        server.stderr()
    );
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert!(
        cached.is_empty(),
        "the compile finished before the exit ({cached:?}): the module is too small to test this"
    );
}

/// A SIGTERM sent the moment the address line appears drains and exits 0:
/// the signal handlers are in place before the line is printed (before,
/// such a signal could kill the process with the default action).
#[test]
fn sigterm_right_after_start_drains() {
    let dir = scratch();
    let cfg = config(dir.path(), "drain_ms = 300\n");
    for _ in 0..5 {
        let mut server = Server::rest(&cfg, &[]);
        let status = server.terminate();
        assert!(status.success(), "{status:?}: {}", server.stderr());
    }
}

/// A body over the cap gets its 413 even from a client that sends the
/// whole body before reading (the server reads and drops it rather than
/// closing the connection under the client); a client that asks
/// `Expect: 100-continue` gets the 413 without sending the body.
#[test]
fn an_oversized_body_is_answered_413() {
    let dir = scratch();
    let cfg = config(dir.path(), "");
    let server = Server::rest(&cfg, &[]);
    let len = (17 << 20) as usize;
    let head = |extra: &str| {
        format!(
            "POST /v2/models/digits/infer HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\n{extra}\r\n"
        )
    };
    let read_status = |s: &mut TcpStream| {
        let mut reply = [0; 12];
        s.read_exact(&mut reply).expect("a response");
        String::from_utf8_lossy(&reply).into_owned()
    };
    let mut s = TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head("").as_bytes()).unwrap();
    s.write_all(&vec![b' '; len])
        .expect("the whole body is read");
    assert_eq!(read_status(&mut s), "HTTP/1.1 413");

    let mut s = TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head("Expect: 100-continue\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_status(&mut s), "HTTP/1.1 413");
}

/// Slow clients cannot pin the server: a client gets `header_timeout_ms`
/// to send its headers and `body_timeout_ms` its body (408), and at most
/// `max_connections` connections are served at once (the next waits).
#[test]
fn slow_clients_are_bounded() {
    let dir = scratch();
    let cfg = config(
        dir.path(),
        "header_timeout_ms = 1000\nbody_timeout_ms = 300\nmax_connections = 2\n",
    );
    let server = Server::rest(&cfg, &[]);
    let open = || {
        let s = TcpStream::connect(server.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    // Half a request line, then nothing: the connection is closed.
    let mut slow = open();
    slow.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost:")
        .unwrap();
    let mut rest = Vec::new();
    assert!(
        slow.read_to_end(&mut rest).is_ok(),
        "still open after the header timeout"
    );
    // Half a body: 408.
    let mut slow = open();
    slow.write_all(
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: kiln\r\nContent-Length: 100\r\n\r\n{\"in",
    )
    .unwrap();
    let mut reply = [0; 12];
    slow.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"HTTP/1.1 408");
    drop(slow);
    // Two idle connections hold both slots: a third is not served until
    // one closes.
    std::thread::sleep(Duration::from_millis(100));
    let (first, _second) = (open(), open());
    std::thread::sleep(Duration::from_millis(100));
    let mut third = open();
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    third
        .write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: kiln\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = [0; 12];
    assert!(
        third.read_exact(&mut reply).is_err(),
        "served past max_connections"
    );
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    third.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"HTTP/1.1 200");
}
