//! Certificates for the TLS tests, made with rcgen: a CA, a server
//! certificate for `localhost` and `127.0.0.1`, a client certificate, and a
//! second CA with its own client (the "wrong CA"). Shared by the e2e tests
//! and the example `test_certs` (tests/python/test_tls.py runs it).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files `write` made, in `dir`.
pub(crate) struct Certs {
    pub(crate) ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    /// A second server certificate from the same CA (another common name),
    /// for reloads.
    pub(crate) server2_cert: PathBuf,
    pub(crate) server2_key: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
    pub(crate) other_ca: PathBuf,
    pub(crate) other_client_cert: PathBuf,
    pub(crate) other_client_key: PathBuf,
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str, pem: &Path) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(pem, cert.pem()).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate: a server's (for `localhost` and 127.0.0.1) or a
    /// client's.
    fn leaf(&self, name: &str, server: bool, cert: &Path, key_file: &Path) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = if server {
            vec!["localhost".into(), "127.0.0.1".into()]
        } else {
            vec![]
        };
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let signed = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(cert, signed.pem()).unwrap();
        std::fs::write(key_file, key.serialize_pem()).unwrap();
    }
}

/// Writes a fresh set of certificates into `dir`.
pub(crate) fn write(dir: &Path) -> Certs {
    std::fs::create_dir_all(dir).unwrap();
    let p = |n: &str| dir.join(n);
    let c = Certs {
        ca: p("ca.pem"),
        server_cert: p("server.pem"),
        server_key: p("server.key"),
        server2_cert: p("server2.pem"),
        server2_key: p("server2.key"),
        client_cert: p("client.pem"),
        client_key: p("client.key"),
        other_ca: p("other-ca.pem"),
        other_client_cert: p("other-client.pem"),
        other_client_key: p("other-client.key"),
    };
    let ca = Ca::new("kiln test CA", &c.ca);
    ca.leaf("kiln test server", true, &c.server_cert, &c.server_key);
    ca.leaf("kiln test server 2", true, &c.server2_cert, &c.server2_key);
    ca.leaf("kiln test client", false, &c.client_cert, &c.client_key);
    let other = Ca::new("another CA", &c.other_ca);
    other.leaf(
        "a client of another CA",
        false,
        &c.other_client_cert,
        &c.other_client_key,
    );
    c
}
