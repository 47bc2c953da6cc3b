//! `kiln serve`: the model server (see `kiln::serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use kiln::serve::{self, Config};

/// Serve model modules over the KServe v2 protocol (REST and gRPC).
///
/// REPO holds `NAME/VERSION/model.wasm` (Triton's layout; an optional
/// `model.safetensors` beside it can be downloaded; `model.keras`,
/// `model.h5` or `model.onnx` in place of `model.wasm` is imported and
/// built on load, as `kiln build` would) or flat `NAME.wasm`
/// files (version 1). Without REPO, the built-in digits classifier is served
/// as `digits`. With `--model_name NAME`, REPO may instead hold one model's
/// files (`model.wasm`, `VERSION/model.wasm`), served as NAME: KServe's
/// container contract, whose `--model_dir`, `--http_port` and `--grpc_port`
/// are accepted too (docs/deploy.md). Every request runs in a fresh sandboxed instance with a
/// memory cap and a deadline; settings and API keys live in kiln.toml (see
/// docs/serving.md). Without API keys the server listens on loopback only,
/// unless `--allow-unauthenticated` (behind a gateway that authenticates).
///
/// The first line on stdout is `kiln serve: http=ADDR grpc=ADDR` (useful
/// with port 0). SIGTERM or Ctrl-C: readiness turns 503, in-flight requests
/// finish, then kiln exits.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln serve\n  \
    kiln serve models/ --config kiln.toml --watch\n  \
    kiln serve models/ --trusted-keys keys/ --unseal-key-file /run/secrets/kiln.sealkey\n  \
    kiln serve models/ --config kiln.toml --http 0.0.0.0:8443 --tls-cert server.pem --tls-key server.key\n  \
    curl localhost:8000/v2/models/digits")]
pub(super) struct Args {
    /// Model repository directory (default: the built-in demo model).
    repo: Option<PathBuf>,
    /// REST address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    http: SocketAddr,
    /// gRPC address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8001")]
    grpc: SocketAddr,
    /// REPO, as KServe passes it.
    #[arg(long = "model_dir", value_name = "DIR", conflicts_with = "repo")]
    model_dir: Option<PathBuf>,
    /// Serve the one model REPO holds under NAME (a repository of several
    /// must have a model NAME).
    #[arg(long = "model_name", value_name = "NAME")]
    model_name: Option<String>,
    /// `--http 0.0.0.0:PORT` (KServe).
    #[arg(long = "http_port", value_name = "PORT", conflicts_with = "http")]
    http_port: Option<u16>,
    /// `--grpc 0.0.0.0:PORT` (KServe).
    #[arg(long = "grpc_port", value_name = "PORT", conflicts_with = "grpc")]
    grpc_port: Option<u16>,
    /// Serve no gRPC.
    #[arg(long, conflicts_with = "grpc")]
    no_grpc: bool,
    /// Settings, per-model limits and API keys (TOML; see docs/serving.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Poll REPO and load, reload or unload models as their files change.
    #[arg(long)]
    watch: bool,
    /// Listen on the addresses given even without API keys (in a container
    /// behind an authenticating gateway; same as `allow_unauthenticated` in
    /// kiln.toml's [server]).
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Load only modules signed by a key in DIR (its `*.pub` files, from
    /// `kiln keygen`): an unsigned module, one changed after signing, or
    /// one signed by another key is refused at load, with the model, the
    /// version and why in the log and the repository index (same as
    /// `trusted_keys` in kiln.toml's [server]).
    #[arg(long, value_name = "DIR")]
    trusted_keys: Option<PathBuf>,
    /// Repository files are sealed (`kiln seal`) under the key in K: they
    /// are unsealed in memory only, and a file that is not sealed, or does
    /// not unseal with K, is refused whole. K must lie outside the
    /// repository (same as `unseal_key_file` in kiln.toml's [server]).
    #[arg(long, value_name = "K")]
    unseal_key_file: Option<PathBuf>,
    /// Serve REST and gRPC over TLS with this PEM certificate chain (leaf
    /// first) and `--tls-key`. On SIGHUP, or when the files change, they are
    /// read again: new connections get the new certificate; a file that
    /// does not load leaves the old one in use (the log says why). Same as
    /// `tls_cert` in kiln.toml's [server].
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert` (`tls_key`).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: clients must present a certificate signed by a CA in
    /// this PEM file; others are refused during the handshake
    /// (`tls_client_ca`).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// With API keys and a non-loopback address, serve without TLS anyway
    /// (keys then travel in cleartext; `insecure_no_tls`). Without this,
    /// such a server refuses to start.
    #[arg(long)]
    insecure_no_tls: bool,
    /// Serve the files under DIR at `/` (index.html for `/`) instead of the
    /// landing page.
    #[arg(long = "static", value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// Log lines as text, or as one JSON object per line (for log
    /// collectors). Every request gets an access line; see docs/serving.md.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormatArg,
    /// Which lines to log: a level (`error`, `warn`, `info`, `debug`) or
    /// filter directives (`info,kiln::access=off` drops the access lines).
    /// Default: the environment variable KILN_LOG, else `info`.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let format = match a.log_format {
        LogFormatArg::Text => serve::LogFormat::Text,
        LogFormatArg::Json => serve::LogFormat::Json,
    };
    let _log = serve::init_log(format, a.log_level.as_deref())?;
    let mut config = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    config.server.allow_unauthenticated |= a.allow_unauthenticated;
    if a.trusted_keys.is_some() {
        config.server.trusted_keys = a.trusted_keys;
    }
    if a.unseal_key_file.is_some() {
        config.server.unseal_key_file = a.unseal_key_file;
    }
    config.server.insecure_no_tls |= a.insecure_no_tls;
    if a.tls_cert.is_some() {
        config.server.tls_cert = a.tls_cert;
        config.server.tls_key = a.tls_key;
    }
    if a.tls_client_ca.is_some() {
        config.server.tls_client_ca = a.tls_client_ca;
    }
    if let Some(d) = &a.static_dir {
        anyhow::ensure!(d.is_dir(), "--static {}: not a directory", d.display());
    }
    let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
    let repo = a.repo.or(a.model_dir);
    anyhow::ensure!(
        repo.is_some() || (a.model_name.is_none() && !a.watch),
        "--model_name and --watch need a model directory (REPO or --model_dir)"
    );
    let opts = serve::Options {
        repo,
        model_name: a.model_name,
        http: a.http_port.map_or(a.http, any),
        grpc: (!a.no_grpc).then_some(a.grpc_port.map_or(a.grpc, any)),
        config,
        watch: a.watch,
        static_dir: a.static_dir,
        config_path: a.config,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(serve::run(opts));
    // A compile still running must not hold the exit past the grace.
    runtime.shutdown_background();
    served?;
    Ok(())
}
