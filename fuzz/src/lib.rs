//! Shared code of the fuzz targets: the property checks (also compiled into
//! `core/tests/fuzz_corpus.rs`, which replays the corpus on stable) and a
//! counting global allocator, so the targets can check how much memory the
//! core holds. The allocator is the only `unsafe` here, and it lives only in
//! the fuzz binaries, never in the core.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

#[path = "../checks.rs"]
pub mod checks;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Counts live heap bytes and their high-water mark; delegates to `System`.
struct Counting;

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are
// only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // Count the old and new block as both live for a moment, as a
            // moving realloc really holds both.
            grew(new_size);
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Relaxed)
}

fn peak() -> usize {
    PEAK.load(Relaxed)
}

fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// The heap probe the checks use in fuzz binaries.
pub fn heap() -> checks::Heap {
    checks::Heap {
        live,
        peak,
        reset_peak,
    }
}
