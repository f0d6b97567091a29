//! Buffers for request frames larger than a connection's read buffer, reused across requests
//! and connections. Such a frame (a producer's batch of up to `message.max.bytes`) is read
//! into a buffer of its own so its records can be given their offsets and written to the log
//! in place; taking that buffer from here instead of the allocator saves the malloc/free and,
//! above all, the page faults of touching fresh memory on every request (a fresh multi-KiB
//! allocation is a new mapping: one fault per 4 KiB page, then an unmap on free).
//!
//! Bounded: at most `MAX_POOLED` idle buffers of at most `MAX_POOLED_BYTES` each. Idle
//! buffers are memory outside `queued.max.request.bytes`, so the pool keeps only what a few
//! producer connections reading large frames at the same time need (a connection holds one
//! frame buffer at a time: it reads the next request only after this one's records are
//! written); a larger frame, or a buffer returned while the pool is full, goes back to the
//! allocator.

use bytes::BytesMut;
use parking_lot::Mutex;

/// Idle buffers kept at most.
const MAX_POOLED: usize = 8;
/// Largest buffer kept: Kafka's clients send requests up to 1 MiB by default
/// (`max.request.size`, librdkafka `message.max.bytes`).
const MAX_POOLED_BYTES: usize = 2 * 1024 * 1024;
/// Buffers are handed out in power-of-two sizes from this up, so one fits many frame sizes.
const MIN_BUFFER_BYTES: usize = 128 * 1024;

/// A buffer taken from the pool: empty, with room for the frame it was taken for.
pub(crate) struct FrameBuffer {
    pub(crate) buf: BytesMut,
    /// The capacity it had when taken (what `put` reclaims).
    capacity: usize,
}

pub(crate) struct FramePool {
    free: Mutex<Vec<FrameBuffer>>,
    max_pooled: usize,
    max_pooled_bytes: usize,
}

/// The process's pool.
pub(crate) static FRAME_POOL: std::sync::LazyLock<FramePool> =
    std::sync::LazyLock::new(|| FramePool::new(MAX_POOLED, MAX_POOLED_BYTES));

impl FramePool {
    fn new(max_pooled: usize, max_pooled_bytes: usize) -> FramePool {
        FramePool {
            free: Mutex::new(Vec::new()),
            max_pooled,
            max_pooled_bytes,
        }
    }

    /// An empty buffer with room for at least `len` bytes: the smallest idle one that fits,
    /// else a new one.
    pub(crate) fn take(&self, len: usize) -> FrameBuffer {
        let mut free = self.free.lock();
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity >= len)
            .min_by_key(|(_, b)| b.capacity)
            .map(|(i, _)| i);
        if let Some(i) = best {
            return free.swap_remove(i);
        }
        drop(free);
        let capacity = len.max(MIN_BUFFER_BYTES).next_power_of_two();
        let capacity = if capacity > self.max_pooled_bytes {
            len
        } else {
            capacity
        };
        FrameBuffer {
            buf: BytesMut::with_capacity(capacity),
            capacity,
        }
    }

    /// Gives a buffer back once the frame read into it is handled. Kept only if nothing else
    /// still refers to its memory (a handler may keep part of a frame), it is not too large,
    /// and the pool is not full.
    pub(crate) fn put(&self, mut buffer: FrameBuffer) {
        if buffer.capacity > self.max_pooled_bytes {
            return;
        }
        buffer.buf.clear();
        if !buffer.buf.try_reclaim(buffer.capacity) {
            return;
        }
        let mut free = self.free.lock();
        if free.len() < self.max_pooled {
            free.push(buffer);
        }
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        self.free.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_reused_without_allocating() {
        let pool = FramePool::new(2, 1 << 20);
        let mut b = pool.take(200_000);
        assert_eq!(b.capacity, 256 * 1024);
        assert!(b.buf.capacity() >= 200_000 && b.buf.is_empty());
        b.buf.extend_from_slice(&[7; 200_000]);
        let at = b.buf.as_ptr();
        // As the connection uses it: the frame is split off, handled and dropped.
        let frame = b.buf.split_to(200_000);
        drop(frame);
        pool.put(b);
        assert_eq!(pool.idle(), 1);
        let again = pool.take(150_000);
        assert_eq!(again.buf.as_ptr(), at, "the same memory comes back");
        assert!(again.buf.is_empty() && again.buf.capacity() >= 256 * 1024);
        assert_eq!(pool.idle(), 0);
        // Too small for the next frame: a new buffer, the idle one stays.
        pool.put(again);
        let big = pool.take(300_000);
        assert_eq!(big.capacity, 512 * 1024);
        assert_ne!(big.buf.as_ptr(), at);
        assert_eq!(pool.idle(), 1);
    }

    #[test]
    fn the_pool_is_bounded_in_count_and_size() {
        let pool = FramePool::new(2, 1 << 20);
        let taken: Vec<_> = (0..3).map(|_| pool.take(100_000)).collect();
        taken.into_iter().for_each(|b| pool.put(b));
        assert_eq!(pool.idle(), 2, "at most max_pooled idle buffers");
        // Larger than the largest pooled size: sized exactly, never kept.
        let huge = pool.take(3 << 20);
        assert_eq!(huge.capacity, 3 << 20);
        let _ = pool.take(100_000);
        let _ = pool.take(100_000);
        assert_eq!(pool.idle(), 0);
        pool.put(huge);
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn a_buffer_still_referenced_is_not_kept() {
        let pool = FramePool::new(2, 1 << 20);
        let mut b = pool.take(1000);
        b.buf.extend_from_slice(b"records");
        let kept = b.buf.split_to(3).freeze();
        pool.put(b);
        assert_eq!(pool.idle(), 0, "part of it is still in use");
        assert_eq!(&kept[..], b"rec");
    }
}
