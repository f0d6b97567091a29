//! Replication throttles (Kafka's replication quotas, what a reassignment's `--throttle`
//! sets): `leader.replication.throttled.rate` bounds the bytes a leader sends to followers of
//! the replicas its topics list in `leader.replication.throttled.replicas`, and
//! `follower.replication.throttled.rate` the bytes a follower fetches for those in
//! `follower.replication.throttled.replicas`. Replication of partitions not listed is never
//! slowed, so a throttled move cannot starve the ISR of the partitions it does not touch.
//!
//! Each throttle is a token bucket per broker shared by every throttled partition: it refills
//! at the rate and holds at most one second of it; a throttled partition is fetched (or
//! answered) only while the bucket holds tokens, and what it moved is taken out after (the
//! bucket may go below zero by one batch, which the next fetches then wait for). Over any
//! interval of `t` seconds at most `rate * (t + 1)` bytes plus one batch pass.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strom_metadata::image::MetadataImage;

/// No throttle (Kafka's default, Long.MAX_VALUE).
pub const UNLIMITED: i64 = i64::MAX;

/// One direction's bucket.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: i64,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle {
            state: Mutex::new(Bucket {
                tokens: 0.0,
                last: Instant::now(),
                rate: UNLIMITED,
            }),
        }
    }

    fn refill(b: &mut Bucket, rate: i64, now: Instant) {
        if rate != b.rate {
            // A new rate starts from a full second of it (and drops a debt the old one made).
            b.rate = rate;
            b.tokens = rate as f64;
        }
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * rate as f64).min(rate as f64);
    }

    /// Bytes a throttled partition may move now at `rate` bytes per second: 0 while the bucket
    /// is empty, `usize::MAX` when unthrottled.
    pub fn available(&self, rate: i64) -> usize {
        if rate == UNLIMITED {
            return usize::MAX;
        }
        let mut b = self.state.lock();
        Self::refill(&mut b, rate, Instant::now());
        if b.tokens < 1.0 {
            0
        } else {
            b.tokens as usize
        }
    }

    /// Takes `bytes` a throttled partition moved out of the bucket.
    pub fn record(&self, rate: i64, bytes: usize) {
        if rate == UNLIMITED || bytes == 0 {
            return;
        }
        let mut b = self.state.lock();
        Self::refill(&mut b, rate, Instant::now());
        b.tokens -= bytes as f64;
    }

    /// How long until the bucket holds tokens again.
    pub fn wait(&self, rate: i64) -> Duration {
        if rate == UNLIMITED {
            return Duration::ZERO;
        }
        let mut b = self.state.lock();
        Self::refill(&mut b, rate, Instant::now());
        if b.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - b.tokens) / rate.max(1) as f64)
    }
}

/// Whether `replica` of partition `index` of `topic` is listed in the topic's throttled
/// replicas config `key` (`*` lists every replica; otherwise `partition:broker` pairs).
pub fn is_throttled(
    image: &MetadataImage,
    topic: &str,
    index: i32,
    replica: i32,
    key: &str,
) -> bool {
    let Some(list) = image.topic(topic).and_then(|t| t.configs.get(key)) else {
        return false;
    };
    lists(list, index, replica)
}

fn lists(list: &str, index: i32, replica: i32) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    list.split(',').any(|entry| {
        let mut parts = entry.trim().splitn(2, ':');
        let p = parts.next().and_then(|p| p.trim().parse::<i32>().ok());
        let b = parts.next().and_then(|b| b.trim().parse::<i32>().ok());
        p == Some(index) && b == Some(replica)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_replica_lists_read_as_kafka_writes_them() {
        assert!(lists("*", 3, 7));
        assert!(lists("0:1,1:2, 2:3", 1, 2));
        assert!(lists("0:1,1:2,2:3", 2, 3));
        assert!(!lists("0:1,1:2", 1, 1));
        assert!(!lists("", 0, 1));
        assert!(!lists("junk", 0, 1));
    }

    #[test]
    fn the_bucket_passes_about_the_rate_and_no_more() {
        let t = Throttle::new();
        let rate = 200_000i64;
        let start = Instant::now();
        let mut moved = 0usize;
        while start.elapsed() < Duration::from_millis(1500) {
            let n = t.available(rate).min(16 * 1024);
            if n == 0 {
                std::thread::sleep(t.wait(rate));
                continue;
            }
            t.record(rate, n);
            moved += n;
        }
        let secs = start.elapsed().as_secs_f64();
        // At most one second of burst on top of the rate over the interval.
        assert!(
            moved as f64 <= rate as f64 * (secs + 1.0) + 16.0 * 1024.0,
            "{moved} bytes in {secs:.2} s at {rate} B/s"
        );
        assert!(
            moved as f64 >= rate as f64 * secs * 0.5,
            "{moved} bytes in {secs:.2} s"
        );
        assert_eq!(t.available(UNLIMITED), usize::MAX);
    }
}
