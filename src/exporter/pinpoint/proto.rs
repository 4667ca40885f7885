//! Rust types and gRPC clients generated from `proto/pinpoint/` (package `v1`).
#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("v1");
