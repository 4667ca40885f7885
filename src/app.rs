//! The composition root: builds the pipeline, exporters, receivers and admin endpoint
//! from a [`Config`], runs them, and drains them on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::ids::MappingCache;
use crate::pipeline::persist::Store;
use crate::pipeline::router::Router;
use crate::pipeline::{ExporterStats, Pipeline};
use crate::receiver::{Intake, otlp_grpc, otlp_http};
use crate::{exporter, selfmetrics};

/// A running gateway.
pub struct Running {
    /// Bound OTLP/gRPC address, if enabled.
    pub grpc_addr: Option<SocketAddr>,
    /// Bound OTLP/HTTP address, if enabled.
    pub http_addr: Option<SocketAddr>,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    grace: Duration,
    ready: Arc<AtomicBool>,
    pipeline: Arc<Pipeline>,
    stop_receivers: watch::Sender<bool>,
    stop_exporters: watch::Sender<bool>,
    stop_admin: watch::Sender<bool>,
    receivers: Vec<JoinHandle<()>>,
    exporters: Vec<(Arc<ExporterStats>, JoinHandle<()>)>,
    /// Persistent queues (closed last) and their replay tasks.
    stores: Vec<Arc<Store>>,
    replays: Vec<JoinHandle<()>>,
    admin: JoinHandle<()>,
}

/// What shutdown could not finish.
#[derive(Debug, Default)]
pub struct DrainReport {
    /// `(exporter, spans still queued)` for every exporter that did not drain in time.
    pub undrained: Vec<(String, usize)>,
}

async fn bind(endpoint: &str, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(endpoint)
        .await
        .with_context(|| format!("{what}: cannot listen on {endpoint}"))
}

fn signal(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        // Either the value turns true or the sender is gone: both mean stop.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Starts everything `config` describes. Returns once all listeners are bound and
/// every exporter is running (the gateway is then ready).
///
/// # Errors
/// A listener that cannot bind or an exporter that cannot start.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let prometheus = selfmetrics::install();
    let router = Router::new(&config.routing, &config.exporters);
    tracing::info!(routes = config.routing.routes.len(), "routing rules loaded");
    let (pipeline, queues) = Pipeline::open(&config.exporters, router)?;
    let stores: Vec<Arc<Store>> = queues.iter().filter_map(|q| q.store.clone()).collect();
    let (stop_exporters, stop_exporters_rx) = watch::channel(false);
    let ids = Arc::new(MappingCache::new(&config.ids).context("ids")?);
    let shared = exporter::Shared {
        ids: Arc::clone(&ids),
    };
    let mut exporters = Vec::new();
    for (cfg, queue) in config.exporters.iter().zip(queues) {
        let stats = Arc::clone(&queue.stats);
        let handle = exporter::start(cfg, &shared, queue, stop_exporters_rx.clone()).await?;
        exporters.push((stats, handle));
    }
    // What persistent queues kept from the last run goes out before (and beside) new
    // traffic; it waits for queue room like any request.
    let replays = pipeline.start_replay(&stop_exporters_rx);

    let (stop_receivers, stop_receivers_rx) = watch::channel(false);
    let otlp = &config.receivers.otlp;
    let limit = otlp.max_request_bytes;
    let mut receivers = Vec::new();
    let mut bound = Vec::new();
    let mut grpc_addr = None;
    if let Some(g) = &otlp.grpc {
        let listener = bind(&g.endpoint, "receivers.otlp.grpc").await?;
        let addr = listener.local_addr()?;
        let intake = Arc::new(Intake::new(Arc::clone(&pipeline), "otlp_grpc"));
        let stop = signal(&stop_receivers_rx);
        receivers.push(tokio::spawn(async move {
            if let Err(e) = otlp_grpc::serve(listener, intake, limit, stop).await {
                tracing::error!(error = %e, "OTLP/gRPC receiver failed");
            }
        }));
        tracing::info!(receiver = "otlp_grpc", %addr, "listening");
        bound.push(("otlp_grpc", addr));
        grpc_addr = Some(addr);
    }
    let mut http_addr = None;
    if let Some(h) = &otlp.http {
        let listener = bind(&h.endpoint, "receivers.otlp.http").await?;
        let addr = listener.local_addr()?;
        let intake = Arc::new(Intake::new(Arc::clone(&pipeline), "otlp_http"));
        let stop = signal(&stop_receivers_rx);
        receivers.push(tokio::spawn(async move {
            if let Err(e) = otlp_http::serve(listener, intake, limit, stop).await {
                tracing::error!(error = %e, "OTLP/HTTP receiver failed");
            }
        }));
        tracing::info!(receiver = "otlp_http", %addr, "listening");
        bound.push(("otlp_http", addr));
        http_addr = Some(addr);
    }

    let ready = Arc::new(AtomicBool::new(false));
    let listener = bind(&config.admin.endpoint, "admin").await?;
    let admin_addr = listener.local_addr()?;
    let state = Arc::new(AdminState {
        ready: Arc::clone(&ready),
        prometheus,
        started: Instant::now(),
        receivers: bound,
        exporters: pipeline.stats(),
        ids,
    });
    let (stop_admin, stop_admin_rx) = watch::channel(false);
    let stop = signal(&stop_admin_rx);
    let admin = tokio::spawn(async move {
        if let Err(e) = admin::serve(listener, state, stop).await {
            tracing::error!(error = %e, "admin endpoint failed");
        }
    });
    tracing::info!(%admin_addr, "admin endpoint listening");
    ready.store(true, Ordering::Release);
    tracing::info!(exporters = pipeline.exporter_count(), "gateway ready");
    Ok(Running {
        grpc_addr,
        http_addr,
        admin_addr,
        grace: config.service.shutdown_grace,
        ready,
        pipeline,
        stop_receivers,
        stop_exporters,
        stop_admin,
        receivers,
        exporters,
        stores,
        replays,
        admin,
    })
}

