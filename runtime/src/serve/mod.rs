//! `kiln serve`: many sandboxed model modules behind the KServe v2 protocol,
//! over REST (`router`) and gRPC (`grpc`).
//!
//! The pieces: `config` (kiln.toml), [`crate::registry`] (models, versions,
//! hot swap, batching), `auth` (API keys), `metrics` (Prometheus), `v2` (the
//! protocol: decoding, checks and encoding shared by both transports),
//! `state` (what every request goes through), `error` (statuses), `demo`
//! (the built-in model), `page` (the landing page), `kserve` (what
//! KServe's `/mnt/models` holds) and `log` (request ids and access lines). [`run`] wires them:
//! it loads the models, binds the listeners, polls the repository in poll
//! mode (`--watch`), and on SIGTERM or Ctrl-C turns readiness to 503, keeps serving
//! for `drain_ms`, then closes the listeners, lets in-flight requests finish
//! (at most `shutdown_grace_ms`) and returns. `tls` serves both listeners
//! over TLS; on SIGHUP, or when kiln.toml, a TLS file or a trust key
//! changes, the TLS files, the API keys, the trusted keys and the unseal key
//! are read again (`reload`), without closing any connection.

mod auth;
mod config;
mod demo;
mod error;
mod grpc;
mod kserve;
mod listen;
mod log;
mod metrics;
mod page;
mod router;
mod state;
mod tls;
mod v2;

#[cfg(test)]
mod tests;

pub use auth::{Auth, Scope};
pub use config::{Config, ConfigError, KeyConfig, ModelControl, ServerConfig};
pub use demo::{DEMO_MODEL, DEMO_NAME, builtin};
pub use error::ApiError;
pub use grpc::{Gate, Grpc};
pub use log::{
    AccessLog, AccessLogLayer, LOG_ENV, LogError, LogFormat, LogGuard, REQUEST_ID, Transport,
    init as init_log,
};
pub use metrics::Metrics;
pub use router::router;
pub use state::AppState;
pub use tls::{Tls, TlsError, TlsFiles};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::registry::{LoadTrust, Registry, RegistryError, Source};
use crate::sandbox::{EngineOptions, Sandbox, SandboxError};
use crate::trust::{SealKey, TrustedKeys};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("building the demo model: {0}")]
    Demo(String),
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    #[error(
        "the unseal key {0} lies inside the model repository; keep it elsewhere (a secret mount), or sealing protects nothing"
    )]
    UnsealKeyInRepo(PathBuf),
    #[error("--model_name `{name}`: {reason}")]
    ModelName { name: String, reason: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(
        "refusing to send API keys in cleartext: {addr} is not a loopback address and TLS is off. \
         Give --tls-cert PEM --tls-key PEM (or tls_cert and tls_key in kiln.toml's [server]), \
         listen on loopback behind a proxy that terminates TLS, or pass --insecure-no-tls \
         (insecure_no_tls = true) to serve in cleartext anyway"
    )]
    NeedsTls { addr: SocketAddr },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model repository; `None` serves the built-in demo model.
    pub repo: Option<PathBuf>,
    /// With `repo`: serve the one model `repo` holds under this name, or
    /// check that the repository has it (KServe's `--model_name`).
    pub model_name: Option<String>,
    pub http: SocketAddr,
    /// gRPC address; `None` serves no gRPC.
    pub grpc: Option<SocketAddr>,
    pub config: Config,
    pub watch: bool,
    pub static_dir: Option<PathBuf>,
    /// Where `config` came from: read again on SIGHUP or when it changes,
    /// for new API keys.
    pub config_path: Option<PathBuf>,
}

