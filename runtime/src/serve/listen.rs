//! The listeners' connection limits. REST: hyper connections served with
//! the limits axum's `serve` does not set. On each listener (REST and gRPC)
//! at most `max_connections` connections are open (the next waits in the
//! kernel's backlog until one closes); a REST client has
//! `header_timeout_ms` to send a request's headers (HTTP/1) and is pinged
//! at that interval (HTTP/2), so a slowloris client cannot pin a connection
//! for free; bodies have their own deadline (`serve/state.rs`). On `stop`,
//! the listener closes and open connections finish their requests.
//!
//! With TLS (`serve/tls.rs`), each connection's handshake runs in its own
//! task, with the acceptor current when the connection was accepted, and
//! must finish within `header_timeout_ms`; a failed handshake closes the
//! connection and frees its slot.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::tls::{Protocol, Tls};

/// Connection limits of the REST listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `stop`, then lets open connections
/// finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<Arc<Tls>>,
    stop: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout);
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors, say: let connections close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let (watcher, builder, app) = (graceful.watcher(), builder.clone(), app.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(conn) = Conn::accept(stream, tls.as_deref(), Protocol::Rest, limits).await
            else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let connection = builder
                .serve_connection(TokioIo::new(conn), service)
                .into_owned();
            let _ = watcher.watch(connection).await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection, in the clear or over TLS.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    /// `stream`, after its TLS handshake when `tls` is set; `None` when the
    /// handshake fails or takes longer than the header timeout.
    async fn accept(
        stream: TcpStream,
        tls: Option<&Tls>,
        protocol: Protocol,
        limits: ConnLimits,
    ) -> Option<Conn> {
        let Some(tls) = tls else {
            return Some(Conn::Plain(stream));
        };
        let peer = stream.peer_addr().ok();
        let handshake = tls.acceptor(protocol).accept(stream);
        match tokio::time::timeout(limits.header_timeout, handshake).await {
            Ok(Ok(s)) => Some(Conn::Tls(Box::new(s))),
            Ok(Err(e)) => {
                tracing::debug!("TLS handshake with {peer:?} failed: {e}");
                None
            }
            Err(_) => {
                tracing::debug!("TLS handshake with {peer:?} timed out");
                None
            }
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }
}

/// A gRPC connection holding one of the listener's `max_connections`
/// slots until it is dropped (tonic drops it when the connection ends).
pub(crate) struct Counted {
    stream: Conn,
    _slot: OwnedSemaphorePermit,
}

/// The gRPC listener's connections, at most `max_connections` open at once:
/// the next is not accepted until one ends. tonic bounds the streams per
/// connection, not the connections. With TLS, handshakes run in tasks of
/// their own and the connections come out in the order they finish.
pub(crate) fn counted(
    listener: TcpListener,
    limits: ConnLimits,
    tls: Option<Arc<Tls>>,
) -> BoxStream<'static, io::Result<Counted>> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let Some(tls) = tls else {
        return futures_util::stream::unfold((listener, slots), |(listener, slots)| async move {
            let slot = slots.clone().acquire_owned().await.ok()?;
            let stream = accept(&listener).await;
            let counted = Counted {
                stream: Conn::Plain(stream),
                _slot: slot,
            };
            Some((Ok(counted), (listener, slots)))
        })
        .boxed();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Counted>(64);
    // Ends when tonic drops the stream (the receiver), closing the listener.
    tokio::spawn(async move {
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
                () = tx.closed() => return,
            };
            let stream = tokio::select! {
                stream = accept(&listener) => stream,
                () = tx.closed() => return,
            };
            let (tx, tls) = (tx.clone(), tls.clone());
            tokio::spawn(async move {
                if let Some(stream) = Conn::accept(stream, Some(&tls), Protocol::Grpc, limits).await
                {
                    let _ = tx
                        .send(Counted {
                            stream,
                            _slot: slot,
                        })
                        .await;
                }
            });
        }
    });
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|c| (Ok(c), rx)) },
    )
    .boxed()
}

/// The next connection; on errors (out of file descriptors, say) it waits
/// for connections to close.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

impl Connected for Counted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.tcp().connect_info()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut *self {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut *self {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut *self {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}
