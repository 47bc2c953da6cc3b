//! `kiln serve`: the model server (see `kiln::serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use kiln::serve::{self, config::Config};

/// Serve model modules over the KServe v2 protocol (REST and gRPC).
///
/// REPO holds `NAME/VERSION/model.wasm` (Triton's layout; an optional
/// `model.safetensors` beside it can be downloaded) or flat `NAME.wasm`
/// files (version 1). Without REPO, the built-in digits classifier is served
/// as `digits`. Every request runs in a fresh sandboxed instance with a
/// memory cap and a deadline; settings and API keys live in kiln.toml (see
/// docs/serving.md). Without API keys the server listens on loopback only.
///
/// The first line on stdout is `kiln serve: http=ADDR grpc=ADDR` (useful
/// with port 0). SIGTERM or Ctrl-C: readiness turns 503, in-flight requests
/// finish, then kiln exits.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln serve\n  \
    kiln serve models/ --config kiln.toml --watch\n  \
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
    /// Serve no gRPC.
    #[arg(long, conflicts_with = "grpc")]
    no_grpc: bool,
    /// Settings, per-model limits and API keys (TOML; see docs/serving.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Poll REPO and load, reload or unload models as their files change.
    #[arg(long, requires = "repo")]
    watch: bool,
    /// Serve the files under DIR at `/` (index.html for `/`) instead of the
    /// landing page.
    #[arg(long = "static", value_name = "DIR")]
    static_dir: Option<PathBuf>,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let config = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(d) = &a.static_dir {
        anyhow::ensure!(d.is_dir(), "--static {}: not a directory", d.display());
    }
    let opts = serve::Options {
        repo: a.repo,
        http: a.http,
        grpc: (!a.no_grpc).then_some(a.grpc),
        config,
        watch: a.watch,
        static_dir: a.static_dir,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve::run(opts))?;
    Ok(())
}
