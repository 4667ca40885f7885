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

/// Round trips to the shared id store (Redis), per `outcome` (`ok`, `error`, `timeout`).
pub const ID_STORE_ROUND_TRIPS: &str = "bridge_id_store_round_trips_total";
/// Time of one round trip to the shared id store (one pipelined batch).
pub const ID_STORE_ROUND_TRIP_DURATION: &str = "bridge_id_store_round_trip_duration_seconds";
/// Lookups the shared id store answered, per `map` and `outcome` (`hit`, `miss`).
pub const ID_STORE_LOOKUPS: &str = "bridge_id_store_lookups_total";
/// Writes and lookups to the shared id store, per `map` and `outcome` (`written`,
/// `coalesced` into a queued write of the same key, `dropped` because the queue was
/// full, `error` when the store refused the command).
pub const ID_STORE_OPS: &str = "bridge_id_store_ops_total";
/// Shared id store failures, per `reason` (`connection`, `timeout`, `server`, `malformed`).
pub const ID_STORE_ERRORS: &str = "bridge_id_store_errors_total";
/// Lookups and writes waiting for a round trip to the shared id store.
pub const ID_STORE_QUEUED: &str = "bridge_id_store_queued_ops";
/// 1 when the last round trip to the shared id store succeeded, else 0.
pub const ID_STORE_UP: &str = "bridge_id_store_up";

/// Spans held by a Pinpoint exporter waiting for their segment's parent, per `exporter`.
pub const PINPOINT_PENDING_SPANS: &str = "bridge_pinpoint_pending_spans";
/// Virtual agents a Pinpoint exporter keeps registered, per `exporter`.
pub const PINPOINT_AGENTS: &str = "bridge_pinpoint_agents";
/// Entry spans emitted under UNKNOWN because their caller's spans never arrived within
/// the hold (real cross-service failures only), per `exporter`.
pub const PINPOINT_UNRESOLVED_PARENTS: &str = "bridge_pinpoint_unresolved_parent_links_total";
/// Spans a collector reported rejected in `SendSpanBatch`, per `exporter`.
pub const PINPOINT_REJECTED_SPANS: &str = "bridge_pinpoint_rejected_spans_total";
/// Messages dropped because the collector stayed unreachable and the outbox filled,
/// per `exporter`.
pub const PINPOINT_MESSAGES_DROPPED: &str = "bridge_pinpoint_messages_dropped_total";
/// Messages built, per `exporter` and `kind` (`span`, `chunk`).
pub const PINPOINT_MESSAGES: &str = "bridge_pinpoint_messages_total";
/// Parent links decided, per `exporter` and `outcome` (`tracestate`, `local_cache`,
/// `shared_store`, `unresolved_remote`, `local_parent_missing`).
pub const PINPOINT_PARENT_LINKS: &str = "bridge_pinpoint_parent_links_total";
/// Orphan spans (their local parent went to another instance) handed off through the
/// shared store, per `exporter` and `outcome` (`published`, `claimed`, `handed_off`,
/// `emitted_locally`).
pub const PINPOINT_ORPHANS: &str = "bridge_pinpoint_orphans_total";
/// With a shared store: how long a trace waited, from its latest arrival, for the answer
/// to its claim of other instances' orphans before it could be emitted, per `exporter`
/// (seconds; the latency the store adds to export).
pub const PINPOINT_HANDOFF_WAIT: &str = "bridge_pinpoint_handoff_wait_seconds";
/// Approximate bytes held for parent resolution (pinned blocks and copied spans), per
/// `exporter`.
pub const PINPOINT_PENDING_BYTES: &str = "bridge_pinpoint_pending_bytes";
/// Traces emitted before their hold ran out because `max_pending_spans` or
/// `max_pending_bytes` was reached, per `exporter`.
pub const PINPOINT_EARLY_TRACES: &str = "bridge_pinpoint_early_traces_total";

