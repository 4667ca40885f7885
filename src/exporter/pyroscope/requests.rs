//! The requests Pyroscope gets, built from folded stacks or OTLP profiles. Pure: no I/O,
//! the clock is passed in.
//!
//! - trace-derived stacks: `POST /ingest?format=folded`, one per service and interval,
//!   values in nanoseconds (`sampleRate=1000000000`, type `wall`), `aggregationType=sum`;
//! - OTLP profiles, `mode: pprof`: `POST /ingest?format=pprof`, one per profile, gzipped;
//! - OTLP profiles, `mode: otlp`: `POST /v1development/profiles`, the request as received.
//!
//! Every `/ingest` request has `Content-Type: binary/octet-stream`, as Pyroscope's own
//! clients send it.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use prost::Message;

use super::folded::{self, ServiceKey};
use super::name;
use super::pprof::{self, ConvertError};
use super::transport::Outgoing;

/// `spyName` of every `/ingest` request; Pyroscope shows it as the `pyroscope_spy` label.
pub const SPY_NAME: &str = "otel-pinpoint-bridge";
/// `sampleRate` of trace-derived profiles: one unit is one nanosecond.
const NANOS_RATE: &str = "1000000000";
/// Content type of `/ingest` bodies.
pub const INGEST_CONTENT_TYPE: &str = "binary/octet-stream";
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The `/ingest` request of one service's trace-derived stacks for `[from, until)`
/// (Unix seconds).
#[must_use]
pub fn folded(key: &ServiceKey, lines: &[(String, u64)], from: u64, until: u64) -> Outgoing {
    Outgoing {
        path: "/ingest",
        query: vec![
            (
                "name",
                name::ingest_name(key, Some(name::TRACE_PROFILE_TYPE)),
            ),
            ("from", from.to_string()),
            ("until", until.to_string()),
            ("format", "folded".to_owned()),
            ("sampleRate", NANOS_RATE.to_owned()),
            ("spyName", SPY_NAME.to_owned()),
            ("units", "samples".to_owned()),
            ("aggregationType", "sum".to_owned()),
        ],
        content_type: INGEST_CONTENT_TYPE,
        gzip: false,
        body: Bytes::from(folded::folded_body(lines)),
    }
}

/// The request that forwards `req` as received.
#[must_use]
pub fn otlp(req: &ExportProfilesServiceRequest) -> Outgoing {
    Outgoing {
        path: "/v1development/profiles",
        query: Vec::new(),
        content_type: "application/x-protobuf",
        gzip: true,
        body: Bytes::from(req.encode_to_vec()),
    }
}

/// One `/ingest?format=pprof` request per profile of `req`, and the profiles that did
/// not convert (receivers reject those before they get here). A profile without a
/// time counts from `now_secs`.
#[must_use]
pub fn pprof(
    req: &ExportProfilesServiceRequest,
    label_keys: &[String],
    now_secs: u64,
) -> (Vec<Outgoing>, Vec<ConvertError>) {
    let (mut out, mut failed) = (Vec::new(), Vec::new());
    let Some(dict) = req.dictionary.as_ref() else {
        return (out, failed);
    };
    for rp in &req.resource_profiles {
        let attrs = rp.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        let key = folded::service_key(attrs, label_keys);
        for p in rp.scope_profiles.iter().flat_map(|s| &s.profiles) {
            let profile = match pprof::convert(p, dict) {
                Ok(x) => x,
                Err(e) => {
                    failed.push(e);
                    continue;
                }
            };
            let (from, until) = if p.time_unix_nano == 0 {
                (now_secs, now_secs + p.duration_nano / NANOS_PER_SECOND)
            } else {
                (
                    p.time_unix_nano / NANOS_PER_SECOND,
                    p.time_unix_nano.saturating_add(p.duration_nano) / NANOS_PER_SECOND,
                )
            };
            out.push(Outgoing {
                path: "/ingest",
                query: vec![
                    ("name", name::ingest_name(&key, None)),
                    ("from", from.to_string()),
                    ("until", until.max(from + 1).to_string()),
                    ("format", "pprof".to_owned()),
                    ("sampleRate", sample_rate(&profile).to_string()),
                    ("spyName", SPY_NAME.to_owned()),
                ],
                content_type: INGEST_CONTENT_TYPE,
                gzip: true,
                body: Bytes::from(profile.encode_to_vec()),
            });
        }
    }
    (out, failed)
}

