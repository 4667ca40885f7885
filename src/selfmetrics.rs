//! The gateway's own metrics: every name is defined here, with its help text.
//!
//! Labels are low-cardinality only (`receiver`, `exporter`, `reason`, `outcome`, `map`,
//! and `route`/`action`, whose values the config fixes); never a trace id, a service name
//! or anything else that grows with traffic.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Spans accepted into the pipeline, per `receiver`.
pub const RECEIVER_SPANS_ACCEPTED: &str = "bridge_receiver_spans_accepted_total";
/// Spans refused for backpressure (queue full, shutting down), per `receiver` and `reason`.
pub const RECEIVER_SPANS_REFUSED: &str = "bridge_receiver_spans_refused_total";
/// Spans rejected one at a time as invalid, per `receiver` and `reason`.
pub const RECEIVER_SPANS_REJECTED: &str = "bridge_receiver_spans_rejected_total";
/// Whole requests rejected before any span was read, per `receiver` and `reason`
/// (`malformed`, `too_large`, `unsupported_media_type`, `bad_encoding`).
pub const RECEIVER_REQUESTS_FAILED: &str = "bridge_receiver_requests_failed_total";
/// Request handling time, per `receiver`.
pub const RECEIVER_REQUEST_DURATION: &str = "bridge_receiver_request_duration_seconds";
/// OTLP profiles taken into the pipeline, per `receiver`.
pub const RECEIVER_PROFILES_ACCEPTED: &str = "bridge_receiver_profiles_accepted_total";
/// OTLP profiles refused for backpressure, per `receiver` and `reason`.
pub const RECEIVER_PROFILES_REFUSED: &str = "bridge_receiver_profiles_refused_total";
/// Invalid OTLP profiles rejected one at a time (bad dictionary references), per `receiver`
/// and `reason`.
pub const RECEIVER_PROFILES_REJECTED: &str = "bridge_receiver_profiles_rejected_total";

/// Spans waiting in (or being exported from) an exporter's queue, per `exporter`.
pub const QUEUE_SPANS: &str = "bridge_queue_spans";
/// The capacity of an exporter's queue in spans, per `exporter`.
pub const QUEUE_CAPACITY: &str = "bridge_queue_capacity_spans";
/// Spans an exporter delivered, per `exporter`.
pub const EXPORTER_SPANS_SENT: &str = "bridge_exporter_spans_sent_total";
/// Spans an exporter gave up on, per `exporter` and `reason` (`permanent`, `retries_exhausted`).
pub const EXPORTER_SPANS_FAILED: &str = "bridge_exporter_spans_failed_total";
/// Spans dropped before export, per `exporter` and `reason` (`queue_full`, `shutdown`).
pub const EXPORTER_SPANS_DROPPED: &str = "bridge_exporter_spans_dropped_total";
/// Time of one export call (one batch, retries excluded), per `exporter`.
pub const EXPORTER_SEND_DURATION: &str = "bridge_exporter_send_duration_seconds";
/// Time from a block's admission to the first call of its exporter's `export`, per
/// `exporter`, observed once per block (retries excluded). It includes the wait for the
/// batch to fill or time out (`batch.timeout`), not a Pinpoint hold window.
pub const PIPELINE_LATENCY: &str = "bridge_pipeline_latency_seconds";
/// Export attempts that will be retried, per `exporter`.
pub const EXPORTER_RETRIES: &str = "bridge_exporter_retries_total";
/// Spans an exporter left out of a batch because they cannot be mapped to its backend's
/// model, per `exporter` and `reason` (`bad_trace_id`, `bad_span_id`, `bad_parent_id`,
/// `end_before_start`). The rest of the batch is still sent.
pub const EXPORTER_SPANS_REJECTED: &str = "bridge_exporter_spans_rejected_total";
/// HTTP requests of HTTP exporters (Zipkin), per `exporter` and `outcome`: the status
/// class (`2xx`, `4xx`, `5xx`, ...) or `timeout`, `connect_error`, `io_error`.
pub const EXPORTER_HTTP_REQUESTS: &str = "bridge_exporter_http_requests_total";
/// OTLP profiles an exporter delivered, per `exporter`.
pub const EXPORTER_PROFILES_SENT: &str = "bridge_exporter_profiles_sent_total";
/// OTLP profiles an exporter gave up on, per `exporter` and `reason`.
pub const EXPORTER_PROFILES_FAILED: &str = "bridge_exporter_profiles_failed_total";
/// OTLP profiles dropped before export, per `exporter` and `reason` (`queue_full`, `shutdown`).
pub const EXPORTER_PROFILES_DROPPED: &str = "bridge_exporter_profiles_dropped_total";

