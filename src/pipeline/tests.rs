//! Tests of the parent module.

use super::*;
use crate::config::{ExporterKind, QueueConfig};
use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

fn exporter(name: &str, max_spans: usize, on_full: OnFull) -> ExporterConfig {
    ExporterConfig {
        name: name.to_owned(),
        queue: QueueConfig {
            max_spans,
            on_full,
            ..QueueConfig::default()
        },
        batch: BatchConfig {
            max_spans: 1,
            ..BatchConfig::default()
        },
        retry: RetryConfig::default(),
        kind: ExporterKind::Null,
    }
}

fn block(n: usize) -> Block {
    Block::new(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span::default(); n],
            ..Default::default()
        }],
        ..Default::default()
    }])
}

#[test]
fn admission_is_all_or_nothing() {
    let cfg = [
        exporter("a", 10, OnFull::Refuse),
        exporter("b", 4, OnFull::Refuse),
    ];
    let (p, _rx) = Pipeline::new(&cfg, Router::all(2));
    assert_eq!(p.submit(block(3)), Ok(()));
    // b has 1 span of room left: the next 3-span block is refused by b, and a keeps
    // only what it had before.
    assert_eq!(
        p.submit(block(3)),
        Err(Refused::QueueFull {
            exporter: "b".into()
        })
    );
    let stats = p.stats();
    assert_eq!((stats[0].queued(), stats[1].queued()), (3, 3));
}

#[test]
fn drop_policy_isolates_the_full_exporter() {
    let cfg = [
        exporter("a", 10, OnFull::Refuse),
        exporter("debug", 2, OnFull::Drop),
    ];
    let (p, _rx) = Pipeline::new(&cfg, Router::all(2));
    assert_eq!(p.submit(block(2)), Ok(()));
    assert_eq!(p.submit(block(2)), Ok(()));
    let stats = p.stats();
    assert_eq!((stats[0].queued(), stats[1].queued()), (4, 2));
    assert_eq!(stats[1].dropped.load(Ordering::Relaxed), 2);
}

#[test]
fn oversized_block_enters_an_empty_queue() {
    let (p, _rx) = Pipeline::new(&[exporter("a", 5, OnFull::Refuse)], Router::all(1));
    assert_eq!(p.submit(block(50)), Ok(()));
    assert_eq!(p.stats()[0].queued(), 5);
    assert!(p.submit(block(1)).is_err());
}

fn pyroscope(name: &str, max_spans: usize) -> ExporterConfig {
    let cfg = serde_saphyr::from_str("endpoint: http://127.0.0.1:1\n").expect("config");
    ExporterConfig {
        kind: ExporterKind::Pyroscope(Box::new(cfg)),
        ..exporter(name, max_spans, OnFull::Refuse)
    }
}

pub(super) fn profiles(samples: usize) -> ProfileBlock {
    use opentelemetry_proto::tonic::profiles::v1development::{
        Profile, ResourceProfiles, Sample, ScopeProfiles,
    };
    ProfileBlock::new(ExportProfilesServiceRequest {
        resource_profiles: vec![ResourceProfiles {
            scope_profiles: vec![ScopeProfiles {
                profiles: vec![Profile {
                    samples: vec![Sample::default(); samples],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
        dictionary: None,
    })
}

#[test]
fn profiles_reach_only_exporters_that_take_them() {
    let cfg = [exporter("spans", 10, OnFull::Refuse), pyroscope("pyro", 10)];
    let (p, _rx) = Pipeline::new(&cfg, Router::all(2));
    assert!(p.takes_profiles());
    assert_eq!(p.submit_profiles(profiles(3)), Ok(1));
    let stats = p.stats();
    assert_eq!((stats[0].queued(), stats[1].queued()), (0, 3));
    // Room is counted in samples, and a full queue refuses like it does for spans.
    assert_eq!(
        p.submit_profiles(profiles(8)),
        Err(Refused::QueueFull {
            exporter: "pyro".into()
        })
    );
    assert_eq!(p.submit_profiles(profiles(0)).map(|_| ()), Ok(()));

    let (p, _rx) = Pipeline::new(&cfg[..1], Router::all(1));
    assert!(!p.takes_profiles());
    assert_eq!(p.submit_profiles(profiles(3)), Ok(0));
    p.close();
    assert_eq!(p.submit_profiles(profiles(1)), Err(Refused::ShuttingDown));
}

#[test]
fn closed_pipeline_refuses_and_empty_blocks_pass() {
    let (p, _rx) = Pipeline::new(&[exporter("a", 5, OnFull::Refuse)], Router::all(1));
    assert_eq!(p.submit(block(0)), Ok(()));
    p.close();
    assert_eq!(p.submit(block(1)), Err(Refused::ShuttingDown));
}
