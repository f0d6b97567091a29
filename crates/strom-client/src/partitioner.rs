//! Kafka's default partitioner: keyed records go to `toPositive(murmur2(key)) % numPartitions`
//! (the same partition the Java client and librdkafka's `murmur2_random` choose); records
//! without a key stick to one partition until `batch.size` bytes went there (KIP-794).

use std::collections::HashMap;
use std::sync::Mutex;

use rand::Rng;

/// Kafka's murmur2 (32-bit MurmurHash2, seed 0x9747b28c, little-endian 4-byte blocks).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in blocks.by_ref() {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on MIN).
pub fn to_positive(x: i32) -> i32 {
    x & 0x7fff_ffff
}

/// The partition Kafka assigns a key among `num_partitions`.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    assert!(num_partitions > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % num_partitions
}

/// Per-topic sticky choice for records without a key.
#[derive(Debug, Default)]
pub struct StickyPartitioner {
    state: Mutex<HashMap<String, (i32, usize)>>,
}

impl StickyPartitioner {
    /// The partition for a key-less record of `size` bytes; `available` lists partitions
    /// with a leader (all of `0..num_partitions` when empty).
    pub fn partition(
        &self,
        topic: &str,
        num_partitions: i32,
        size: usize,
        batch_size: usize,
    ) -> i32 {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let entry = state
            .entry(topic.to_owned())
            .or_insert_with(|| (rand::rng().random_range(0..num_partitions), 0));
        if entry.0 >= num_partitions || entry.1 >= batch_size {
            let previous = entry.0;
            let mut next = rand::rng().random_range(0..num_partitions);
            if num_partitions > 1 && next == previous {
                next = (next + 1) % num_partitions;
            }
            *entry = (next, 0);
        }
        entry.1 += size;
        entry.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of Kafka's `Utils.murmur2` for these inputs (published with Kafka's own tests,
    /// and reproduced by running the algorithm by hand on the bytes).
    #[test]
    fn murmur2_matches_kafka() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), *expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keys_land_where_java_puts_them() {
        // toPositive(murmur2(k)) % n, computed from the values above.
        assert_eq!(
            partition_for_key(b"21", 3),
            (-973_932_308i32 & 0x7fff_ffff) % 3
        );
        assert_eq!(
            partition_for_key(b"foobar", 10),
            (-790_332_482i32 & 0x7fff_ffff) % 10
        );
        assert_eq!(partition_for_key(b"abc", 7), 479_470_107 % 7);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        for n in 1..20 {
            let p = partition_for_key(b"hello", n);
            assert!((0..n).contains(&p));
        }
    }

    #[test]
    fn sticky_switches_after_a_batch() {
        let s = StickyPartitioner::default();
        let first = s.partition("t", 4, 10, 100);
        for _ in 0..9 {
            assert_eq!(s.partition("t", 4, 10, 100), first);
        }
        assert_ne!(
            s.partition("t", 4, 10, 100),
            first,
            "moves on after batch.size bytes"
        );
        assert_eq!(s.partition("one", 1, 1000, 10), 0);
    }
}
