//! TLS and mutual TLS for both listeners (`kiln serve --tls-cert`), with
//! rustls on ring. The certificate chain, its key and the client CA are PEM
//! files read at start-up and again on SIGHUP ([`Tls::reload`]): new
//! connections get the new files, open ones keep theirs, and files that do
//! not make a valid configuration leave the old one serving (and say why).
//! With a client CA, a client that presents no certificate, or one no CA
//! of that file signed, is refused during the handshake.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the TLS files were refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{what} {path}: holds no PEM certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("--tls-cert {cert} with --tls-key {key}: {reason}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("--tls-client-ca {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// Where the PEM files are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates client certificates must chain to (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Which listener: REST offers HTTP/2 and HTTP/1.1 by ALPN, gRPC only h2.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Protocol {
    Rest,
    Grpc,
}

/// The current TLS configurations of both listeners.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<(Arc<ServerConfig>, Arc<ServerConfig>)>,
}

impl Tls {
    /// Reads the files; an error names the file and what is wrong.
    pub fn new(files: TlsFiles) -> Result<Tls, TlsError> {
        let configs = build(&files)?;
        Ok(Tls {
            files,
            current: RwLock::new(configs),
        })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the files again; on success new connections use them, on
    /// error the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let configs = build(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = configs;
        Ok(())
    }

    /// The acceptor for a connection accepted now.
    pub(crate) fn acceptor(&self, protocol: Protocol) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        TlsAcceptor::from(match protocol {
            Protocol::Rest => current.0.clone(),
            Protocol::Grpc => current.1.clone(),
        })
    }
}

/// The REST and the gRPC configuration from `files`.
fn build(files: &TlsFiles) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>), TlsError> {
    // rustls 0.23.48 deprecates ring's provider for lacking post-quantum key
    // exchange; aws-lc-rs, which has it, needs cmake and a C build. X25519
    // and the NIST curves remain (classical security).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.cert, "--tls-cert")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
        what: "--tls-key",
        path: files.key.clone(),
        reason: pem_reason(e, "private key"),
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: e.to_string(),
        })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(path, "--tls-client-ca")? {
                roots.add(cert).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // Checks that the key is the certificate's.
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: e.to_string(),
        })?;
    let mut rest = config.clone();
    rest.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut grpc = config;
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(rest), Arc::new(grpc)))
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::File {
            what,
            path: path.into(),
            reason: pem_reason(e, "certificate"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.into(),
        });
    }
    Ok(certs)
}

fn pem_reason(e: rustls_pki_types::pem::Error, wanted: &str) -> String {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!("holds no PEM {wanted}"),
        rustls_pki_types::pem::Error::Io(e) => e.to_string(),
        e => format!("not valid PEM: {e:?}"),
    }
}