// Pinpoint receiver (Pinpoint agents in, OTLP out) and its tee to the upstream collector.
/// Calls from Pinpoint agents, per `method`.
pub const PINPOINT_RECEIVER_CALLS: &str = "bridge_pinpoint_receiver_calls_total";
/// Agent calls refused (INVALID_ARGUMENT), per `method` and `reason` (`headers`).
pub const PINPOINT_RECEIVER_CALLS_REJECTED: &str = "bridge_pinpoint_receiver_calls_rejected_total";
/// Messages received from Pinpoint agents, per `method`.
pub const PINPOINT_RECEIVER_MESSAGES: &str = "bridge_pinpoint_receiver_messages_total";
/// Messages that could not be used, per `method` and `reason` (`malformed`, `version`,
/// `no_transaction_id`, `invalid_transaction_id`, `empty`).
pub const PINPOINT_RECEIVER_MESSAGES_INVALID: &str =
    "bridge_pinpoint_receiver_messages_invalid_total";
/// Metadata ids refused because the agent holds the maximum, per `kind` (method).
pub const PINPOINT_RECEIVER_METADATA_REFUSED: &str =
    "bridge_pinpoint_receiver_metadata_refused_total";
/// OTLP spans made from Pinpoint spans and chunks and taken by the pipeline.
pub const PINPOINT_RECEIVER_SPANS_CONVERTED: &str =
    "bridge_pinpoint_receiver_spans_converted_total";
/// Placeholders used because metadata or an async chunk's span never arrived in time,
/// per `kind` (`api`, `string`, `sql`, `async_parent`).
pub const PINPOINT_RECEIVER_PLACEHOLDERS: &str = "bridge_pinpoint_receiver_placeholders_total";
/// Span messages converted at once (with placeholders) because the hold was full.
pub const PINPOINT_RECEIVER_HOLD_OVERFLOW: &str = "bridge_pinpoint_receiver_hold_overflow_total";
/// Span messages waiting for metadata or for their span.
pub const PINPOINT_RECEIVER_HELD: &str = "bridge_pinpoint_receiver_held_messages";
/// Messages handed to a live upstream call by the tee, per `method`.
pub const PINPOINT_TEE_MESSAGES_FORWARDED: &str = "bridge_pinpoint_tee_messages_forwarded_total";
/// Messages the tee dropped, per `method` and `reason` (`buffer_full`, `upstream_unavailable`).
pub const PINPOINT_TEE_MESSAGES_DROPPED: &str = "bridge_pinpoint_tee_messages_dropped_total";
/// Upstream calls that ended with an error, per `method`.
pub const PINPOINT_TEE_CALLS_FAILED: &str = "bridge_pinpoint_tee_calls_failed_total";

/// Header translations served by the admin endpoint, per `outcome` (`ok`, `invalid`).
pub const TRANSLATE_REQUESTS: &str = "bridge_translate_requests_total";