/// Bytes a persistent queue holds on disk (and has reserved for requests being
/// written), per `exporter`.
pub const PERSIST_BYTES: &str = "bridge_persist_bytes";
/// `queue.persistent.max_bytes`, per `exporter`.
pub const PERSIST_CAPACITY_BYTES: &str = "bridge_persist_capacity_bytes";
/// Records (one per admitted request part) a persistent queue wrote, per `exporter`.
pub const PERSIST_RECORDS_WRITTEN: &str = "bridge_persist_records_written_total";
/// Syncs to disk (one per group of concurrent requests with `sync: always`), per `exporter`.
pub const PERSIST_SYNCS: &str = "bridge_persist_syncs_total";
/// Time of one sync to disk, per `exporter`.
pub const PERSIST_SYNC_DURATION: &str = "bridge_persist_sync_duration_seconds";
/// Spans replayed from disk at start, per `exporter`: an upper bound on the duplicates
/// a crash caused (records exported but not yet acknowledged are sent again).
pub const PERSIST_REPLAYED_SPANS: &str = "bridge_persist_replayed_spans_total";
/// Records found damaged (torn or overwritten) and skipped, per `exporter`.
pub const PERSIST_DAMAGED_RECORDS: &str = "bridge_persist_damaged_records_total";
/// Failed writes (disk full, I/O error); each refused its requests with "retry later",
/// per `exporter`.
pub const PERSIST_WRITE_ERRORS: &str = "bridge_persist_write_errors_total";
/// Spans left on disk at shutdown for the next start (instead of dropped), per `exporter`.
pub const PERSIST_KEPT_SPANS: &str = "bridge_persist_kept_spans_total";

/// Requests sent to Pyroscope, per `exporter`, `format` (`folded`, `pprof`, `otlp`) and
/// `outcome` (`ok`, `retry`, `rejected`, `dropped`).
pub const PYROSCOPE_REQUESTS: &str = "bridge_pyroscope_requests_total";
/// Spans whose stack did not fit the per-service cap and were counted under the
/// `[overflow]` stack instead, per `exporter`.
pub const PYROSCOPE_STACKS_OVERFLOW: &str = "bridge_pyroscope_stack_overflow_spans_total";
/// Spans left out of the trace-derived profiles, per `exporter` and `reason`
/// (`max_services`).
pub const PYROSCOPE_SPANS_DROPPED: &str = "bridge_pyroscope_spans_dropped_total";
/// Spans held until their trace settles, per `exporter`.
pub const PYROSCOPE_PENDING_SPANS: &str = "bridge_pyroscope_pending_spans";

/// Spans each route decided on, per `route` (its name, or `default`) and `action`
/// (`export`, `drop`, `sampled_out`).
pub const ROUTE_SPANS: &str = "bridge_route_spans_total";

/// Identity mapping cache lookups that found an entry, per `map`.
pub const ID_CACHE_HITS: &str = "bridge_id_cache_hits_total";
/// Identity mapping cache lookups that found nothing, per `map`.
pub const ID_CACHE_MISSES: &str = "bridge_id_cache_misses_total";
/// Identity mapping cache inserts, per `map`.
pub const ID_CACHE_INSERTS: &str = "bridge_id_cache_inserts_total";
/// Identity mapping cache entries evicted for size or age, per `map`.
pub const ID_CACHE_EVICTIONS: &str = "bridge_id_cache_evictions_total";

/// Spans held by a Pinpoint exporter waiting for their segment's parent, per `exporter`.
pub const PINPOINT_PENDING_SPANS: &str = "bridge_pinpoint_pending_spans";
/// Virtual agents a Pinpoint exporter keeps registered, per `exporter`.
pub const PINPOINT_AGENTS: &str = "bridge_pinpoint_agents";
/// Entry spans emitted without a resolved caller (shown under UNKNOWN), per `exporter`.
pub const PINPOINT_UNRESOLVED_PARENTS: &str = "bridge_pinpoint_unresolved_parent_links_total";
/// Spans a collector reported rejected in `SendSpanBatch`, per `exporter`.
pub const PINPOINT_REJECTED_SPANS: &str = "bridge_pinpoint_rejected_spans_total";
/// Messages dropped because the collector stayed unreachable and the outbox filled,
/// per `exporter`.
pub const PINPOINT_MESSAGES_DROPPED: &str = "bridge_pinpoint_messages_dropped_total";
/// Messages built, per `exporter` and `kind` (`span`, `chunk`).
pub const PINPOINT_MESSAGES: &str = "bridge_pinpoint_messages_total";

/// Header translations served by the admin endpoint, per `outcome` (`ok`, `invalid`).
pub const TRANSLATE_REQUESTS: &str = "bridge_translate_requests_total";

