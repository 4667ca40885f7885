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

use crate::admin::{self, AdminState, ExporterInfo};
use crate::config::{Config, ExporterKind, OnFull};
use crate::ids::MappingCache;
use crate::listener::{Limits, Options};
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
    /// Bound sidecar proxy ingress address, if `proxy.ingress` is configured.
    pub proxy_ingress_addr: Option<SocketAddr>,
    /// Bound sidecar proxy egress address, if `proxy.egress` is configured.
    pub proxy_egress_addr: Option<SocketAddr>,
    stop_proxy: watch::Sender<bool>,
    proxy: Vec<JoinHandle<()>>,
    /// Bound Pinpoint receiver addresses (agent, stat, span), if enabled.
    pub pinpoint_addrs: Option<[SocketAddr; 3]>,
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
    /// The shared id store's worker (stopped with the admin endpoint, after exporters).
    id_store: Option<JoinHandle<()>>,
    ids: Arc<MappingCache>,
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
    let (stop_admin, stop_admin_rx) = watch::channel(false);
    let id_store = crate::ids::store::start(&ids, signal(&stop_admin_rx)).context("ids.store")?;
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
    let memory = Arc::new(crate::memory::MemoryGuard::from_config(
        &config.memory,
        otlp.max_decoded_bytes,
    ));
    tracing::info!(
        soft_limit = memory.limit(),
        max_decoded_bytes = memory.max_decoded(),
        "memory limits"
    );
    let mut receivers = Vec::new();
    let mut bound = Vec::new();
    let mut grpc_addr = None;
    let mut connections = 0;
    if let Some(g) = &otlp.grpc {
        let listener = bind(&g.endpoint, "receivers.otlp.grpc").await?;
        let addr = listener.local_addr()?;
        let options = Options::new("otlp_grpc", Limits::RECEIVER, g.protection(), &[])
            .context("receivers.otlp.grpc")?;
        let (scheme, auth) = (options.scheme(), options.auth.is_some());
        connections += options.limits.max_connections;
        let intake = Arc::new(
            Intake::new(Arc::clone(&pipeline), "otlp_grpc").with_memory(Arc::clone(&memory)),
        );
        let stop = signal(&stop_receivers_rx);
        receivers.push(tokio::spawn(async move {
            if let Err(e) = otlp_grpc::serve(listener, options, intake, limit, stop).await {
                tracing::error!(error = %e, "OTLP/gRPC receiver failed");
            }
        }));
        tracing::info!(receiver = "otlp_grpc", %addr, scheme, auth, "listening");
        bound.push(("otlp_grpc", addr));
        grpc_addr = Some(addr);
    }
    let mut http_addr = None;
    if let Some(h) = &otlp.http {
        let listener = bind(&h.endpoint, "receivers.otlp.http").await?;
        let addr = listener.local_addr()?;
        let options = Options::new("otlp_http", Limits::RECEIVER, h.protection(), &[])
            .context("receivers.otlp.http")?;
        let (scheme, auth) = (options.scheme(), options.auth.is_some());
        connections += options.limits.max_connections;
        let intake = Arc::new(
            Intake::new(Arc::clone(&pipeline), "otlp_http").with_memory(Arc::clone(&memory)),
        );
        let stop = signal(&stop_receivers_rx);
        receivers.push(tokio::spawn(async move {
            if let Err(e) = otlp_http::serve(listener, options, intake, limit, stop).await {
                tracing::error!(error = %e, "OTLP/HTTP receiver failed");
            }
        }));
        tracing::info!(receiver = "otlp_http", %addr, scheme, auth, "listening");
        bound.push(("otlp_http", addr));
        http_addr = Some(addr);
    }
    let mut pinpoint_addrs = None;
    if let Some(p) = &config.receivers.pinpoint {
        let rx = stop_receivers_rx.clone();
        let started = crate::receiver::pinpoint::start(p, Arc::clone(&pipeline), move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        })
        .await?;
        bound.push(("pinpoint_agent", started.agent_addr));
        bound.push(("pinpoint_stat", started.stat_addr));
        bound.push(("pinpoint_span", started.span_addr));
        pinpoint_addrs = Some([started.agent_addr, started.stat_addr, started.span_addr]);
        receivers.extend(started.tasks);
    }

    let (stop_proxy, stop_proxy_rx) = watch::channel(false);
    let proxy = match &config.proxy {
        Some(p) => {
            let mut names = Vec::new();
            if p.ingress.is_some() {
                names.push("ingress");
            }
            if p.egress.is_some() {
                names.push("egress");
            }
            selfmetrics::register_proxy(&names);
            crate::proxy::start(p, &stop_proxy_rx).await?
        }
        None => crate::proxy::RunningProxy {
            ingress_addr: None,
            egress_addr: None,
            tasks: Vec::new(),
        },
    };

    let ready = Arc::new(AtomicBool::new(false));
    let admin_options = Options::new(
        "admin",
        Limits::ADMIN,
        config.admin.protection(),
        admin::OPEN_PATHS,
    )
    .context("admin")?;
    let (scheme, auth) = (admin_options.scheme(), admin_options.auth.is_some());
    crate::listener::check_open_files(connections + admin_options.limits.max_connections);
    let listener = bind(&config.admin.endpoint, "admin").await?;
    let admin_addr = listener.local_addr()?;
    let ids_for_shutdown = Arc::clone(&ids);
    selfmetrics::register_initial(
        &bound
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| name.starts_with("otlp_"))
            .collect::<Vec<_>>(),
        &config.exporters,
    );
    let state = Arc::new(AdminState {
        ready: Arc::clone(&ready),
        prometheus,
        started: Instant::now(),
        receivers: bound,
        exporters: pipeline.stats(),
        exporter_info: config
            .exporters
            .iter()
            .map(|e| ExporterInfo {
                target: e.kind.target(),
                refuses: e.queue.on_full == OnFull::Refuse,
            })
            .collect(),
        ids,
        links: config.admin.links.clone(),
        marker: lookup_marker(&config),
        history: Default::default(),
    });
    let stop = signal(&stop_admin_rx);
    let admin = tokio::spawn(async move {
        if let Err(e) = admin::serve(listener, admin_options, state, stop).await {
            tracing::error!(error = %e, "admin endpoint failed");
        }
    });
    tracing::info!(%admin_addr, scheme, auth, "admin endpoint listening");
    ready.store(true, Ordering::Release);
    tracing::info!(exporters = pipeline.exporter_count(), "gateway ready");
    Ok(Running {
        grpc_addr,
        http_addr,
        admin_addr,
        proxy_ingress_addr: proxy.ingress_addr,
        proxy_egress_addr: proxy.egress_addr,
        stop_proxy,
        proxy: proxy.tasks,
        pinpoint_addrs,
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
        id_store,
        ids: ids_for_shutdown,
    })
}