impl Running {
    /// Stops accepting, drains queues within the grace period, and stops.
    ///
    /// Order: readiness off; receivers stop accepting and finish in-flight requests;
    /// the pipeline refuses new blocks; exporters export what is queued. Whatever is
    /// still queued when the grace period ends is logged and counted as undrained.
    pub async fn shutdown(self) -> DrainReport {
        let deadline = tokio::time::Instant::now() + self.grace;
        self.ready.store(false, Ordering::Release);
        tracing::info!(
            grace_ms = self.grace.as_millis() as u64,
            "shutting down: no longer accepting"
        );
        let _ = self.stop_receivers.send(true);
        for r in self.receivers {
            let abort = r.abort_handle();
            if tokio::time::timeout_at(deadline, r).await.is_err() {
                tracing::warn!("a receiver did not finish its in-flight requests in time");
                abort.abort();
            }
        }
        self.pipeline.close();
        let _ = self.stop_exporters.send(true);
        let mut report = DrainReport::default();
        for r in self.replays {
            // Replay stops at the stop signal; what it did not replay stays on disk.
            let abort = r.abort_handle();
            if tokio::time::timeout_at(deadline, r).await.is_err() {
                abort.abort();
            }
        }
        for (stats, handle) in self.exporters {
            let abort = handle.abort_handle();
            if tokio::time::timeout_at(deadline, handle).await.is_err() {
                let left = stats.queued();
                abort.abort();
                if let Some(store) = self.stores.iter().find(|s| s.exporter() == stats.name) {
                    // Persistent: everything admitted is on disk and replays next start.
                    store.count_kept(left);
                    tracing::warn!(exporter = %stats.name, spans = left, dir = %store.dir().display(),
                        "grace period over: undelivered spans kept on disk for the next start");
                    continue;
                }
                tracing::error!(exporter = %stats.name, spans = left, "grace period over: spans not drained");
                metrics::counter!(selfmetrics::EXPORTER_SPANS_DROPPED, "exporter" => stats.name.clone(), "reason" => "shutdown")
                    .increment(left as u64);
                report.undrained.push((stats.name.clone(), left));
            }
        }
        let stores = self.stores;
        let closing = tokio::task::spawn_blocking(move || stores.iter().for_each(|s| s.close()));
        if tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .is_err()
        {
            tracing::error!("persistent queues did not close in 5s");
        }
        let _ = self.stop_admin.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.admin).await;
        if report.undrained.is_empty() {
            tracing::info!("shutdown complete: all queues drained");
        }
        report
    }
}
