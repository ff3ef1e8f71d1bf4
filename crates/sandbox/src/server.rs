//! The HTTP server: shared state, the connection loop (which lets a fault drop a connection),
//! and graceful shutdown.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tower::ServiceExt as _;

use crate::config::SandboxConfig;
use crate::faults::Faults;
use crate::model::Model;

/// State shared by every request.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SandboxConfig,
    pub(crate) base_url: String,
    clock_offset_ms: AtomicI64,
    model: Mutex<Model>,
    faults: Mutex<Faults>,
    pub(crate) faults_armed: AtomicBool,
}

impl Shared {
    pub(crate) fn new(config: SandboxConfig, base_url: String) -> Self {
        Self {
            config,
            base_url,
            clock_offset_ms: AtomicI64::new(0),
            model: Mutex::new(Model::default()),
            faults: Mutex::new(Faults::default()),
            faults_armed: AtomicBool::new(false),
        }
    }

    /// The sandbox clock: wall-clock time plus whatever `advance_clock` added, in Unix ms.
    pub(crate) fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        wall.saturating_add(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn clock_offset_secs(&self) -> i64 {
        self.clock_offset_ms.load(Ordering::Relaxed) / 1000
    }

    pub(crate) fn advance_clock(&self, secs: u64) {
        let ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let _ = self
            .clock_offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_add(ms))
            });
    }

    /// Locks the model for one short, synchronous operation. A poisoned lock (impossible
    /// without a panic) is recovered rather than propagated.
    pub(crate) fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Put in every request's extensions: notifying it closes the request's connection at once,
/// without writing anything.
#[derive(Debug, Clone)]
pub(crate) struct ConnKill(pub(crate) Arc<Notify>);

/// Accepts connections until `shutdown` flips (or its sender is dropped), then lets open
/// connections finish their current request (at most 5 s).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let conn = Connection { router: router.clone(), shutdown: shutdown.clone(), _done: done_tx.clone() };
                    tokio::spawn(conn.run(stream));
                }
                // Out of file descriptors and the like: back off briefly, keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    drop(done_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), done_rx.recv()).await;
}

struct Connection {
    router: Router,
    shutdown: watch::Receiver<bool>,
    /// Dropped when the connection ends; `serve` waits for all of them.
    _done: mpsc::Sender<()>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let kill = Arc::new(Notify::new());
        let router = self.router.clone();
        let kill_ext = ConnKill(kill.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(kill_ext.clone());
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(Body::new)).await;
                Ok::<_, Infallible>(match resp {
                    Ok(r) => r,
                    Err(never) => match never {},
                })
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            // Also the idle keep-alive limit: longer than reqwest's 90 s pool idle timeout, so
            // clients close idle connections first and never race a server-side close.
            .header_read_timeout(Duration::from_secs(120))
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let mut draining = *self.shutdown.borrow();
        if draining {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                _ = conn.as_mut() => break,
                () = kill.notified() => break,
                changed = self.shutdown.changed(), if !draining => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}
