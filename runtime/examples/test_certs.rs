//! Writes the TLS tests' certificates into a directory (tests/e2e/certs.rs):
//! `cargo run -p kiln --example test_certs -- DIR`. tests/python/test_tls.py
//! runs it (the Python side has no certificate library).

#[path = "../../tests/e2e/certs.rs"]
mod certs;

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .expect("usage: test_certs DIR (writes ca.pem, server.pem, server.key, ...)");
    certs::write(std::path::Path::new(&dir));
}
