//! A global allocator that keeps a malformed request from aborting the process.
//!
//! Why: the `kafka-protocol` decoders pre-allocate `Vec::with_capacity(n)` from array lengths
//! read off the wire (upstream kafka-protocol-rs PRs #152/#200, open). A 20-byte frame can
//! declare two billion elements; the allocator refuses such a size, and Rust aborts. Here,
//! allocations of at least [`LAZY_THRESHOLD`] bytes are served by `mmap(MAP_NORESERVE)`:
//! address space only, no memory until touched. The decoder then fails on the missing bytes
//! and frees it, and the connection is closed with a log line. Smaller allocations go to the
//! system allocator unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are reserved lazily.
pub const LAZY_THRESHOLD: usize = 1 << 30;
const PAGE: usize = 4096;

/// The allocator; install with `#[global_allocator] static A: strom_alloc::Guard = strom_alloc::Guard;`.
#[derive(Debug)]
pub struct Guard;

fn is_lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_THRESHOLD && layout.align() <= PAGE
}

// SAFETY: every pointer handed out is either from `System` (and returned to it) or from
// `mmap` of at least `layout.size()` bytes, page aligned (>= any alignment we accept for it),
// and returned with `munmap` of the same size. `is_lazy` depends only on the layout, which
// callers must pass unchanged to `dealloc`/`realloc`.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            return map(layout.size());
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            return map(layout.size()); // anonymous mappings are zero-filled
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_lazy(&layout) {
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_lazy(&layout) && !is_lazy(&new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        ptr.cast()
    }
}

#[cfg(test)]
mod tests {
    #[global_allocator]
    static GUARD: super::Guard = super::Guard;

    #[test]
    fn huge_reservations_do_not_abort() {
        // 200 GiB of capacity: more than this machine's memory, never touched.
        let v: Vec<[u8; 100]> = Vec::with_capacity(2_000_000_000);
        assert!(v.capacity() >= 2_000_000_000);
        drop(v);
        let mut small: Vec<u64> = Vec::with_capacity(4);
        small.extend([1, 2, 3, 4, 5]);
        assert_eq!(small.iter().sum::<u64>(), 15);
    }

    #[test]
    fn growth_across_the_threshold_keeps_contents() {
        let mut v: Vec<u8> = Vec::with_capacity(super::LAZY_THRESHOLD - 8);
        v.extend_from_slice(b"strom");
        v.reserve(super::LAZY_THRESHOLD * 2);
        assert_eq!(&v[..], b"strom");
    }
}