/// Builds the sandbox, registry and state, and loads every model. Models
/// that fail to load are reported on stderr and left unavailable.
pub async fn prepare(opts: &Options) -> Result<Arc<AppState>, ServeError> {
    let config = &opts.config;
    let sandbox = Arc::new(Sandbox::with_options(
        config.defaults.limits(),
        EngineOptions {
            pool_slots: Some(config.server.instances),
            max_memory_bytes: config.model_config().max_memory_bytes(),
            // Compiled code holds the module's data segment, the model:
            // with sealed files, nothing of it goes to disk.
            cache_dir: config
                .cache_dir()
                .filter(|_| config.server.unseal_key_file.is_none()),
            keep_resident: None,
        },
    )?);
    let source = match (&opts.repo, &opts.model_name) {
        (Some(dir), _) if !dir.is_dir() => return Err(ServeError::NotADirectory(dir.clone())),
        (Some(dir), None) => Source::Dir(dir.clone()),
        (Some(dir), Some(name)) => kserve::source(dir, name)?,
        (None, _) => Source::Builtin(vec![demo::builtin().map_err(ServeError::Demo)?]),
    };
    let metrics = Arc::new(Metrics::default());
    let registry = Arc::new(
        Registry::new(
            sandbox,
            config.model_config(),
            source,
            metrics.models.clone(),
        )
        .with_trust(load_trust(config, opts.repo.as_deref())?),
    );
    for (name, result) in registry.load_all().await? {
        match result {
            Ok(()) => {
                for v in registry.loaded(&name) {
                    let how = if v.from_cache {
                        "from the compile cache"
                    } else {
                        "compiled"
                    };
                    tracing::info!("loaded model `{name}` version {} ({how})", v.version);
                }
            }
            Err(e) => tracing::error!("{e}"),
        }
    }
    Ok(Arc::new(AppState {
        registry,
        metrics,
        auth: Auth::new(&config.keys),
        draining: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        max_body: config.server.max_body_mib << 20,
        body_timeout: Duration::from_millis(config.server.body_timeout_ms),
        model_control: if opts.watch {
            ModelControl::Poll
        } else {
            config.server.model_control
        },
        request_timeout: Duration::from_millis(config.server.request_timeout_ms),
        static_dir: opts.static_dir.clone(),
        http_addr: OnceLock::new(),
        grpc_addr: OnceLock::new(),
    }))
}

/// The keys of `[server]`'s `trusted_keys` and `unseal_key_file` (which
/// `--trusted-keys` and `--unseal-key-file` set), read at start-up and on
/// each reload.
fn load_trust(config: &Config, repo: Option<&Path>) -> Result<LoadTrust, ServeError> {
    let server = &config.server;
    let keys = match &server.trusted_keys {
        Some(dir) => {
            let keys = TrustedKeys::from_dir(dir)?;
            let names: Vec<String> = keys
                .sources()
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            tracing::info!(
                "modules must be signed by a trusted key: {}",
                names.join(", ")
            );
            Some(keys)
        }
        None => None,
    };
    let unseal = match &server.unseal_key_file {
        Some(path) => {
            let inside = |p: &Path| std::fs::canonicalize(p).ok();
            if let (Some(key), Some(repo)) = (inside(path), repo.and_then(inside))
                && key.starts_with(&repo)
            {
                return Err(ServeError::UnsealKeyInRepo(path.clone()));
            }
            let key = SealKey::read(path)?;
            tracing::info!(
                "repository files are sealed: unsealing in memory; the compile cache is off"
            );
            Some(key)
        }
        None => None,
    };
    Ok(LoadTrust { keys, unseal })
}

/// Concurrent requests on one gRPC connection.
const MAX_GRPC_STREAMS: u32 = 256;

/// Without API keys, only loopback addresses are served.
fn loopback_only(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_loopback() {
        addr
    } else {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    }
}

