//! The status page's memory: every few seconds the gateway's own metrics are read from
//! the Prometheus recorder and the series the page shows are kept in a ring buffer of
//! fixed length (15 minutes), from which the page draws rates and sparklines. Reading
//! the rendered metrics, rather than each component's internals, keeps the page in step
//! with `/metrics` and lets a new component's `bridge_*` series appear without wiring.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::selfmetrics as m;

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: 15 minutes.
pub const SAMPLES: usize = 180;
/// Distinct series kept at most (metric labels are low-cardinality, this is a guard).
const MAX_SERIES: usize = 512;

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format (what our recorder renders): comments
/// and histogram buckets are skipped; a line that does not parse is skipped.
#[must_use]
pub fn parse(text: &str) -> Vec<Line<'_>> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Line<'_>> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.find('{') {
        Some(i) => (&head[..i], labels(head[i + 1..].strip_suffix('}')?)?),
        None => (head, Vec::new()),
    };
    if name.ends_with("_bucket") || name.ends_with("_sum") || name.ends_with("_count") {
        return None;
    }
    Some(Line {
        name,
        labels,
        value,
    })
}

fn labels(mut s: &str) -> Option<Vec<(&str, String)>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        out.push((key.trim_start_matches(','), value));
        s = rest[end + 1..].trim_start_matches(',');
    }
    Some(out)
}