/// Open connections of a listener, per `listener` (`otlp_grpc`, `otlp_http`, `admin`).
pub const LISTENER_CONNECTIONS: &str = "bridge_listener_connections";
/// Connections a listener accepted, per `listener`.
pub const LISTENER_CONNECTIONS_ACCEPTED: &str = "bridge_listener_connections_accepted_total";
/// Connections closed at once, per `listener` and `reason` (`limit`: at
/// `limits.max_connections` with every connection busy; `accept_error`).
pub const LISTENER_CONNECTIONS_REFUSED: &str = "bridge_listener_connections_refused_total";
/// Connections the listener closed, per `listener` and `reason` (`evicted`: idle, closed
/// to make room at the limit; `header_timeout`, `idle_timeout`, `tls_error`).
pub const LISTENER_CONNECTIONS_CLOSED: &str = "bridge_listener_connections_closed_total";
/// Request bodies not received within `limits.body_read_timeout`, per `listener`.
pub const LISTENER_BODY_TIMEOUTS: &str = "bridge_listener_body_timeouts_total";
/// Requests refused for missing or invalid credentials (401 / UNAUTHENTICATED), per
/// `listener` and `reason` (`missing`, `invalid`).
pub const LISTENER_AUTH_FAILURES: &str = "bridge_listener_auth_failures_total";
/// Bytes allocated on the heap (live), as the soft memory limit sees it.
pub const MEMORY_HEAP: &str = "bridge_memory_heap_bytes";
/// The soft memory limit in bytes (`memory.limit`), when there is one.
pub const MEMORY_LIMIT: &str = "bridge_memory_limit_bytes";
/// Bytes (decoded) waiting in or being exported from an exporter's queue, per `exporter`.
pub const QUEUE_BYTES: &str = "bridge_queue_bytes";
/// Queue capacity in bytes per exporter (`queue.max_bytes`).
pub const QUEUE_CAPACITY_BYTES: &str = "bridge_queue_capacity_bytes";
/// `otlp` exporter: spans delivered by balanced endpoint workers, per `exporter`.
pub const OTLP_DELIVERED: &str = "bridge_otlp_delivered_spans_total";
/// `otlp` exporter: spans moved to another endpoint, per `exporter` and `reason`
/// (`membership`: their endpoint left; `endpoint_down`: it failed `reroute_after`).
pub const OTLP_SPANS_MOVED: &str = "bridge_otlp_spans_moved_total";
/// `otlp` exporter: rebuilds of the trace-id ring, per `exporter`.
pub const OTLP_RING_CHANGES: &str = "bridge_otlp_ring_changes_total";
/// `otlp` exporter: endpoints per `exporter` and `state` (`up`, `down`).
pub const OTLP_ENDPOINTS: &str = "bridge_otlp_endpoints";
/// `otlp` exporter: spans queued or in flight in the endpoint queues, per `exporter`.
pub const OTLP_ENDPOINT_QUEUE: &str = "bridge_otlp_endpoint_queue_spans";
/// `otlp` exporter: DNS resolutions of `resolve`, per `exporter` and `outcome`
/// (`ok`, `empty`, `error`).
pub const OTLP_RESOLVE: &str = "bridge_otlp_resolve_total";
/// `otlp` exporter (Pinpoint option): spans whose invalid `trace_state` was left as it
/// was (no `pp` written), per `exporter`.
pub const OTLP_BAD_TRACE_STATE: &str = "bridge_otlp_bad_trace_state_spans_total";
/// Sidecar proxy requests, per `listener` (`ingress`, `egress`) and `outcome` (status
/// class `2xx`..., or `timeout`, `upstream_error`, `bad_request`).
pub const PROXY_REQUESTS: &str = "bridge_proxy_requests_total";
/// Sidecar proxy body bytes, per `listener` and `direction` (`request`, `response`).
pub const PROXY_BYTES: &str = "bridge_proxy_bytes_total";
/// Sidecar proxy time to the upstream's response headers, per `listener`.
pub const PROXY_REQUEST_DURATION: &str = "bridge_proxy_request_duration_seconds";
/// The part of [`PROXY_REQUEST_DURATION`] the proxy itself added (everything but the
/// wait for the upstream), per `listener`.
pub const PROXY_ADDED_LATENCY: &str = "bridge_proxy_added_latency_seconds";
/// Open client connections of a proxy listener, per `listener`.
pub const PROXY_CONNECTIONS: &str = "bridge_proxy_connections";
/// What the proxy did with a request's trace headers, per `listener` and `action`
/// (`pinpoint_to_w3c`, `w3c_to_pinpoint`, `w3c_kept`, `started`, `none`, `bad`).
pub const PROXY_TRACE_HEADERS: &str = "bridge_proxy_trace_headers_total";
/// Trace headers the proxy could not read (the request is forwarded anyway), per
/// `listener` and `reason` (`traceparent`, `tracestate`, `b3`, `pinpoint`, `pp`, `ppb`,
/// `duplicate_header`, `not_text`, `other`).
pub const PROXY_BAD_TRACE_HEADERS: &str = "bridge_proxy_bad_trace_headers_total";
/// How the egress found the calling segment (`Pinpoint-pSpanID`), per `source`
/// (`confirmed`, `single`, `tracestate_only`; undecidable: `ambiguous`, `unknown`).
pub const PROXY_EGRESS_SEGMENTS: &str = "bridge_proxy_egress_segments_total";

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