/// Runs the server until SIGTERM or Ctrl-C. Prints one line
/// `kiln serve: http=ADDR grpc=ADDR` on stdout once both listen.
pub async fn run(opts: Options) -> Result<(), ServeError> {
    // TLS first: a server that may not start fails before loading models.
    let server = &opts.config.server;
    let tls = match (&server.tls_cert, &server.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = Tls::new(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: server.tls_client_ca.clone(),
            })?;
            Some(Arc::new(tls))
        }
        _ => None,
    };
    if tls.is_none() && !opts.config.keys.is_empty() {
        let exposed = std::iter::once(opts.http)
            .chain(opts.grpc)
            .find(|a| !a.ip().is_loopback());
        match exposed {
            Some(addr) if !server.insecure_no_tls => return Err(ServeError::NeedsTls { addr }),
            Some(addr) => tracing::warn!(
                "--insecure-no-tls: API keys travel in cleartext to {addr}; \
                 anyone on the path can read and reuse them"
            ),
            None => {}
        }
    }
    let state = prepare(&opts).await?;
    let (mut http, mut grpc) = (opts.http, opts.grpc);
    if !state.auth.enabled() && opts.config.server.allow_unauthenticated {
        tracing::warn!("no API keys configured: serving every address without authentication");
    } else if !state.auth.enabled() {
        let (h, g) = (loopback_only(http), grpc.map(loopback_only));
        if h != http || g != grpc {
            tracing::warn!(
                "no API keys in the config: listening on loopback only. \
                 Add [[keys]] to kiln.toml to serve other hosts."
            );
        } else {
            tracing::info!("no API keys configured: serving loopback only, without authentication");
        }
        (http, grpc) = (h, g);
    }
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    let http_listener = bind(http).await?;
    let http_addr = http_listener.local_addr()?;
    let _ = state.http_addr.set(http_addr);
    let grpc_listener = match grpc {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let grpc_addr = match &grpc_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    if let Some(a) = grpc_addr {
        let _ = state.grpc_addr.set(a);
    }

    // Registered before the address line: a SIGTERM sent as soon as the line
    // appears must drain, not kill the process.
    let mut signals = Signals::new();
    let reloader = tokio::spawn(reload_loop(
        state.clone(),
        tls.clone(),
        opts.clone(),
        Duration::from_millis(opts.config.server.watch_interval_ms.max(10)),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let app = router::router(state.clone());
    let limits = listen::ConnLimits {
        max_connections: opts.config.server.max_connections,
        header_timeout: Duration::from_millis(opts.config.server.header_timeout_ms),
    };
    let http_task = tokio::spawn(listen::serve(
        http_listener,
        app,
        limits,
        tls.clone(),
        stopped(),
    ));
    let grpc_task = grpc_listener.map(|l| {
        let svc = grpc::Grpc::service(state.clone());
        let stop = stopped();
        tokio::spawn(
            tonic::transport::Server::builder()
                .timeout(state.request_timeout)
                .max_concurrent_streams(MAX_GRPC_STREAMS)
                .http2_keepalive_interval(Some(Duration::from_millis(
                    opts.config.server.header_timeout_ms,
                )))
                .http2_keepalive_timeout(Some(Duration::from_millis(
                    opts.config.server.header_timeout_ms,
                )))
                .add_service(svc)
                .serve_with_incoming_shutdown(listen::counted(l, limits, tls.clone()), stop),
        )
    });
    let grpc_text = grpc_addr.map_or("off".to_string(), |a| a.to_string());
    println!("kiln serve: http={http_addr} grpc={grpc_text}");
    let scheme = match &tls {
        Some(t) if t.files().client_ca.is_some() => "https (mutual TLS)",
        Some(_) => "https",
        None => "http",
    };
    tracing::info!("serving on {scheme}://{http_addr} (KServe v2 REST; see / for how to call it)");
    if let Some(a) = grpc_addr {
        tracing::info!("serving on {a} (KServe v2 gRPC, inference.GRPCInferenceService)");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let watcher = (state.model_control == ModelControl::Poll).then(|| {
        let (registry, every) = (
            state.registry.clone(),
            Duration::from_millis(opts.config.server.watch_interval_ms.max(10)),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for line in registry.poll().await {
                    tracing::info!("watch: {line}");
                }
            }
        })
    });

    signals.recv().await;
    // Readiness turns 503 first while everything keeps serving, so load
    // balancers stop sending before the listeners close.
    state.draining.store(true, Ordering::Relaxed);
    let drain = Duration::from_millis(opts.config.server.drain_ms);
    tracing::info!(
        "shutting down: readiness is 503; serving {drain:?} more (a second signal skips it), \
         then finishing in-flight requests"
    );
    tokio::select! {
        () = tokio::time::sleep(drain) => {},
        () = signals.recv() => {},
    }
    state.closing.store(true, Ordering::Relaxed);
    if let Some(w) = watcher {
        w.abort();
    }
    reloader.abort();
    let _ = stop_tx.send(true);
    let grace = Duration::from_millis(opts.config.server.shutdown_grace_ms);
    let finish = async {
        let _ = http_task.await;
        if let Some(g) = grpc_task {
            let _ = g.await;
        }
    };
    if tokio::time::timeout(grace, finish).await.is_err() {
        tracing::warn!("shutdown grace of {grace:?} over: exiting with requests still in flight");
    }
    Ok(())
}

/// Reads the TLS files, the API keys of `config_path` and the trust keys
/// again on SIGHUP, or when one of those files changes (checked every
/// `every`; a trusted-keys directory by its entries). Whatever fails to load
/// is logged and the old one kept.
async fn reload_loop(state: Arc<AppState>, tls: Option<Arc<Tls>>, opts: Options, every: Duration) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let server = &opts.config.server;
    let mut files: Vec<PathBuf> = opts.config_path.iter().cloned().collect();
    if let Some(t) = &tls {
        let f = t.files();
        files.extend([f.cert.clone(), f.key.clone()]);
        files.extend(f.client_ca.clone());
    }
    files.extend(
        server
            .trusted_keys
            .iter()
            .chain(&server.unseal_key_file)
            .cloned(),
    );
    let mut seen = stamp(&files);
    loop {
        #[cfg(unix)]
        let signalled = async {
            match &mut hup {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<()>();
        let why = tokio::select! {
            () = signalled => "SIGHUP",
            () = tokio::time::sleep(every) => {
                let now = stamp(&files);
                if now == seen {
                    continue;
                }
                "a file changed"
            }
        };
        seen = stamp(&files);
        reload(&state, tls.as_deref(), &opts, why);
    }
}

/// What tells a file changed: its modification time and length; for a
/// directory, those of each entry too (a key added, removed or replaced).
type Stamp = Vec<(PathBuf, Option<(std::time::SystemTime, u64)>)>;

fn stamp(files: &[PathBuf]) -> Stamp {
    let of = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    let mut out = Stamp::new();
    for f in files {
        out.push((f.clone(), of(f.as_path())));
        if let Ok(dir) = std::fs::read_dir(f) {
            let mut entries: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
            entries.sort();
            out.extend(entries.into_iter().map(|e| {
                let s = of(e.as_path());
                (e, s)
            }));
        }
    }
    out
}

/// One reload of the TLS files, the API keys and the trust keys.
fn reload(state: &AppState, tls: Option<&Tls>, opts: &Options, why: &str) {
    if let Some(tls) = tls {
        match tls.reload() {
            Ok(()) => tracing::info!(
                "reload ({why}): TLS certificate {} loaded; new connections use it",
                tls.files().cert.display()
            ),
            Err(e) => tracing::error!("reload ({why}): keeping the TLS certificate in use: {e}"),
        }
    }
    let server = &opts.config.server;
    if server.trusted_keys.is_some() || server.unseal_key_file.is_some() {
        // The paths given at start-up, read again: loaded versions keep
        // serving, the next load of any model is held to these keys.
        match load_trust(&opts.config, opts.repo.as_deref()) {
            Ok(trust) => {
                state.registry.set_trust(trust);
                tracing::info!("reload ({why}): trust keys read again; later loads use them");
            }
            Err(e) => tracing::error!("reload ({why}): keeping the trust keys in use: {e}"),
        }
    }
    let Some(path) = opts.config_path.as_deref() else {
        return;
    };
    match Config::load(path) {
        Ok(c) if c.keys.is_empty() && state.auth.enabled() => tracing::error!(
            "reload ({why}): keeping the API keys in use: {} has none, and a server started \
             with keys may listen beyond loopback (removing every key needs a restart)",
            path.display()
        ),
        Ok(c) => {
            state.auth.replace(&c.keys);
            tracing::info!(
                "reload ({why}): {} API keys from {}",
                c.keys.len(),
                path.display()
            );
        }
        Err(e) => tracing::error!("reload ({why}): keeping the API keys in use: {e}"),
    }
}

/// SIGTERM and Ctrl-C (SIGINT), listened for from creation on.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The next signal.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(&mut self.term) => {},
                () = next(&mut self.int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
