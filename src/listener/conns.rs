//! The open connections of one listener: how many, which are idle, and which one to
//! close when a new connection arrives at the limit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

/// One open connection, as its listener sees it.
pub(super) struct Conn {
    pub accepted: Instant,
    /// Requests whose response future has not finished.
    in_flight: AtomicUsize,
    /// Requests whose head was read.
    served: AtomicU64,
    /// When the last request finished, in milliseconds after `accepted`.
    last_done_ms: AtomicU64,
    /// Told to close at once (evicted).
    pub kill: Notify,
}

impl Conn {
    fn new() -> Self {
        Self {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            last_done_ms: AtomicU64::new(0),
            kill: Notify::new(),
        }
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// When this connection, if it stays as it is, should be closed for idleness:
    /// `header` after accepting if it never sent a request head, `idle` after its last
    /// request otherwise; `None` while a request is in flight.
    pub fn idle_deadline(
        &self,
        header: std::time::Duration,
        idle: std::time::Duration,
    ) -> Option<(Instant, &'static str)> {
        if !self.idle() {
            return None;
        }
        if self.served.load(Ordering::Acquire) == 0 {
            return Some((self.accepted + header, "header_timeout"));
        }
        let done = std::time::Duration::from_millis(self.last_done_ms.load(Ordering::Acquire));
        Some((self.accepted + done + idle, "idle_timeout"))
    }

    /// Marks a request as started; the guard marks it finished when dropped.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.served.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
}

/// A request in flight on a [`Conn`].
pub(super) struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = self.0.accepted.elapsed().as_millis();
        self.0
            .last_done_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What [`Conns::admit`] decided.
pub(super) enum Admission {
    /// Room: the connection is registered under `id`.
    Admitted {
        id: u64,
        conn: Arc<Conn>,
        evicted: bool,
    },
    /// At the limit with every connection busy: close the new one.
    Refused,
}

/// The registry of one listener's connections, in accept order.
#[derive(Default)]
pub(super) struct Conns {
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

impl Conns {
    /// Registers a new connection if there is room. At `max`, the connection that never
    /// sent a request and was accepted first is closed to make room, else the oldest
    /// idle one; with none idle the new connection is refused.
    pub fn admit(&self, max: usize) -> Admission {
        let Ok(mut open) = self.open.lock() else {
            return Admission::Refused;
        };
        let mut evicted = false;
        if open.len() >= max {
            let never_used = open
                .iter()
                .find(|(_, c)| c.idle() && c.served.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id);
            let victim =
                never_used.or_else(|| open.iter().find(|(_, c)| c.idle()).map(|(id, _)| *id));
            match victim.and_then(|id| open.remove(&id)) {
                Some(c) => {
                    c.kill.notify_one();
                    evicted = true;
                }
                None => return Admission::Refused,
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new());
        open.insert(id, Arc::clone(&conn));
        Admission::Admitted { id, conn, evicted }
    }

    /// Forgets a closed connection (no-op if it was evicted).
    pub fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: Admission) -> (u64, Arc<Conn>, bool) {
        match a {
            Admission::Admitted { id, conn, evicted } => (id, conn, evicted),
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn at_the_limit_the_oldest_unused_then_the_oldest_idle_connection_makes_room() {
        let conns = Conns::default();
        let (a, ca, _) = admitted(conns.admit(3));
        let (b, cb, _) = admitted(conns.admit(3));
        let (_c, cc, _) = admitted(conns.admit(3));
        // a has served a request and is idle again; b is busy; c never sent anything.
        drop(ca.start_request());
        let busy_b = cb.start_request();
        let (_d, _cd, evicted) = admitted(conns.admit(3));
        assert!(evicted);
        assert_eq!(conns.len(), 3);
        // c (never used) went first, though a is older.
        assert!(conns.open.lock().expect("lock").contains_key(&a));
        drop(cc);
        let (_e, _ce, evicted) = admitted(conns.admit(3));
        assert!(evicted, "d (unused) goes next");
        let (_f, cf, evicted) = admitted(conns.admit(3));
        assert!(evicted, "e (unused) goes next");
        let _busy_f = cf.start_request();
        let (_g, cg, evicted) = admitted(conns.admit(3));
        assert!(
            evicted,
            "a, idle after a request, goes when nothing unused is left"
        );
        assert!(!conns.open.lock().expect("lock").contains_key(&a));
        let _busy_g = cg.start_request();
        // b, f and g are busy: a new connection is refused.
        assert!(matches!(conns.admit(3), Admission::Refused));
        drop(busy_b);
        assert!(matches!(
            conns.admit(3),
            Admission::Admitted { evicted: true, .. }
        ));
        conns.remove(b);
        assert_eq!(conns.len(), 3);
    }

    #[test]
    fn idle_deadline_follows_the_connection_state() {
        let conns = Conns::default();
        let (_, c, _) = admitted(conns.admit(1));
        let h = std::time::Duration::from_secs(10);
        let i = std::time::Duration::from_secs(60);
        assert_eq!(
            c.idle_deadline(h, i),
            Some((c.accepted + h, "header_timeout"))
        );
        let busy = c.start_request();
        assert_eq!(c.idle_deadline(h, i), None);
        drop(busy);
        let (at, why) = c.idle_deadline(h, i).expect("idle");
        assert_eq!(why, "idle_timeout");
        assert!(at >= c.accepted + i);
    }
}
