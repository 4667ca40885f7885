//! Every documented series registered at zero when the gateway starts, so `/metrics`
//! shows them before their first event and alerts on them can be written.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Registers, at zero, every series the README documents for the configured receivers
/// and exporters, so that `/metrics` shows them from the start and alerts on them can
/// be written before their first event.
pub fn register_initial(receivers: &[&'static str], exporters: &[crate::config::ExporterConfig]) {
    use metrics::{counter, gauge, histogram};

    use crate::config::ExporterKind;
    for &r in receivers {
        counter!(RECEIVER_SPANS_ACCEPTED, "receiver" => r).increment(0);
        for reason in ["queue_full", "shutting_down", "storage"] {
            counter!(RECEIVER_SPANS_REFUSED, "receiver" => r, "reason" => reason).increment(0);
        }
        for reason in [
            "invalid_trace_id",
            "invalid_span_id",
            "invalid_parent_span_id",
            "end_before_start",
        ] {
            counter!(RECEIVER_SPANS_REJECTED, "receiver" => r, "reason" => reason).increment(0);
        }
        for reason in [
            "malformed",
            "too_large",
            "unsupported_media_type",
            "bad_encoding",
        ] {
            counter!(RECEIVER_REQUESTS_FAILED, "receiver" => r, "reason" => reason).increment(0);
        }
        let _ = histogram!(RECEIVER_REQUEST_DURATION, "receiver" => r);
    }
    for &l in receivers.iter().chain(&["admin"]) {
        gauge!(LISTENER_CONNECTIONS, "listener" => l).increment(0.0);
        counter!(LISTENER_CONNECTIONS_ACCEPTED, "listener" => l).increment(0);
        for reason in ["limit", "accept_error"] {
            counter!(LISTENER_CONNECTIONS_REFUSED, "listener" => l, "reason" => reason)
                .increment(0);
        }
        for reason in ["evicted", "header_timeout", "idle_timeout", "tls_error"] {
            counter!(LISTENER_CONNECTIONS_CLOSED, "listener" => l, "reason" => reason).increment(0);
        }
        counter!(LISTENER_BODY_TIMEOUTS, "listener" => l).increment(0);
        for reason in ["missing", "invalid"] {
            counter!(LISTENER_AUTH_FAILURES, "listener" => l, "reason" => reason).increment(0);
        }
    }
    for e in exporters {
        let x = e.name.clone();
        counter!(EXPORTER_SPANS_SENT, "exporter" => x.clone()).increment(0);
        for reason in ["permanent", "retries_exhausted"] {
            counter!(EXPORTER_SPANS_FAILED, "exporter" => x.clone(), "reason" => reason)
                .increment(0);
        }
        for reason in ["queue_full", "shutdown"] {
            counter!(EXPORTER_SPANS_DROPPED, "exporter" => x.clone(), "reason" => reason)
                .increment(0);
        }
        counter!(EXPORTER_RETRIES, "exporter" => x.clone()).increment(0);
        let _ = histogram!(EXPORTER_SEND_DURATION, "exporter" => x.clone());
        let _ = histogram!(PIPELINE_LATENCY, "exporter" => x.clone());
        gauge!(QUEUE_SPANS, "exporter" => x.clone()).increment(0.0);
        if e.queue.persistent.is_some() {
            register_persist(&x);
        }
        match &e.kind {
            ExporterKind::Zipkin(_) => {
                for reason in [
                    "bad_trace_id",
                    "bad_span_id",
                    "bad_parent_id",
                    "end_before_start",
                ] {
                    counter!(EXPORTER_SPANS_REJECTED, "exporter" => x.clone(), "reason" => reason)
                        .increment(0);
                }
                for outcome in ["2xx", "4xx", "5xx", "timeout", "connect_error", "io_error"] {
                    counter!(EXPORTER_HTTP_REQUESTS, "exporter" => x.clone(), "outcome" => outcome)
                        .increment(0);
                }
            }
            ExporterKind::Pinpoint(_) => {
                gauge!(PINPOINT_PENDING_SPANS, "exporter" => x.clone()).increment(0.0);
                gauge!(PINPOINT_AGENTS, "exporter" => x.clone()).increment(0.0);
                counter!(PINPOINT_UNRESOLVED_PARENTS, "exporter" => x.clone()).increment(0);
                counter!(PINPOINT_REJECTED_SPANS, "exporter" => x.clone()).increment(0);
                counter!(PINPOINT_MESSAGES_DROPPED, "exporter" => x.clone()).increment(0);
                let _ = histogram!(PINPOINT_HANDOFF_WAIT, "exporter" => x.clone());
                for outcome in ["published", "claimed", "handed_off", "emitted_locally"] {
                    counter!(PINPOINT_ORPHANS, "exporter" => x.clone(), "outcome" => outcome)
                        .increment(0);
                }
                for kind in ["span", "chunk"] {
                    counter!(PINPOINT_MESSAGES, "exporter" => x.clone(), "kind" => kind)
                        .increment(0);
                }
            }
            ExporterKind::Pyroscope(_) => {
                gauge!(PYROSCOPE_PENDING_SPANS, "exporter" => x.clone()).increment(0.0);
                counter!(PYROSCOPE_STACKS_OVERFLOW, "exporter" => x.clone()).increment(0);
                counter!(PYROSCOPE_SPANS_DROPPED, "exporter" => x.clone(), "reason" => "max_services")
                    .increment(0);
                counter!(EXPORTER_PROFILES_SENT, "exporter" => x.clone()).increment(0);
                for reason in ["permanent", "retries_exhausted"] {
                    counter!(EXPORTER_PROFILES_FAILED, "exporter" => x.clone(), "reason" => reason)
                        .increment(0);
                }
            }
            ExporterKind::Otlp(o) => {
                counter!(EXPORTER_SPANS_REJECTED, "exporter" => x.clone(), "reason" => "partial_success")
                    .increment(0);
                if o.endpoint.is_none() {
                    counter!(OTLP_DELIVERED, "exporter" => x.clone()).increment(0);
                    for reason in ["membership", "endpoint_down"] {
                        counter!(OTLP_SPANS_MOVED, "exporter" => x.clone(), "reason" => reason)
                            .increment(0);
                    }
                    counter!(OTLP_RING_CHANGES, "exporter" => x.clone()).increment(0);
                    for state in ["up", "down"] {
                        gauge!(OTLP_ENDPOINTS, "exporter" => x.clone(), "state" => state)
                            .increment(0.0);
                    }
                    gauge!(OTLP_ENDPOINT_QUEUE, "exporter" => x.clone()).increment(0.0);
                }
                if o.resolve.is_some() {
                    for outcome in ["ok", "empty", "error"] {
                        counter!(OTLP_RESOLVE, "exporter" => x.clone(), "outcome" => outcome)
                            .increment(0);
                    }
                }
                counter!(OTLP_BAD_TRACE_STATE, "exporter" => x.clone()).increment(0);
            }
            ExporterKind::File(_) | ExporterKind::Null => {}
        }
    }
    for map in crate::ids::store::MapName::ALL {
        counter!(ID_CACHE_HITS, "map" => map.as_str()).increment(0);
        counter!(ID_CACHE_MISSES, "map" => map.as_str()).increment(0);
    }
    for outcome in ["ok", "invalid"] {
        counter!(TRANSLATE_REQUESTS, "outcome" => outcome).increment(0);
    }
}

/// A persistent queue's series (`bridge_persist_*`), at zero.
fn register_persist(x: &str) {
    use metrics::{counter, gauge, histogram};
    let x = x.to_owned();
    gauge!(PERSIST_BYTES, "exporter" => x.clone()).increment(0.0);
    gauge!(PERSIST_CAPACITY_BYTES, "exporter" => x.clone()).increment(0.0);
    for name in [
        PERSIST_RECORDS_WRITTEN,
        PERSIST_SYNCS,
        PERSIST_REPLAYED_SPANS,
        PERSIST_DAMAGED_RECORDS,
        PERSIST_WRITE_ERRORS,
        PERSIST_KEPT_SPANS,
    ] {
        counter!(name, "exporter" => x.clone()).increment(0);
    }
    let _ = histogram!(PERSIST_SYNC_DURATION, "exporter" => x);
}

/// Registers, at zero, the sidecar proxy's documented series for its `listeners`
/// (`ingress`, `egress`).
pub fn register_proxy(listeners: &[&'static str]) {
    use metrics::{counter, gauge, histogram};
    for &l in listeners {
        for outcome in [
            "2xx",
            "3xx",
            "4xx",
            "5xx",
            "timeout",
            "upstream_error",
            "bad_request",
        ] {
            counter!(PROXY_REQUESTS, "listener" => l, "outcome" => outcome).increment(0);
        }
        for direction in ["request", "response"] {
            counter!(PROXY_BYTES, "listener" => l, "direction" => direction).increment(0);
        }
        let _ = histogram!(PROXY_REQUEST_DURATION, "listener" => l);
        let _ = histogram!(PROXY_ADDED_LATENCY, "listener" => l);
        gauge!(PROXY_CONNECTIONS, "listener" => l).increment(0.0);
        for action in [
            "pinpoint_to_w3c",
            "w3c_to_pinpoint",
            "w3c_kept",
            "started",
            "none",
            "bad",
        ] {
            counter!(PROXY_TRACE_HEADERS, "listener" => l, "action" => action).increment(0);
        }
        for reason in ["traceparent", "tracestate", "b3", "pinpoint", "pp", "ppb"] {
            counter!(PROXY_BAD_TRACE_HEADERS, "listener" => l, "reason" => reason).increment(0);
        }
    }
    if listeners.contains(&"egress") {
        for source in [
            "confirmed",
            "single",
            "tracestate_only",
            "ambiguous",
            "unknown",
        ] {
            counter!(PROXY_EGRESS_SEGMENTS, "source" => source).increment(0);
        }
    }
}