/// The marker the lookup box uses: the first Pinpoint exporter's, else the default.
fn lookup_marker(config: &Config) -> crate::ids::AgentId {
    config
        .exporters
        .iter()
        .find_map(|e| match &e.kind {
            ExporterKind::Pinpoint(p) => crate::ids::AgentId::new(&p.marker).ok(),
            _ => None,
        })
        .unwrap_or_else(|| crate::ids::AgentId::new("otel").expect("the default marker is valid"))
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
        let _ = self.stop_proxy.send(true);
        for r in self.receivers.into_iter().chain(self.proxy) {
            let abort = r.abort_handle();
            if tokio::time::timeout_at(deadline, r).await.is_err() {
                tracing::warn!("a receiver did not finish its in-flight requests in time");
                abort.abort();
            }
        }
        if let Some(queue) = self.ids.store_queue() {
            // Segments still held may wait for callers that the shared store has: with
            // the intake closed, give the exporters a last look at it (lookups asked
            // anew, a batch timeout and a few 100 ms ticks) before their final flush.
            queue.reset_throttle();
            let settle = Duration::from_millis(500)
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()) / 2);
            tokio::time::sleep(settle).await;
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
        if let Some(store) = self.id_store {
            let abort = store.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), store)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        if report.undrained.is_empty() {
            tracing::info!("shutdown complete: all queues drained");
        }
        report
    }
}
