//! The admin endpoint: `/healthz`, `/readyz`, `/metrics` (Prometheus), the status page
//! at `/`, and `POST /v1/context/translate` (W3C/B3 ⇄ Pinpoint header translation).

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::ids::translate::{TranslateOptions, TranslateRequest, Translator};
use crate::ids::{HeaderBuf, MappingCache, Translation};
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
    /// The identity mapping cache, shared with the exporters.
    pub ids: Arc<MappingCache>,
}

/// Builds the admin routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/context/translate", post(translate))
        .with_state(state)
}

/// Serves the admin endpoint on `listener` until `shutdown` completes.
///
/// # Errors
/// An I/O error from the server.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(s): State<Arc<AdminState>>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
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
                .with_cache(Arc::clone(&s.ids));
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
    Html(render_status(&s))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render_status(s: &AdminState) -> String {
    let mut h = String::with_capacity(4096);
    let ready = if s.ready.load(Ordering::Acquire) {
        "ready"
    } else {
        "not ready"
    };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>otel-pinpoint-bridge</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}th{{background:#eee}}\
         td:first-child,th:first-child{{text-align:left}}</style></head><body>\
         <h1>otel-pinpoint-bridge {}</h1><p>Status: <b>{ready}</b> · up {} s · \
         <a href=\"/metrics\">metrics</a> · <a href=\"/healthz\">healthz</a> · <a href=\"/readyz\">readyz</a></p>",
        env!("CARGO_PKG_VERSION"),
        s.started.elapsed().as_secs()
    );
    h.push_str("<h2>Receivers</h2><table><tr><th>receiver</th><th>address</th></tr>");
    for (name, addr) in &s.receivers {
        let _ = write!(h, "<tr><td>{name}</td><td>{addr}</td></tr>");
    }
    h.push_str(
        "</table><h2>Exporters</h2><table><tr><th>exporter</th><th>type</th><th>queued spans</th>\
         <th>capacity</th><th>sent</th><th>failed</th><th>dropped</th><th>last error</th></tr>",
    );
    for e in &s.exporters {
        let last = e
            .last_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.name),
            e.kind,
            e.queued(),
            e.capacity,
            e.sent.load(Ordering::Relaxed),
            e.failed.load(Ordering::Relaxed),
            e.dropped.load(Ordering::Relaxed),
            escape(&last)
        );
    }
    h.push_str("</table>");
    if let (Some(cfg), Some(st)) = (s.ids.store_config(), s.ids.stats().store) {
        let _ = write!(
            h,
            "<p>Shared id store {}: <b>{}</b> · round trips {} · hits {} · misses {} · writes {} · errors {} (timeouts {}) · queued {}</p>",
            escape(&crate::ids::store::config::redact_url(&cfg.redis().url)),
            match (st.up, st.round_trips + st.round_trip_errors + st.timeouts) {
                (_, 0) => "no round trip yet",
                (true, _) => "up",
                (false, _) => "down (resolving locally)",
            },
            st.round_trips,
            st.hits,
            st.misses,
            st.writes,
            st.errors,
            st.timeouts,
            st.queued
        );
    }
    h.push_str("</body></html>\n");
    h
}