fn label<'a>(l: &'a Line<'_>, key: &str) -> &'a str {
    l.labels
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// The page's series key of a metric line (`kind:name:what`), or `None` for a series
/// the page does not show. Several lines may share a key (reasons are summed).
#[must_use]
pub fn key_of(l: &Line<'_>) -> Option<String> {
    let rx = |what: &str| Some(format!("rx:{}:{what}", label(l, "receiver")));
    let ex = |what: &str| Some(format!("ex:{}:{what}", label(l, "exporter")));
    match l.name {
        m::RECEIVER_SPANS_ACCEPTED => rx("accepted"),
        m::RECEIVER_SPANS_REFUSED => rx("refused"),
        m::RECEIVER_SPANS_REJECTED => rx("rejected"),
        m::RECEIVER_REQUESTS_FAILED => rx("failed_requests"),
        m::EXPORTER_SPANS_SENT => ex("sent"),
        m::EXPORTER_SPANS_FAILED => ex("failed"),
        m::EXPORTER_SPANS_DROPPED => ex("dropped"),
        m::EXPORTER_RETRIES => ex("retries"),
        m::QUEUE_SPANS => ex("queued"),
        m::ROUTE_SPANS => Some(format!(
            "route:{}:{}",
            label(l, "route"),
            label(l, "action")
        )),
        m::ID_CACHE_HITS => Some(format!("ids:{}:hits", label(l, "map"))),
        m::ID_CACHE_MISSES => Some(format!("ids:{}:misses", label(l, "map"))),
        name if name.starts_with("bridge_pinpoint_") => {
            let rest: Vec<String> = l
                .labels
                .iter()
                .filter(|(k, _)| *k != "exporter")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let what = name.trim_start_matches("bridge_pinpoint_");
            Some(if rest.is_empty() {
                format!("pp:{}:{what}", label(l, "exporter"))
            } else {
                format!("pp:{}:{what}{{{}}}", label(l, "exporter"), rest.join(","))
            })
        }
        name if name.starts_with("bridge_id_store_") => {
            let rest: Vec<String> = l.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let what = name.trim_start_matches("bridge_id_store_");
            Some(if rest.is_empty() {
                format!("store::{what}")
            } else {
                format!("store::{what}{{{}}}", rest.join(","))
            })
        }
        _ => None,
    }
}

/// The values of one moment, by series key.
#[must_use]
pub fn select(text: &str) -> HashMap<String, f64> {
    let mut out: HashMap<String, f64> = HashMap::new();
    for l in parse(text) {
        if let Some(k) = key_of(&l) {
            *out.entry(k).or_default() += l.value;
        }
    }
    out
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[derive(Debug, Default)]
struct Ring {
    times: VecDeque<f64>,
    keys: Vec<String>,
    index: HashMap<String, usize>,
    /// One column per key, aligned with `times`; NaN where a key had no value.
    columns: Vec<VecDeque<f64>>,
    /// Per key: the last value seen and when it last changed (for "last success").
    changed: HashMap<String, (f64, f64)>,
}

/// The ring buffer of samples.
#[derive(Debug, Default)]
pub struct History {
    ring: Mutex<Ring>,
}

/// What the page gets: the sample times and each series' values, oldest first, plus
/// when each series last changed.
#[derive(Debug, serde::Serialize)]
pub struct Series {
    pub interval_s: f64,
    pub times: Vec<f64>,
    pub values: HashMap<String, Vec<Option<f64>>>,
    pub changed_at: HashMap<String, f64>,
}

impl History {
    /// Adds one sample taken at `at` (Unix seconds).
    pub fn push(&self, at: f64, values: &HashMap<String, f64>) {
        let Ok(mut r) = self.ring.lock() else { return };
        let r = &mut *r;
        if r.times.len() == SAMPLES {
            r.times.pop_front();
            for c in &mut r.columns {
                c.pop_front();
            }
        }
        r.times.push_back(at);
        let len = r.times.len();
        for (k, v) in values {
            if !r.index.contains_key(k) && r.keys.len() < MAX_SERIES {
                r.index.insert(k.clone(), r.keys.len());
                r.keys.push(k.clone());
                r.columns.push(VecDeque::from(vec![f64::NAN; len - 1]));
            }
            if let Some(&i) = r.index.get(k) {
                r.columns[i].push_back(*v);
            }
        }
        for c in &mut r.columns {
            if c.len() < len {
                c.push_back(f64::NAN);
            }
        }
        Self::note_changes(r, at, values);
    }

    /// Notes values seen between samples (each page refresh), so "last changed" times
    /// are as fresh as the page.
    pub fn observe(&self, at: f64, values: &HashMap<String, f64>) {
        if let Ok(mut r) = self.ring.lock() {
            Self::note_changes(&mut r, at, values);
        }
    }

    fn note_changes(r: &mut Ring, at: f64, values: &HashMap<String, f64>) {
        let room = r.changed.len() < MAX_SERIES;
        for (k, v) in values {
            match r.changed.get_mut(k) {
                Some((last, when)) if (*last - *v).abs() > f64::EPSILON => {
                    *last = *v;
                    *when = at;
                }
                Some(_) => {}
                // First sight: the value may have changed at some unknown earlier time.
                None if room => {
                    r.changed.insert(k.clone(), (*v, f64::NAN));
                }
                None => {}
            }
        }
    }

    /// A copy of everything kept.
    #[must_use]
    pub fn series(&self) -> Series {
        let Ok(r) = self.ring.lock() else {
            return Series {
                interval_s: INTERVAL.as_secs_f64(),
                times: Vec::new(),
                values: HashMap::new(),
                changed_at: HashMap::new(),
            };
        };
        Series {
            interval_s: INTERVAL.as_secs_f64(),
            times: r.times.iter().copied().collect(),
            values: r
                .keys
                .iter()
                .zip(&r.columns)
                .map(|(k, c)| {
                    (
                        k.clone(),
                        c.iter().map(|v| v.is_finite().then_some(*v)).collect(),
                    )
                })
                .collect(),
            changed_at: r
                .changed
                .iter()
                .filter(|(_, (_, when))| when.is_finite())
                .map(|(k, (_, when))| (k.clone(), *when))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_recorder_format() {
        let text = "# HELP x y\n# TYPE bridge_exporter_spans_sent_total counter\n\
            bridge_exporter_spans_sent_total{exporter=\"a\\\"b\"} 12\n\
            bridge_queue_spans{exporter=\"a\"} 3.5\n\
            bridge_exporter_send_duration_seconds_bucket{exporter=\"a\",le=\"0.1\"} 4\n\
            bridge_receiver_spans_refused_total{receiver=\"otlp_grpc\",reason=\"queue_full\"} 2\n\
            bridge_receiver_spans_refused_total{receiver=\"otlp_grpc\",reason=\"shutting_down\"} 1\n\
            bridge_pinpoint_agents{exporter=\"pp\"} 4\n\
            bridge_pinpoint_links_total{exporter=\"pp\",outcome=\"cache\"} 9\n\
            garbage line\n";
        let lines = parse(text);
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert_eq!(lines[0].labels, vec![("exporter", "a\"b".to_owned())]);
        let v = select(text);
        assert_eq!(v["ex:a\"b:sent"], 12.0);
        assert_eq!(v["ex:a:queued"], 3.5);
        assert_eq!(v["rx:otlp_grpc:refused"], 3.0);
        assert_eq!(v["pp:pp:agents"], 4.0);
        assert_eq!(v["pp:pp:links_total{outcome=cache}"], 9.0);
        assert_eq!(v.len(), 5);
    }

    #[test]
    fn ring_is_bounded_and_aligned() {
        let h = History::default();
        for i in 0..(SAMPLES + 20) {
            let mut v = HashMap::new();
            v.insert("ex:a:sent".to_owned(), i as f64);
            if i >= SAMPLES {
                v.insert("ex:b:sent".to_owned(), 1.0);
            }
            h.push(i as f64, &v);
        }
        let s = h.series();
        assert_eq!(s.times.len(), SAMPLES);
        assert_eq!(s.times[0], 20.0);
        assert_eq!(s.values["ex:a:sent"].len(), SAMPLES);
        assert_eq!(s.values["ex:b:sent"].len(), SAMPLES);
        assert_eq!(s.values["ex:b:sent"][0], None);
        assert_eq!(s.values["ex:b:sent"][SAMPLES - 1], Some(1.0));
        // a changes every sample; b never changed after it appeared.
        assert_eq!(s.changed_at["ex:a:sent"], (SAMPLES + 19) as f64);
        assert!(!s.changed_at.contains_key("ex:b:sent"));
    }
}
