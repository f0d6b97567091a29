//! Client quota enforcement (KIP-13, KIP-55, KIP-219): produce and fetch byte rates per
//! (user, client id), measured over a sliding window of `quota.window.num` samples of
//! `quota.window.size.seconds` (Kafka's defaults: 11 × 1 s). A request that takes a client
//! over its quota is answered at once with `throttle_time_ms`, and the connection then reads
//! nothing more for that long (Kafka mutes the channel), so the client cannot outrun it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strom_metadata::quota::{ClientQuotas, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};

/// Which byte rate a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    Produce,
    Fetch,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
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

/// The broker's quota sensors.
#[derive(Debug, Default)]
pub struct ClientQuotaManager {
    sensors: Mutex<HashMap<(QuotaKind, String, String), Window>>,
}

impl ClientQuotaManager {
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
