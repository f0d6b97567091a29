//! Client quota enforcement (KIP-13, KIP-55, KIP-219): produce and fetch byte rates per
//! (user, client id), measured over a sliding window of `quota.window.num` samples of
//! `quota.window.size.seconds` (Kafka's defaults: 11 × 1 s). A request that takes a client
//! over its quota is answered at once with `throttle_time_ms`, and the connection then reads
//! nothing more for that long (Kafka mutes the channel), so the client cannot outrun it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strom_metadata::quota::{ClientQuotas, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};

/// Which quota a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Produce request bytes (`producer_byte_rate`).
    Produce,
    /// Fetch response bytes (`consumer_byte_rate`).
    Fetch,
    /// Microseconds spent handling requests (`request_percentage`: a percentage of one
    /// thread's time, so 100 allows 1,000,000 µs per second).
    Request,
    /// New connections from one IP (`connection_creation_rate`).
    Connection,
    /// Partitions created or deleted (`controller_mutation_rate`, KIP-599).
    ControllerMutation,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => strom_metadata::quota::REQUEST_PERCENTAGE,
            QuotaKind::Connection => strom_metadata::quota::CONNECTION_CREATION_RATE,
            QuotaKind::ControllerMutation => strom_metadata::quota::CONTROLLER_MUTATION_RATE,
        }
    }

    /// The quota's value in this kind's units per second.
    fn per_second(self, value: f64) -> f64 {
        match self {
            QuotaKind::Request => value * 10_000.0,
            QuotaKind::Produce
            | QuotaKind::Fetch
            | QuotaKind::Connection
            | QuotaKind::ControllerMutation => value,
        }
    }
}

const SAMPLES: usize = 11;
const SAMPLE: Duration = Duration::from_secs(1);
/// Sensors idle this long are dropped when the table is pruned.
const IDLE_EXPIRY: Duration = Duration::from_secs(3600);
/// The table is pruned of idle sensors when it grows past this many.
const PRUNE_AT: usize = 10_000;

/// Bytes per sample over the window, oldest first; `start` is when the newest sample began.
#[derive(Debug)]
struct Window {
    samples: [u64; SAMPLES],
    newest: usize,
    start: Instant,
    first: Instant,
    last_used: Instant,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            samples: [0; SAMPLES],
            newest: 0,
            start: now,
            first: now,
            last_used: now,
        }
    }

    /// Rolls the window forward to `now`, zeroing samples that fell out of it.
    fn advance(&mut self, now: Instant) {
        let mut elapsed = now.saturating_duration_since(self.start);
        let mut rolled = 0;
        while elapsed >= SAMPLE && rolled <= SAMPLES {
            self.newest = (self.newest + 1) % SAMPLES;
            self.samples[self.newest] = 0;
            self.start += SAMPLE;
            elapsed -= SAMPLE;
            rolled += 1;
        }
        if rolled > SAMPLES {
            // Idle for longer than the window: start afresh.
            self.samples = [0; SAMPLES];
            self.start = now;
        }
    }

    /// Records `bytes` and answers how long the client must wait for its rate over the
    /// window to come back down to `quota` bytes per second.
    fn record(&mut self, now: Instant, bytes: u64, quota: f64) -> Duration {
        self.advance(now);
        self.last_used = now;
        self.samples[self.newest] += bytes;
        let total: u64 = self.samples.iter().sum();
        // The window measured so far: full samples behind the newest, plus its elapsed part
        // (and at least one sample, so a first burst is not divided by nothing).
        let full = SAMPLE * (SAMPLES as u32 - 1) + now.saturating_duration_since(self.start);
        let measured = now
            .saturating_duration_since(self.first)
            .max(SAMPLE)
            .min(full);
        let allowed = quota * measured.as_secs_f64();
        if (total as f64) <= allowed {
            return Duration::ZERO;
        }
        let wait = (total as f64 - allowed) / quota;
        Duration::from_secs_f64(wait).min(SAMPLE * SAMPLES as u32)
    }
}

/// One rate measured over the sliding window (the broker-wide connection creation rate).
#[derive(Debug)]
pub struct RateSensor(Mutex<Window>);

impl Default for RateSensor {
    fn default() -> Self {
        RateSensor(Mutex::new(Window::new(Instant::now())))
    }
}

impl RateSensor {
    /// Counts `amount` and answers how long until the rate is back at `per_second`.
    pub fn record(&self, amount: u64, per_second: f64) -> Duration {
        self.0.lock().record(Instant::now(), amount, per_second)
    }
}

/// The broker's quota sensors.
#[derive(Debug, Default)]
pub struct ClientQuotaManager {
    sensors: Mutex<HashMap<(QuotaKind, String, String), Window>>,
}

impl ClientQuotaManager {
    /// Counts one new connection from `ip` against its `connection_creation_rate` quota (the
    /// ip's own, else the default ip quota, KIP-612); the delay before it is closed, or zero.
    pub fn record_connection(&self, quotas: &ClientQuotas, ip: &str) -> Duration {
        use strom_metadata::quota::{QuotaEntity, CONNECTION_CREATION_RATE, IP};
        if quotas.is_empty() {
            return Duration::ZERO;
        }
        let own = QuotaEntity::new(vec![(IP.into(), Some(ip.to_owned()))]);
        let default = QuotaEntity::new(vec![(IP.into(), None)]);
        let Some(rate) = quotas
            .get(&own, CONNECTION_CREATION_RATE)
            .or_else(|| quotas.get(&default, CONNECTION_CREATION_RATE))
        else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let mut sensors = self.sensors.lock();
        let key = (QuotaKind::Connection, ip.to_owned(), String::new());
        if sensors.len() >= PRUNE_AT && !sensors.contains_key(&key) {
            sensors.retain(|_, w| now.saturating_duration_since(w.last_used) < IDLE_EXPIRY);
        }
        sensors
            .entry(key)
            .or_insert_with(|| Window::new(now))
            .record(now, 1, rate)
    }

