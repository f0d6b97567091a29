//! Admission limits of the network path: connection slots (`max.connections`,
//! `max.connections.per.ip`), the global budget of request bytes read but not yet handled
//! (`queued.max.request.bytes`), and a rate limiter for the log lines they cause.
//! Pure bookkeeping: no sockets here, so each rule is unit-tested.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::BrokerMetrics;

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    MaxConnections,
    MaxConnectionsPerIp,
}

/// Open connections, in total and per client IP (and in the `connection-count` gauge).
#[derive(Debug)]
pub(crate) struct ConnectionLimits {
    max_connections: usize,
    open: Mutex<OpenConnections>,
    metrics: Arc<BrokerMetrics>,
}

#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; its slot is given back when this is dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub(crate) fn new(max_connections: usize, metrics: Arc<BrokerMetrics>) -> Arc<Self> {
        Arc::new(Self {
            max_connections,
            open: Mutex::new(OpenConnections::default()),
            metrics,
        })
    }

    /// Admits a connection from `ip` if both the total and that IP's `per_ip_limit` allow it.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        per_ip_limit: usize,
    ) -> Result<ConnectionSlot, Refused> {
        let mut open = self.open.lock();
        if open.total >= self.max_connections {
            return Err(Refused::MaxConnections);
        }
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= per_ip_limit {
            return Err(Refused::MaxConnectionsPerIp);
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        self.metrics.connection_count.add(1);
        Ok(ConnectionSlot {
            limits: Arc::clone(self),
            ip,
        })
    }

    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> usize {
        self.open.lock().per_ip.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock();
        open.total -= 1;
        let from_ip = open
            .per_ip
            .get_mut(&self.ip)
            .expect("an admitted connection's IP is counted until its slot is dropped");
        *from_ip -= 1;
        if *from_ip == 0 {
            open.per_ip.remove(&self.ip);
        }
        self.limits.metrics.connection_count.sub(1);
    }
}

/// The global budget of request bytes read but not yet handled (`queued.max.request.bytes`).
/// A request larger than the whole budget is admitted alone (it waits for the budget to be
/// entirely free), so no request within `socket.request.max.bytes` waits forever.
#[derive(Debug)]
pub(crate) struct RequestBudget {
    /// `None`: unbounded.
    semaphore: Option<Arc<Semaphore>>,
    capacity: usize,
    metrics: Arc<BrokerMetrics>,
}

/// Budget held by one request until it has been handled.
#[derive(Debug)]
pub(crate) struct RequestPermit {
    _permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
    metrics: Arc<BrokerMetrics>,
}

impl RequestBudget {
    pub(crate) fn new(bytes: Option<u64>, metrics: Arc<BrokerMetrics>) -> Arc<Self> {
        // A tokio semaphore counts at most MAX_PERMITS; a bigger budget is as good as none.
        let capacity = bytes.map(|b| usize::try_from(b).unwrap_or(usize::MAX));
        let capacity = capacity.filter(|c| *c <= Semaphore::MAX_PERMITS);
        Arc::new(Self {
            semaphore: capacity.map(|c| Arc::new(Semaphore::new(c))),
            capacity: capacity.unwrap_or(usize::MAX),
            metrics,
        })
    }

    fn permits(&self, bytes: usize) -> u32 {
        bytes.min(self.capacity).min(u32::MAX as usize) as u32
    }

    /// Takes `bytes` of budget if available now.
    pub(crate) fn try_acquire(&self, bytes: usize) -> Option<RequestPermit> {
        let permit = match &self.semaphore {
            None => None,
            Some(s) => Some(s.clone().try_acquire_many_owned(self.permits(bytes)).ok()?),
        };
        Some(self.permit(permit, bytes))
    }

    /// Waits until `bytes` of budget are available, then takes them.
    pub(crate) async fn acquire(&self, bytes: usize) -> RequestPermit {
        let permit = match &self.semaphore {
            None => None,
            Some(s) => Some(
                s.clone()
                    .acquire_many_owned(self.permits(bytes))
                    .await
                    .expect("the request budget's semaphore is never closed"),
            ),
        };
        self.permit(permit, bytes)
    }

