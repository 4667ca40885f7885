//! Trace-id load balancing: the set of endpoints (static, or a DNS name re-resolved
//! every `resolve.interval`), the [`Ring`] over the live ones, and one bounded queue and
//! worker ([`endpoint`](super::endpoint)) per endpoint.
//!
//! The pipeline's worker calls [`Balancer::export`] with each batch; it is split by
//! trace id and each part is admitted into its endpoint's queue (room counted in spans,
//! like the pipeline's queues). Parts that find no room are kept and retried by the
//! pipeline (only those: a retry never duplicates what was admitted).
//!
//! Architecture invariant: every span in an endpoint queue belongs to that endpoint on
//! the current ring, or is being moved off it. Spans move when their endpoint leaves the
//! membership (reason `membership`) or, with `balance.reroute_after`, has failed that
//! long while other endpoints are live (reason `endpoint_down`); every moved span is
//! counted in `bridge_otlp_spans_moved_total`. A down endpoint is probed and rejoins the
//! ring when it answers. Membership changes move only the traces of the changed
//! endpoints (consistent hashing).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;

use super::endpoint::{self, Ctl, Part};
use super::ring::Ring;
use super::{BalanceConfig, Wire, convert};
use crate::config::{BatchConfig, RetryConfig};
use crate::exporter::ExportError;
use crate::pipeline::Batch;
use crate::pipeline::persist::Hold;
use crate::selfmetrics as m;

/// Where the endpoints come from.
#[derive(Debug, Clone)]
pub enum Members {
    Static(Vec<String>),
    Dns {
        endpoint: String,
        interval: Duration,
    },
}

/// What the balancer is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub exporter: String,
    pub wire: Wire,
    pub members: Members,
    pub balance: BalanceConfig,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
}

/// One member: its URL, its ring key (`host:port`) and, for a resolved address, the
/// DNS name its certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub key: String,
    pub url: String,
    pub server_name: Option<String>,
}

/// A member for a configured URL (the ring key is its `host:port`).
///
/// # Errors
/// A message when the URL has no host.
pub fn member_of(url: &str) -> Result<Member, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let key = uri
        .authority()
        .map(ToString::to_string)
        .ok_or_else(|| format!("`{url}` has no host"))?;
    Ok(Member {
        key,
        url: url.to_owned(),
        server_name: None,
    })
}