    /// KIP-599's `controller_mutation_rate` for one topic of a CreateTopics, CreatePartitions
    /// or DeleteTopics request that creates or deletes `partitions` partitions. Strict mode
    /// (the request versions that know THROTTLING_QUOTA_EXCEEDED) refuses the topic with
    /// `Err(throttle)` while the client is already over its rate, and otherwise counts it
    /// even if that takes the client over (as Kafka's token bucket lets a request overdraw
    /// it). Permissive mode (older versions) always counts it; `Ok(throttle)` is then how
    /// long the client is throttled.
    pub fn record_mutations(
        &self,
        quotas: &ClientQuotas,
        user: &str,
        client_id: &str,
        partitions: u64,
        strict: bool,
    ) -> Result<Duration, Duration> {
        if strict {
            let owed = self.record(quotas, QuotaKind::ControllerMutation, user, client_id, 0);
            if !owed.is_zero() {
                return Err(owed);
            }
        }
        Ok(self.record(
            quotas,
            QuotaKind::ControllerMutation,
            user,
            client_id,
            partitions,
        ))
    }

    /// Counts `bytes` for (user, client id) and returns the throttle time, zero when within
    /// its quota or when no quota applies.
    pub fn record(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        bytes: u64,
    ) -> Duration {
        let Some((quota, (per_user, per_client))) =
            quotas.resolve_scoped(kind.key(), user, client_id)
        else {
            return Duration::ZERO;
        };
        let key = (
            kind,
            if per_user { user } else { "" }.to_owned(),
            if per_client { client_id } else { "" }.to_owned(),
        );
        let quota = kind.per_second(quota);
        let now = Instant::now();
        let mut sensors = self.sensors.lock();
        if sensors.len() >= PRUNE_AT && !sensors.contains_key(&key) {
            sensors.retain(|_, w| now.saturating_duration_since(w.last_used) < IDLE_EXPIRY);
        }
        sensors
            .entry(key)
            .or_insert_with(|| Window::new(now))
            .record(now, bytes, quota)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_within_its_quota_is_not_throttled_and_one_over_it_waits_the_excess() {
        let start = Instant::now();
        let mut w = Window::new(start);
        // 1,000 B/s quota: 500 bytes in the first second is fine.
        assert_eq!(w.record(start, 500, 1000.0), Duration::ZERO);
        // 3,000 more at 0.5 s: 3,500 bytes allowed only after 3.5 s, measured 1 s: 2.5 s.
        let t = start + Duration::from_millis(500);
        let wait = w.record(t, 3000, 1000.0);
        assert!((wait.as_secs_f64() - 2.5).abs() < 1e-6, "{wait:?}");
        // 4 s later the average is back under the quota.
        let t = start + Duration::from_secs(4);
        assert_eq!(w.record(t, 0, 1000.0), Duration::ZERO);
        // Long idle: the window starts afresh.
        let t = start + Duration::from_secs(60);
        assert_eq!(w.record(t, 900, 1000.0), Duration::ZERO);
    }

    #[test]
    fn request_percentage_is_a_share_of_one_threads_time() {
        use strom_metadata::quota::{QuotaEntity, CLIENT_ID, REQUEST_PERCENTAGE};
        let mut quotas = ClientQuotas::default();
        // 1% of a thread: 10 ms of handling per second.
        quotas.set(
            &QuotaEntity::new(vec![(CLIENT_ID.into(), Some("busy".into()))]),
            REQUEST_PERCENTAGE,
            Some(1.0),
        );
        let m = ClientQuotaManager::default();
        assert_eq!(
            m.record(&quotas, QuotaKind::Request, "u", "busy", 5_000),
            Duration::ZERO,
            "5 ms within the first second"
        );
        // 45 ms more: 50 ms used, 10 ms allowed per second: about 4 s to wait.
        let wait = m.record(&quotas, QuotaKind::Request, "u", "busy", 45_000);
        assert!(
            wait > Duration::from_millis(3_900) && wait <= Duration::from_secs(4),
            "{wait:?}"
        );
        assert_eq!(
            m.record(&quotas, QuotaKind::Request, "u", "idle", 1_000_000),
            Duration::ZERO,
            "another client id has no quota"
        );
    }

    #[test]
    fn the_quota_applies_per_user_when_set_for_the_default_user() {
        use strom_metadata::quota::{QuotaEntity, USER};
        let mut quotas = ClientQuotas::default();
        quotas.set(
            &QuotaEntity::new(vec![(USER.into(), None)]),
            PRODUCER_BYTE_RATE,
            Some(1000.0),
        );
        let m = ClientQuotaManager::default();
        let over = |user: &str| m.record(&quotas, QuotaKind::Produce, user, "c", 5000);
        assert!(over("alice") > Duration::ZERO);
        // bob has his own sensor: his first 5,000 bytes are measured against his own quota.
        let bob = over("bob");
        assert!(
            bob > Duration::ZERO && bob <= Duration::from_secs(4),
            "{bob:?}"
        );
        assert_eq!(
            m.record(&quotas, QuotaKind::Fetch, "alice", "c", 1 << 30),
            Duration::ZERO,
            "no fetch quota is set"
        );
    }
}
