//! The admin endpoint: `/healthz`, `/readyz`, `/metrics` (Prometheus), the live status
//! page at `/` (`page.rs`, with its history in `history.rs`), the id lookup
//! (`lookup.rs`, also as `GET /v1/lookup?id=`), and `POST /v1/context/translate`
//! (W3C/B3 ⇄ Pinpoint header translation).

mod history;
mod lookup;
mod page;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::config::LinksConfig;
use crate::ids::translate::{TranslateOptions, TranslateRequest, Translator};
use crate::ids::{AgentId, HeaderBuf, MappingCache, Translation};
use crate::pipeline::ExporterStats;
use crate::selfmetrics as m;

/// What the admin endpoint shows.
pub struct AdminState {
    /// True once receivers are bound and exporters started; false again when stopping.
    pub ready: Arc<AtomicBool>,
    pub prometheus: PrometheusHandle,
    pub started: Instant,
    /// `(receiver name, bound address)`.
    pub receivers: Vec<(&'static str, SocketAddr)>,
    pub exporters: Vec<Arc<ExporterStats>>,
    /// Per exporter, in the order of `exporters`: what the page and `/readyz` need.
    pub exporter_info: Vec<ExporterInfo>,
    /// The identity mapping cache, shared with the exporters.
    pub ids: Arc<MappingCache>,
    /// Base URLs for the lookup box's links.
    pub links: LinksConfig,
    /// The marker of bridge-born transaction ids, for the lookup box.
    pub marker: AgentId,
    /// Recent samples of the gateway's own metrics, for rates and sparklines.
    pub history: history::History,
}

/// What the admin endpoint knows of one exporter besides its counters.
#[derive(Debug, Clone)]
pub struct ExporterInfo {
    /// Where it sends: a URL, `host:ports`, or a file.
    pub target: String,
    /// Whether a full queue refuses requests (`on_full: refuse`).
    pub refuses: bool,
}

impl AdminState {
    /// The page's series, read now from the Prometheus recorder.
    fn current(&self) -> HashMap<String, f64> {
        self.prometheus.run_upkeep();
        history::select(&self.prometheus.render())
    }

    /// Ready means "a request sent here now will be accepted": started and not
    /// stopping, and no exporter that refuses when full has a full queue. A backend that
    /// is down first fills its exporter's queue (spans are held and retried); only then
    /// does readiness turn off, so a load balancer sends elsewhere while this instance
    /// drains. Liveness (`/healthz`) is not affected.
    ///
    /// # Errors
    /// Why the gateway is not ready.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.ready.load(Ordering::Acquire) {
            return Err("not ready: starting or shutting down".to_owned());
        }
        for (e, info) in self.exporters.iter().zip(&self.exporter_info) {
            if info.refuses && e.capacity > 0 && e.queued() >= e.capacity {
                return Err(format!(
                    "not ready: the queue of exporter `{}` is full ({} spans): its backend is not keeping up",
                    e.name, e.capacity
                ));
            }
        }
        Ok(())
    }
}

/// Builds the admin routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/status/fragment", get(status_fragment))
        .route("/status/lookup", get(status_lookup))
        .route("/v1/lookup", get(lookup_json))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/context/translate", post(translate))
        .with_state(state)
}

/// Paths admin serves without credentials when `admin.auth` is set: the probes, which
/// say nothing but "up" and "ready".
pub const OPEN_PATHS: &[&str] = &["/healthz", "/readyz"];

/// Serves the admin endpoint on `listener` with `options` (limits, TLS, auth) until
/// `shutdown` completes.
///
/// # Errors
/// A fatal listener error.
pub async fn serve(
    listener: TcpListener,
    options: crate::listener::Options,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server = crate::listener::serve(listener, options, router(Arc::clone(&state)), shutdown);
    // The status page's sampler lives and ends with the server.
    tokio::select! {
        r = server => r,
        () = sample(state) => Ok(()),
    }
}

async fn sample(state: Arc<AdminState>) {
    let mut tick = tokio::time::interval(history::INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let values = state.current();
        state.history.push(history::unix_now(), &values);
    }
}

async fn readyz(State(s): State<Arc<AdminState>>) -> Response {
    match s.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics(State(s): State<Arc<AdminState>>) -> Response {
    s.prometheus.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.prometheus.render(),
    )
        .into_response()
}

/// Translates one set of request headers. Body: `{"headers": {"name": "value"}}`;
/// answer: the translation as JSON, or 400 with `{"error": "..."}`.
async fn translate(State(s): State<Arc<AdminState>>, body: axum::body::Bytes) -> Response {
    let result = serde_json::from_slice::<TranslateRequest>(&body)
        .map_err(|e| {
            format!("invalid request body: {e} (expected {{\"headers\": {{\"name\": \"value\"}}}})")
        })
        .and_then(|req| {
            let translator = Translator::new(&TranslateOptions::default())
                .map_err(|e| e.to_string())?
                .with_cache_read_only(Arc::clone(&s.ids));
            let pairs = req.pairs();
            let mut out = HeaderBuf::new();
            let outcome = translator
                .translate_into(
                    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    &mut out,
                )
                .map_err(|e| e.to_string())?;
            Ok(Translation::from_outcome(&outcome, &out))
        });
    match result {
        Ok(t) => {
            metrics::counter!(m::TRANSLATE_REQUESTS, "outcome" => "ok").increment(1);
            axum::Json(t).into_response()
        }
        Err(error) => {
            metrics::counter!(m::TRANSLATE_REQUESTS, "outcome" => "invalid").increment(1);
            (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({ "error": error })),
            )
                .into_response()
        }
    }
}

async fn status_page(State(s): State<Arc<AdminState>>) -> Html<String> {
    Html(page::page(&s))
}

async fn status_fragment(State(s): State<Arc<AdminState>>) -> Response {
    let mut h = String::with_capacity(8192);
    page::fragment(&s, &mut h);
    ([(header::CACHE_CONTROL, "no-store")], Html(h)).into_response()
}

/// `?id=` of the lookup routes.
#[derive(Debug, serde::Deserialize)]
struct LookupQuery {
    #[serde(default)]
    id: String,
}

async fn status_lookup(
    State(s): State<Arc<AdminState>>,
    Query(q): Query<LookupQuery>,
) -> Html<String> {
    Html(page::lookup_answer(&lookup::lookup(
        &q.id, s.marker, &s.links,
    )))
}

/// `GET /v1/lookup?id=…`: the lookup as JSON, or 400 with `{"error": …}`.
async fn lookup_json(State(s): State<Arc<AdminState>>, Query(q): Query<LookupQuery>) -> Response {
    match lookup::lookup(&q.id, s.marker, &s.links) {
        Ok(l) => axum::Json(l).into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": error })),
        )
            .into_response(),
    }
}