    fn permit(&self, permit: Option<OwnedSemaphorePermit>, bytes: usize) -> RequestPermit {
        self.metrics.request_bytes_in_flight.add(bytes as i64);
        RequestPermit {
            _permit: permit,
            bytes,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl Drop for RequestPermit {
    fn drop(&mut self) {
        self.metrics.request_bytes_in_flight.sub(self.bytes as i64);
    }
}

/// Lets a log line through at most once per interval and counts the ones held back, so a
/// flood of refused connections does not flood the log.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    start: Instant,
    interval: Duration,
    /// Milliseconds since `start` of the last line let through, plus one (0: never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            start: Instant::now(),
            interval,
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log now, mentioning the `n` lines held back since the last one.
    pub(crate) fn check(&self) -> Option<u64> {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.interval.as_millis() as u64;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_limit_counts_each_address_and_frees_on_drop() {
        let metrics = Arc::new(BrokerMetrics::default());
        let limits = ConnectionLimits::new(10, metrics.clone());
        let a = limits.admit(ip("10.0.0.1"), 2).unwrap();
        let _b = limits.admit(ip("10.0.0.1"), 2).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.1"), 2).unwrap_err(),
            Refused::MaxConnectionsPerIp
        );
        let _other = limits.admit(ip("10.0.0.2"), 2).unwrap();
        assert_eq!(metrics.connection_count.get(), 3);
        drop(a);
        assert_eq!(limits.open_from(ip("10.0.0.1")), 1);
        assert_eq!(metrics.connection_count.get(), 2);
        let _c = limits.admit(ip("10.0.0.1"), 2).unwrap();
    }

    #[test]
    fn total_limit_applies_across_addresses() {
        let limits = ConnectionLimits::new(2, Arc::default());
        let _a = limits.admit(ip("10.0.0.1"), 100).unwrap();
        let b = limits.admit(ip("10.0.0.2"), 100).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.3"), 100).unwrap_err(),
            Refused::MaxConnections
        );
        drop(b);
        assert_eq!(limits.open_from(ip("10.0.0.2")), 0);
        let _c = limits.admit(ip("10.0.0.3"), 100).unwrap();
    }

    #[tokio::test]
    async fn request_budget_blocks_until_released_and_tracks_bytes() {
        let metrics = Arc::new(BrokerMetrics::default());
        let budget = RequestBudget::new(Some(100), metrics.clone());
        let first = budget.try_acquire(60).unwrap();
        assert!(budget.try_acquire(60).is_none());
        assert_eq!(metrics.request_bytes_in_flight.get(), 60);
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire(60).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let second = waiting.await.unwrap();
        assert_eq!(metrics.request_bytes_in_flight.get(), 60);
        drop(second);
        assert_eq!(metrics.request_bytes_in_flight.get(), 0);
    }

    #[test]
    fn a_request_larger_than_the_budget_needs_all_of_it() {
        let budget = RequestBudget::new(Some(100), Arc::default());
        let small = budget.try_acquire(1).unwrap();
        assert!(budget.try_acquire(1_000).is_none());
        drop(small);
        let big = budget.try_acquire(1_000).unwrap();
        assert!(budget.try_acquire(1).is_none());
        drop(big);
    }

    #[test]
    fn unbounded_budget_never_refuses() {
        let budget = RequestBudget::new(None, Arc::default());
        let _a = budget.try_acquire(1 << 40).unwrap();
        let _b = budget.try_acquire(1 << 40).unwrap();
    }

    #[test]
    fn log_limiter_lets_one_line_through_per_interval() {
        let limiter = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(limiter.check(), Some(0));
        assert_eq!(limiter.check(), None);
        assert_eq!(limiter.check(), None);
        let every_time = LogLimiter::new(Duration::ZERO);
        assert_eq!(every_time.check(), Some(0));
        assert_eq!(every_time.check(), Some(0));
    }
}
