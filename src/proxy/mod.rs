//! The header-translating sidecar proxy (`proxy:` in the gateway config): an ingress
//! listener in front of the service and an egress listener for its outbound calls, in
//! the same process as the bridge. Each request passes, top to bottom:
//!
//! ```text
//! server (hyper: HTTP/1.1, h2c, upgrades; connection limit)
//!   └ MetricsLayer  requests/bytes per listener and outcome, added latency
//!     └ TimeoutLayer  upstream response headers within request_timeout
//!       └ TraceLayer  translate::ingress / translate::egress (pure) + segment memory
//!         └ Forward  pooled hyper client, bodies streamed untouched, upgrades spliced
//! ```
//!
//! Code map: [`config`] (the `proxy:` section), [`translate`] (pure header planning),
//! [`segments`] (the service's current segment per trace, for egress `pSpanID`),
//! [`layers`], [`forward`], [`server`].

pub mod config;
pub mod forward;
pub mod layers;
pub mod segments;
pub mod server;
pub mod translate;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;

pub use config::{BadHeaders, ListenerConfig, ProxyConfig};

use crate::ids::{TranslateOptions, Translator};
use forward::{Forward, ForwardConfig};
use layers::{FreshIds, MetricsLayer, Side, TimeoutLayer, TraceLayer, TraceShared};
use segments::SegmentMemory;
use server::ServeConfig;
use translate::HopOptions;

/// The running proxy listeners.
pub struct RunningProxy {
    /// Bound ingress address, if configured.
    pub ingress_addr: Option<SocketAddr>,
    /// Bound egress address, if configured.
    pub egress_addr: Option<SocketAddr>,
    /// The listener tasks (joined by the app on shutdown).
    pub tasks: Vec<JoinHandle<()>>,
}

/// Binds and starts the configured listeners. `stop` ends them (gracefully).
///
/// # Errors
/// A listener that cannot bind or an invalid upstream.
pub async fn start(
    cfg: &ProxyConfig,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<RunningProxy> {
    let translator = Translator::new(&TranslateOptions::default()).context("proxy")?;
    let opts = HopOptions {
        translator,
        app_name: cfg.application_name.clone(),
        app_type: cfg.service_type,
        bad_headers: cfg.bad_headers,
        start_context: cfg.start_context,
        start_sampled: cfg.start_sampled,
    };
    let memory = SegmentMemory::new(cfg.segments.max_traces, cfg.segments.ttl);
    let mut running = RunningProxy {
        ingress_addr: None,
        egress_addr: None,
        tasks: Vec::new(),
    };
    for (side, listener) in [(Side::Ingress, &cfg.ingress), (Side::Egress, &cfg.egress)] {
        let Some(l) = listener else { continue };
        let forward = Forward::new(&ForwardConfig {
            upstream: l.upstream.clone(),
            connect_timeout: cfg.connect_timeout,
            idle_timeout: cfg.idle_timeout,
        })
        .with_context(|| format!("proxy.{}.upstream", side.label()))?;
        let shared = Arc::new(TraceShared {
            side,
            opts: opts.clone(),
            memory: memory.clone(),
            ids: FreshIds::default(),
        });
        let service = ServiceBuilder::new()
            .layer(MetricsLayer(side))
            .layer(TimeoutLayer(cfg.request_timeout))
            .layer(TraceLayer(shared))
            .service(forward);
        let tcp = TcpListener::bind(&l.listen)
            .await
            .with_context(|| format!("proxy.{}: cannot listen on {}", side.label(), l.listen))?;
        let addr = tcp.local_addr()?;
        tracing::info!(listener = side.label(), %addr, upstream = ?l.upstream, "proxy listening");
        let serve_cfg = ServeConfig {
            side,
            max_connections: cfg.max_connections,
            max_header_bytes: cfg.max_header_bytes,
        };
        running.tasks.push(tokio::spawn(server::serve(
            tcp,
            service,
            serve_cfg,
            stop.clone(),
        )));
        match side {
            Side::Ingress => running.ingress_addr = Some(addr),
            Side::Egress => running.egress_addr = Some(addr),
        }
    }
    Ok(running)
}
