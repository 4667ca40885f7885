//! The Zipkin exporter against an in-process capture server (axum on 127.0.0.1:0):
//!
//! - real spans from the OpenTelemetry Python SDK go to the bridge over OTLP, and the same
//!   span objects go through the SDK's own Zipkin exporter (the reference translation);
//!   the two outputs must agree field by field, except for the differences listed (and
//!   checked) in `reference::reconcile`, which follow from the spec's decisions;
//! - every span the bridge sends validates against `../shared/ref/zipkin2-api.yaml` with
//!   a real JSON-schema validator, and a deliberately invalid body proves it can fail;
//! - the proto3 body decodes with a descriptor built from zipkin.proto's field numbers
//!   (Python protobuf, independent of our encoder) to the same spans as the JSON body;
//! - the file exporter's `zipkin_json` format writes the same spans;
//! - retries: 503 + Retry-After then 202, 400 not retried, connection refused retried.

#[path = "../common/mod.rs"]
mod common;
mod reference;
mod retries;