/// Samples per second of a profile whose period is in nanoseconds; Pyroscope's default
/// (100) otherwise. Pyroscope reads the pprof itself; this only fills the parameter.
fn sample_rate(p: &pprof::Profile) -> u64 {
    let unit = p
        .period_type
        .and_then(|t| p.string_table.get(usize::try_from(t.unit).ok()?));
    match (unit.map(String::as_str), u64::try_from(p.period)) {
        (Some("nanoseconds"), Ok(period)) if period > 0 => (NANOS_PER_SECOND / period).max(1),
        _ => 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::profiles::v1development::{
        Profile, ProfilesDictionary, ResourceProfiles, Sample, ScopeProfiles, Stack, ValueType,
    };

    fn query(r: &Outgoing) -> Vec<(&str, &str)> {
        r.query.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn folded_request_shape() {
        let key = ServiceKey {
            service: "shop.api".into(),
            labels: vec![("deployment.environment".into(), "prod".into())],
        };
        let r = folded(&key, &[("GET /;db".into(), 5)], 100, 110);
        assert_eq!(
            query(&r),
            vec![
                (
                    "name",
                    "shop.api.wall{service_name=shop.api,deployment_environment=prod}"
                ),
                ("from", "100"),
                ("until", "110"),
                ("format", "folded"),
                ("sampleRate", "1000000000"),
                ("spyName", SPY_NAME),
                ("units", "samples"),
                ("aggregationType", "sum"),
            ]
        );
        assert_eq!(&r.body[..], b"GET /;db 5\n");
        assert_eq!(
            (r.path, r.content_type, r.gzip),
            ("/ingest", INGEST_CONTENT_TYPE, false)
        );
    }

    fn profile(time: u64, period: i64, unit: i32, stack: i32) -> Profile {
        let vt = Some(ValueType {
            type_strindex: 1,
            unit_strindex: unit,
        });
        Profile {
            sample_type: vt,
            period_type: vt,
            period,
            time_unix_nano: time,
            duration_nano: 10 * NANOS_PER_SECOND,
            samples: vec![Sample {
                stack_index: stack,
                values: vec![1],
                ..Sample::default()
            }],
            ..Profile::default()
        }
    }

    #[test]
    fn pprof_requests_one_per_profile() {
        let req = ExportProfilesServiceRequest {
            resource_profiles: vec![ResourceProfiles {
                scope_profiles: vec![ScopeProfiles {
                    profiles: vec![
                        profile(1_700_000_000 * NANOS_PER_SECOND, 10_000_000, 2, 0),
                        profile(0, 3, 3, 0),
                        profile(0, 1, 2, 7),
                    ],
                    ..ScopeProfiles::default()
                }],
                ..ResourceProfiles::default()
            }],
            dictionary: Some(ProfilesDictionary {
                string_table: vec![
                    String::new(),
                    "cpu".into(),
                    "nanoseconds".into(),
                    "x".into(),
                ],
                stack_table: vec![Stack::default()],
                ..ProfilesDictionary::default()
            }),
        };
        let (out, failed) = pprof(&req, &[], 42);
        assert_eq!(
            failed.len(),
            1,
            "the third profile's stack 7 does not exist"
        );
        assert_eq!(
            query(&out[0]),
            vec![
                ("name", "unknown_service{service_name=unknown_service}"),
                ("from", "1700000000"),
                ("until", "1700000010"),
                ("format", "pprof"),
                ("sampleRate", "100"),
                ("spyName", SPY_NAME),
            ]
        );
        // No time: counted from now; a period that is not in nanoseconds: rate 100.
        let q = query(&out[1]);
        assert_eq!(
            (q[1], q[2], q[4]),
            (("from", "42"), ("until", "52"), ("sampleRate", "100"))
        );
        assert!(out.iter().all(|r| r.gzip && r.path == "/ingest"));
        let decoded = pprof::Profile::decode(&out[0].body[..]).expect("pprof");
        assert_eq!(decoded.sample.len(), 1);
        let o = otlp(&req);
        assert_eq!(
            (o.path, o.content_type),
            ("/v1development/profiles", "application/x-protobuf")
        );
        assert_eq!(
            ExportProfilesServiceRequest::decode(&o.body[..]).expect("otlp"),
            req
        );
    }
}
