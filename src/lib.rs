//! otel-pinpoint-bridge: a gateway that receives OpenTelemetry traces (OTLP) and
//! forwards them to Pinpoint, Zipkin and other backends, translating identities between
//! the W3C/OpenTelemetry and Pinpoint worlds.
//!
//! The data path is one pipeline: [`receiver`] → (translate) → [`pipeline`] (route,
//! queue, batch) → [`exporter`]. [`app`] wires it from a [`config::Config`].

pub mod admin;
pub mod app;
pub mod blackhole;
pub mod cli;
pub mod config;
pub mod exporter;
pub mod ids;
pub mod listener;
pub mod loadgen;
pub mod memory;
pub mod pipeline;
pub mod proxy;
pub mod receiver;
pub mod selfmetrics;
pub mod testdata;
