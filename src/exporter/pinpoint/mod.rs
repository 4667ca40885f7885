//! The Pinpoint exporter: OTel spans become Pinpoint agents, spans, span events and
//! span chunks, sent to a Pinpoint collector over its gRPC agent protocol.

pub mod agent;
pub mod codes;
pub mod proto;
pub mod semconv;