/// Buckets for [`PROXY_ADDED_LATENCY`]: 10 µs to 100 ms.
const PROXY_LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1,
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
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(PROXY_ADDED_LATENCY.to_owned()),
                        PROXY_LATENCY_BUCKETS,
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
        "Entry spans emitted under UNKNOWN: the caller never arrived within the hold."
    );
    describe_counter!(
        PINPOINT_PARENT_LINKS,
        "Segment parent links decided, by outcome."
    );
    describe_histogram!(
        PINPOINT_HANDOFF_WAIT,
        "Time a trace waited for the answer to its claim of orphans (shared store only)."
    );
    describe_counter!(
        PINPOINT_ORPHANS,
        "Orphan spans handed between instances through the shared store, by outcome."
    );
    describe_gauge!(
        PINPOINT_PENDING_BYTES,
        "Approximate bytes held for parent resolution."
    );
    describe_counter!(
        PINPOINT_EARLY_TRACES,
        "Traces emitted early because the pending caps were reached."
    );
    describe_counter!(PINPOINT_REJECTED_SPANS, "Spans the collector rejected.");
    describe_counter!(
        PINPOINT_MESSAGES_DROPPED,
        "Pinpoint messages dropped from a full outbox."
    );
    describe_counter!(PINPOINT_MESSAGES, "Pinpoint span and chunk messages built.");
    describe_counter!(PINPOINT_RECEIVER_CALLS, "Calls from Pinpoint agents.");
    describe_counter!(
        PINPOINT_RECEIVER_CALLS_REJECTED,
        "Pinpoint agent calls refused for their headers."
    );
    describe_counter!(PINPOINT_RECEIVER_MESSAGES, "Messages from Pinpoint agents.");
    describe_counter!(
        PINPOINT_RECEIVER_MESSAGES_INVALID,
        "Pinpoint agent messages that could not be used."
    );
    describe_counter!(
        PINPOINT_RECEIVER_METADATA_REFUSED,
        "Pinpoint metadata ids refused at the per-agent limit."
    );
    describe_counter!(
        PINPOINT_RECEIVER_SPANS_CONVERTED,
        "OTLP spans made from Pinpoint spans and chunks."
    );
    describe_counter!(
        PINPOINT_RECEIVER_PLACEHOLDERS,
        "Placeholders used for metadata or async parents that did not arrive in time."
    );
    describe_counter!(
        PINPOINT_RECEIVER_HOLD_OVERFLOW,
        "Pinpoint span messages converted at once because the hold was full."
    );
    describe_gauge!(
        PINPOINT_RECEIVER_HELD,
        "Pinpoint span messages waiting for metadata or their span."
    );
    describe_counter!(
        PINPOINT_TEE_MESSAGES_FORWARDED,
        "Messages the tee handed to the upstream collector."
    );
    describe_counter!(
        PINPOINT_TEE_MESSAGES_DROPPED,
        "Messages the tee dropped (buffer full, upstream unavailable)."
    );
    describe_counter!(
        PINPOINT_TEE_CALLS_FAILED,
        "Upstream collector calls of the tee that failed."
    );
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
    describe_gauge!(LISTENER_CONNECTIONS, "Open connections per listener.");
    describe_counter!(
        LISTENER_CONNECTIONS_ACCEPTED,
        "Connections a listener accepted."
    );
    describe_counter!(
        LISTENER_CONNECTIONS_REFUSED,
        "Connections closed at once (limit reached with every connection busy, or accept error)."
    );
    describe_counter!(
        LISTENER_CONNECTIONS_CLOSED,
        "Connections a listener closed: evicted at the limit, header/idle timeout, TLS error."
    );
    describe_counter!(
        LISTENER_BODY_TIMEOUTS,
        "Request bodies not received within the body read timeout."
    );
    describe_counter!(
        LISTENER_AUTH_FAILURES,
        "Requests refused for missing or invalid credentials."
    );
    describe_gauge!(MEMORY_HEAP, "Bytes allocated on the heap (live).");
    describe_gauge!(MEMORY_LIMIT, "The soft memory limit in bytes.");
    describe_gauge!(
        QUEUE_BYTES,
        "Decoded bytes queued or in flight per exporter."
    );
    describe_gauge!(
        QUEUE_CAPACITY_BYTES,
        "Queue capacity in bytes per exporter."
    );
    describe_counter!(
        OTLP_DELIVERED,
        "Spans delivered by balanced OTLP endpoints."
    );
    describe_counter!(OTLP_SPANS_MOVED, "Spans moved to another OTLP endpoint.");
    describe_counter!(OTLP_RING_CHANGES, "Rebuilds of the trace-id ring.");
    describe_gauge!(OTLP_ENDPOINTS, "Balanced OTLP endpoints, up or down.");
    describe_gauge!(OTLP_ENDPOINT_QUEUE, "Spans in the OTLP endpoint queues.");
    describe_counter!(OTLP_RESOLVE, "DNS resolutions of balanced OTLP endpoints.");
    describe_counter!(
        OTLP_BAD_TRACE_STATE,
        "Spans whose invalid trace_state got no pp entry."
    );
    describe_counter!(
        PROXY_REQUESTS,
        "Sidecar proxy requests, by listener and outcome."
    );
    describe_counter!(
        PROXY_BYTES,
        "Sidecar proxy body bytes, by listener and direction."
    );
    describe_histogram!(
        PROXY_REQUEST_DURATION,
        "Sidecar proxy time to the upstream's response headers."
    );
    describe_histogram!(
        PROXY_ADDED_LATENCY,
        "Time the sidecar proxy added to a request (upstream wait excluded)."
    );
    describe_gauge!(
        PROXY_CONNECTIONS,
        "Open client connections per proxy listener."
    );
    describe_counter!(
        PROXY_TRACE_HEADERS,
        "What the proxy did with a request's trace headers."
    );
    describe_counter!(
        PROXY_BAD_TRACE_HEADERS,
        "Unreadable trace headers, by reason (the request is still forwarded)."
    );
    describe_counter!(
        PROXY_EGRESS_SEGMENTS,
        "How the egress found the calling segment for Pinpoint-pSpanID."
    );
    describe_counter!(ID_CACHE_HITS, "Identity cache lookups that hit.");
    describe_counter!(ID_CACHE_MISSES, "Identity cache lookups that missed.");
    describe_counter!(ID_CACHE_INSERTS, "Identity cache inserts.");
    describe_counter!(
        ID_CACHE_EVICTIONS,
        "Identity cache evictions (size or age)."
    );
    describe_counter!(
        ID_STORE_ROUND_TRIPS,
        "Round trips to the shared id store, by outcome."
    );
    describe_histogram!(
        ID_STORE_ROUND_TRIP_DURATION,
        "Time of one pipelined round trip to the shared id store."
    );
    describe_counter!(
        ID_STORE_LOOKUPS,
        "Shared id store lookups answered, by map and hit/miss."
    );
    describe_counter!(
        ID_STORE_OPS,
        "Shared id store writes and dropped commands, by map and outcome."
    );
    describe_counter!(ID_STORE_ERRORS, "Shared id store failures, by reason.");
    describe_gauge!(
        ID_STORE_QUEUED,
        "Lookups and writes waiting for the shared id store."
    );
    describe_gauge!(
        ID_STORE_UP,
        "1 when the last shared id store round trip succeeded."
    );
}

mod register;
pub use register::{register_initial, register_proxy};