/// The members a DNS answer stands for: `endpoint` with its host replaced by each
/// address (sorted, deduplicated).
///
/// # Errors
/// A message when `endpoint` is not a URL with a host.
pub fn members_of_addrs(endpoint: &str, addrs: &[SocketAddr]) -> Result<Vec<Member>, String> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|_| format!("`{endpoint}` is not a URL"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("`{endpoint}` has no host"))?;
    let scheme = uri.scheme_str().unwrap_or("http");
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    let path = if path == "/" { "" } else { path };
    let mut out: Vec<Member> = addrs
        .iter()
        .map(|a| Member {
            key: a.to_string(),
            url: format!("{scheme}://{a}{path}"),
            server_name: Some(host.to_owned()),
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    Ok(out)
}

/// One endpoint in the membership.
struct Endpoint {
    tx: mpsc::UnboundedSender<Part>,
    sem: Arc<Semaphore>,
    ctl: Arc<Ctl>,
}

#[derive(Default)]
struct State {
    endpoints: BTreeMap<String, Endpoint>,
    ring: Ring,
}

/// What the balancer and its endpoint workers share.
pub(super) struct Shared {
    pub(super) settings: Settings,
    state: Mutex<State>,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// Balances batches over endpoints by trace id.
pub struct Balancer {
    shared: Arc<Shared>,
    /// The spans of a batch that found no room, by batch id, for the pipeline's retry.
    pending: Option<(u64, Vec<ResourceSpans>)>,
}

impl Balancer {
    /// Starts the endpoint workers (and, for DNS, the resolver).
    ///
    /// # Errors
    /// A message when a static endpoint is unusable.
    pub fn start(settings: Settings) -> Result<Self, String> {
        let members = settings.members.clone();
        let shared = Arc::new(Shared {
            settings,
            state: Mutex::new(State::default()),
            tasks: Mutex::new(Vec::new()),
        });
        match members {
            Members::Static(urls) => {
                let list = urls
                    .iter()
                    .map(|u| member_of(u))
                    .collect::<Result<Vec<_>, _>>()?;
                shared.set_members(&list)?;
            }
            Members::Dns { endpoint, interval } => {
                let weak = Arc::downgrade(&shared);
                let task = tokio::spawn(resolve_loop(weak, endpoint, interval));
                shared.track(task.abort_handle());
            }
        }
        Ok(Self {
            shared,
            pending: None,
        })
    }

    /// Hands `batch` to the endpoint queues (`collect` makes its spans, once per batch).
    ///
    /// # Errors
    /// [`ExportError::Retryable`] when some parts found no room (or no endpoint is
    /// known yet); the retry sends only those parts.
    pub fn export(
        &mut self,
        batch: &Batch,
        collect: impl FnOnce(&Batch) -> Vec<ResourceSpans>,
    ) -> Result<(), ExportError> {
        let spans = match self.pending.take() {
            Some((id, spans)) if id == batch.id() => spans,
            _ => collect(batch),
        };
        // A part in an endpoint queue keeps its batch's records in a persistent queue
        // (another hold) until it is sent or given up.
        let hold = batch.hold();
        let holds = if hold.is_durable() {
            std::slice::from_ref(&hold)
        } else {
            &[]
        };
        let left = self.shared.route(spans, 0, holds);
        hold.release();
        if left.is_empty() {
            return Ok(());
        }
        let n = convert::span_count(&left);
        self.pending = Some((batch.id(), left));
        Err(ExportError::Retryable {
            message: format!(
                "{n} spans wait: their endpoints' queues are full, or no endpoint is known yet"
            ),
            after: None,
        })
    }

    /// Closes every endpoint queue and waits for the workers to drain them.
    pub async fn shutdown(&mut self) {
        let endpoints = {
            let mut st = self.shared.lock();
            std::mem::take(&mut st.endpoints)
        };
        let mut waits = Vec::new();
        for (_, e) in endpoints {
            // A down endpoint holds nothing (its spans moved); stop its probing.
            if e.ctl.is_down() {
                e.ctl.remove();
            }
            waits.push(Arc::clone(&e.ctl));
            drop(e.tx);
        }
        for ctl in waits {
            ctl.finished().await;
        }
    }

    /// The ring's member keys now (for tests and the status page).
    #[must_use]
    pub fn ring_members(&self) -> Vec<String> {
        self.shared.lock().ring.members().to_vec()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let tasks = self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for t in tasks.iter() {
            t.abort();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn track(&self, task: AbortHandle) {
        let mut t = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        t.retain(|h| !h.is_finished());
        t.push(task);
    }

    fn label(&self) -> String {
        self.settings.exporter.clone()
    }

    /// Puts `spans` into their endpoints' queues, each part with another of `holds`;
    /// returns what found no room.
    pub(super) fn route(
        &self,
        spans: Vec<ResourceSpans>,
        moves: u8,
        holds: &[Hold],
    ) -> Vec<ResourceSpans> {
        let st = self.lock();
        if st.ring.is_empty() {
            return spans;
        }
        let ring = &st.ring;
        let parts = convert::split(spans, ring.members().len(), |t| ring.pick(t).unwrap_or(0));
        let mut left = Vec::new();
        for (i, part) in parts.into_iter().enumerate() {
            if part.is_empty() {
                continue;
            }
            let Some(e) = st.endpoints.get(&ring.members()[i]) else {
                left.extend(part);
                continue;
            };
            let n = convert::span_count(&part);
            let cap = self.settings.balance.queue_spans;
            let want = u32::try_from(n.clamp(1, cap)).unwrap_or(u32::MAX);
            let Ok(permit) = Arc::clone(&e.sem).try_acquire_many_owned(want) else {
                left.extend(part);
                continue;
            };
            let item = Part {
                spans: part,
                count: n,
                permit,
                moves,
                holds: holds.iter().map(Hold::another).collect(),
            };
            if let Err(back) = e.tx.send(item) {
                left.extend(back.0.spans);
            }
        }
        self.update_queue_gauge(&st);
        left
    }

    fn update_queue_gauge(&self, st: &State) {
        let cap = self.settings.balance.queue_spans;
        let queued: usize = st
            .endpoints
            .values()
            .map(|e| cap.saturating_sub(e.sem.available_permits()))
            .sum();
        metrics::gauge!(m::OTLP_ENDPOINT_QUEUE, "exporter" => self.label()).set(queued as f64);
    }

    pub(super) fn refresh_gauges(&self) {
        let st = self.lock();
        self.update_queue_gauge(&st);
    }

    /// Moves spans off an endpoint: routes them again, counting them as moved by
    /// `reason`; what cannot be placed (or has moved too often) is counted as failed.
    /// The moved parts carry `holds` on; then (placed or given up) these are released.
    pub(super) fn reroute(
        &self,
        spans: Vec<ResourceSpans>,
        moves: u8,
        reason: &'static str,
        holds: Vec<Hold>,
    ) {
        let n = convert::span_count(&spans) as u64;
        if n == 0 {
            holds.into_iter().for_each(Hold::release);
            return;
        }
        let label = self.label();
        if moves >= endpoint::MAX_MOVES {
            metrics::counter!(m::EXPORTER_SPANS_FAILED, "exporter" => label, "reason" => "moved_too_often")
                .increment(n);
            holds.into_iter().for_each(Hold::release);
            return;
        }
        metrics::counter!(m::OTLP_SPANS_MOVED, "exporter" => label.clone(), "reason" => reason)
            .increment(n);
        let left = self.route(spans, moves + 1, &holds);
        holds.into_iter().for_each(Hold::release);
        let lost = convert::span_count(&left) as u64;
        if lost > 0 {
            tracing::warn!(exporter = %label, spans = lost, "moved spans found no room in any endpoint queue; dropped");
            metrics::counter!(m::EXPORTER_SPANS_FAILED, "exporter" => label, "reason" => "no_room_after_move")
                .increment(lost);
        }
    }

    /// Marks `key` down and takes it off the ring, if another endpoint is live (else the
    /// traces keep waiting for it). Returns whether it was taken off.
    pub(super) fn mark_down(&self, key: &str) -> bool {
        let mut st = self.lock();
        let others_live = st
            .endpoints
            .iter()
            .any(|(k, e)| k != key && !e.ctl.is_down());
        let Some(e) = st.endpoints.get(key) else {
            return false;
        };
        if !others_live {
            return false;
        }
        e.ctl.set_down(true);
        tracing::warn!(exporter = %self.settings.exporter, endpoint = key, "endpoint down: its traces go to the next endpoints on the ring");
        self.rebuild_ring(&mut st);
        true
    }

    /// Puts a down endpoint back on the ring.
    pub(super) fn mark_up(&self, key: &str) {
        let mut st = self.lock();
        if let Some(e) = st.endpoints.get(key)
            && e.ctl.is_down()
        {
            e.ctl.set_down(false);
            tracing::info!(exporter = %self.settings.exporter, endpoint = key, "endpoint answers again: back on the ring");
            self.rebuild_ring(&mut st);
        }
    }

    fn rebuild_ring(&self, st: &mut State) {
        let live: Vec<String> = st
            .endpoints
            .iter()
            .filter(|(_, e)| !e.ctl.is_down())
            .map(|(k, _)| k.clone())
            .collect();
        // With every endpoint down, traces keep their places and wait.
        let keys = if live.is_empty() {
            st.endpoints.keys().cloned().collect()
        } else {
            live
        };
        if keys.as_slice() != st.ring.members() {
            st.ring = Ring::new(&keys, self.settings.balance.virtual_nodes);
            metrics::counter!(m::OTLP_RING_CHANGES, "exporter" => self.label()).increment(1);
        }
        let down = st.endpoints.values().filter(|e| e.ctl.is_down()).count();
        let up = st.endpoints.len() - down;
        metrics::gauge!(m::OTLP_ENDPOINTS, "exporter" => self.label(), "state" => "up")
            .set(up as f64);
        metrics::gauge!(m::OTLP_ENDPOINTS, "exporter" => self.label(), "state" => "down")
            .set(down as f64);
    }

    /// Makes the membership `members`: starts workers for new endpoints, removes the
    /// others (their workers move what they hold to the new ring), rebuilds the ring.
    ///
    /// # Errors
    /// A message when a new endpoint is unusable (the others are still applied).
    pub(super) fn set_members(self: &Arc<Self>, members: &[Member]) -> Result<(), String> {
        let mut st = self.lock();
        let wanted: std::collections::BTreeSet<&str> =
            members.iter().map(|m| m.key.as_str()).collect();
        let gone: Vec<String> = st
            .endpoints
            .keys()
            .filter(|k| !wanted.contains(k.as_str()))
            .cloned()
            .collect();
        for k in gone {
            if let Some(e) = st.endpoints.remove(&k) {
                tracing::info!(exporter = %self.settings.exporter, endpoint = %k, "endpoint left the membership");
                e.ctl.remove();
            }
        }
        let mut problem = None;
        for m in members {
            if st.endpoints.contains_key(&m.key) {
                continue;
            }
            let transport = match self
                .settings
                .wire
                .transport(&m.url, m.server_name.as_deref())
            {
                Ok(t) => t,
                Err(e) => {
                    problem.get_or_insert(e);
                    continue;
                }
            };
            let (tx, rx) = mpsc::unbounded_channel();
            let sem = Arc::new(Semaphore::new(self.settings.balance.queue_spans));
            let ctl = Arc::new(Ctl::default());
            let worker = endpoint::Worker::new(
                m.key.clone(),
                transport,
                Arc::clone(&ctl),
                Arc::downgrade(self),
            );
            let task = tokio::spawn(worker.run(rx));
            self.track(task.abort_handle());
            st.endpoints
                .insert(m.key.clone(), Endpoint { tx, sem, ctl });
        }
        self.rebuild_ring(&mut st);
        problem.map_or(Ok(()), Err)
    }
}

/// Resolves `endpoint`'s host every `interval` and applies the answer (an answer with
/// no address, or a failed lookup, keeps the membership as it is).
async fn resolve_loop(shared: Weak<Shared>, endpoint: String, interval: Duration) {
    let uri: Option<http::Uri> = endpoint.parse().ok();
    let host_port = uri.as_ref().and_then(|u| {
        let host = u.host()?;
        let port = u.port_u16().unwrap_or(if u.scheme_str() == Some("https") {
            443
        } else {
            80
        });
        Some(format!(
            "{}:{port}",
            host.trim_start_matches('[').trim_end_matches(']')
        ))
    });
    let Some(host_port) = host_port else {
        return;
    };
    loop {
        let Some(s) = shared.upgrade() else { return };
        let label = s.label();
        match tokio::net::lookup_host(host_port.as_str()).await {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if addrs.is_empty() {
                    metrics::counter!(m::OTLP_RESOLVE, "exporter" => label, "outcome" => "empty")
                        .increment(1);
                } else {
                    metrics::counter!(m::OTLP_RESOLVE, "exporter" => label, "outcome" => "ok")
                        .increment(1);
                    match members_of_addrs(&endpoint, &addrs).and_then(|ms| s.set_members(&ms)) {
                        Ok(()) => {}
                        Err(e) => {
                            tracing::warn!(exporter = %s.settings.exporter, error = %e, "cannot apply resolved endpoints")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(exporter = %label, name = %host_port, error = %e, "DNS lookup failed; keeping the endpoints");
                metrics::counter!(m::OTLP_RESOLVE, "exporter" => label, "outcome" => "error")
                    .increment(1);
            }
        }
        drop(s);
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_from_urls_and_addresses() {
        let m = member_of("http://gw-1:4317").expect("url");
        assert_eq!((m.key.as_str(), m.server_name), ("gw-1:4317", None));
        assert!(member_of("not a url").is_err());
        let addrs: Vec<SocketAddr> = [
            "10.0.0.9:4318",
            "10.0.0.2:4318",
            "10.0.0.9:4318",
            "[::1]:4318",
        ]
        .iter()
        .map(|a| a.parse().expect("addr"))
        .collect();
        let ms = members_of_addrs("http://gw.svc:4318/v1/traces", &addrs).expect("members");
        let urls: Vec<&str> = ms.iter().map(|m| m.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://10.0.0.2:4318/v1/traces",
                "http://10.0.0.9:4318/v1/traces",
                "http://[::1]:4318/v1/traces"
            ]
        );
        assert!(
            ms.iter()
                .all(|m| m.server_name.as_deref() == Some("gw.svc"))
        );
        let grpc = members_of_addrs("https://gw.svc:4317", &addrs[..1]).expect("members");
        assert_eq!(grpc[0].url, "https://10.0.0.9:4318");
    }
}