/// Buckets for every `*_duration_seconds` histogram: 50 µs to 10 s.
const DURATION_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Buckets for [`PIPELINE_LATENCY`]: finer around the 2 ms latency target.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
///
/// Later calls (several apps in one test process) share the first recorder.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".to_owned()),
                    DURATION_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(PIPELINE_LATENCY.to_owned()),
                        LATENCY_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's); then
            // our handle renders nothing, which is the embedding program's choice.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(RECEIVER_SPANS_ACCEPTED, "Spans accepted into the pipeline.");
    describe_counter!(
        RECEIVER_SPANS_REFUSED,
        "Spans refused with a retryable status (backpressure)."
    );
    describe_counter!(
        RECEIVER_SPANS_REJECTED,
        "Invalid spans rejected one at a time."
    );
    describe_counter!(
        RECEIVER_REQUESTS_FAILED,
        "Requests rejected whole before any span was read."
    );
    describe_histogram!(
        RECEIVER_REQUEST_DURATION,
        "Time to handle one export request."
    );
    describe_gauge!(QUEUE_SPANS, "Spans queued or in flight per exporter.");
    describe_gauge!(QUEUE_CAPACITY, "Queue capacity in spans per exporter.");
    describe_counter!(EXPORTER_SPANS_SENT, "Spans delivered by an exporter.");
    describe_counter!(EXPORTER_SPANS_FAILED, "Spans an exporter gave up on.");
    describe_counter!(EXPORTER_SPANS_DROPPED, "Spans dropped before export.");
    describe_histogram!(EXPORTER_SEND_DURATION, "Time of one export call.");
    describe_histogram!(
        PIPELINE_LATENCY,
        "Time from a block's admission to its exporter's export call (batch wait included)."
    );
    describe_counter!(EXPORTER_RETRIES, "Export attempts that will be retried.");
    describe_counter!(
        RECEIVER_PROFILES_ACCEPTED,
        "OTLP profiles accepted into the pipeline."
    );
    describe_counter!(
        RECEIVER_PROFILES_REFUSED,
        "OTLP profiles refused with a retryable status (backpressure)."
    );
    describe_counter!(
        RECEIVER_PROFILES_REJECTED,
        "Invalid OTLP profiles rejected one at a time."
    );
    describe_counter!(
        EXPORTER_PROFILES_SENT,
        "OTLP profiles delivered by an exporter."
    );
    describe_counter!(
        EXPORTER_PROFILES_FAILED,
        "OTLP profiles an exporter gave up on."
    );
    describe_counter!(
        EXPORTER_PROFILES_DROPPED,
        "OTLP profiles dropped before export."
    );
    describe_counter!(
        PYROSCOPE_REQUESTS,
        "Requests sent to Pyroscope, by outcome."
    );
    describe_counter!(
        PYROSCOPE_STACKS_OVERFLOW,
        "Spans counted under [overflow]: the per-service stack cap was reached."
    );
    describe_counter!(
        PYROSCOPE_SPANS_DROPPED,
        "Spans left out of trace-derived profiles."
    );
    describe_gauge!(
        PYROSCOPE_PENDING_SPANS,
        "Spans held until their trace settles."
    );
    describe_gauge!(PINPOINT_PENDING_SPANS, "Spans held for parent resolution.");
    describe_gauge!(PINPOINT_AGENTS, "Registered virtual agents.");
    describe_counter!(
        PINPOINT_UNRESOLVED_PARENTS,
        "Entry spans emitted without a resolved caller."
    );
    describe_counter!(PINPOINT_REJECTED_SPANS, "Spans the collector rejected.");
    describe_counter!(
        PINPOINT_MESSAGES_DROPPED,
        "Pinpoint messages dropped from a full outbox."
    );
    describe_counter!(PINPOINT_MESSAGES, "Pinpoint span and chunk messages built.");
    describe_counter!(TRANSLATE_REQUESTS, "Header translations served over HTTP.");
    describe_counter!(
        EXPORTER_SPANS_REJECTED,
        "Spans an exporter could not map to its backend's model."
    );
    describe_counter!(
        EXPORTER_HTTP_REQUESTS,
        "HTTP requests of HTTP exporters, by status class or error."
    );
    describe_counter!(
        ROUTE_SPANS,
        "Spans each route decided on: exported, dropped, or sampled out."
    );
    describe_gauge!(PERSIST_BYTES, "Bytes a persistent queue holds on disk.");
    describe_gauge!(
        PERSIST_CAPACITY_BYTES,
        "The disk a persistent queue may use."
    );
    describe_counter!(PERSIST_RECORDS_WRITTEN, "Records a persistent queue wrote.");
    describe_counter!(PERSIST_SYNCS, "Syncs of a persistent queue to disk.");
    describe_histogram!(PERSIST_SYNC_DURATION, "Time of one sync to disk.");
    describe_counter!(
        PERSIST_REPLAYED_SPANS,
        "Spans replayed from disk at start (an upper bound on crash duplicates)."
    );
    describe_counter!(
        PERSIST_DAMAGED_RECORDS,
        "Damaged records skipped in a persistent queue."
    );
    describe_counter!(
        PERSIST_WRITE_ERRORS,
        "Failed writes of a persistent queue (requests refused, retryable)."
    );
    describe_counter!(
        PERSIST_KEPT_SPANS,
        "Spans left on disk at shutdown for the next start."
    );
    describe_counter!(ID_CACHE_HITS, "Identity cache lookups that hit.");
    describe_counter!(ID_CACHE_MISSES, "Identity cache lookups that missed.");
    describe_counter!(ID_CACHE_INSERTS, "Identity cache inserts.");
    describe_counter!(
        ID_CACHE_EVICTIONS,
        "Identity cache evictions (size or age)."
    );
}
