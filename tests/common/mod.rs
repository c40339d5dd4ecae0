//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// A global allocator that counts, per thread, the bytes requested while a
/// measurement is running, so a test can bound what a decoder allocates.
pub struct CountingAllocator;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
    static PEAK_REQUEST: Cell<usize> = const { Cell::new(0) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // try_with: the thread-locals may be gone while a thread shuts down.
    let _ = ACTIVE.try_with(|a| {
        if a.get() {
            let _ = BYTES.try_with(|b| b.set(b.get() + size));
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            let _ = PEAK_REQUEST.try_with(|p| p.set(p.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What one measured closure allocated on this thread.
#[derive(Debug, Clone, Copy)]
pub struct Allocated {
    /// Total bytes requested (reallocations count their new size).
    pub bytes: usize,
    /// Number of allocation calls.
    pub count: usize,
    /// The largest single request.
    pub largest: usize,
}

/// Runs `f` and reports what it allocated on this thread.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Allocated) {
    BYTES.with(|b| b.set(0));
    COUNT.with(|c| c.set(0));
    PEAK_REQUEST.with(|p| p.set(0));
    ACTIVE.with(|a| a.set(true));
    let r = f();
    ACTIVE.with(|a| a.set(false));
    let stats = Allocated {
        bytes: BYTES.with(Cell::get),
        count: COUNT.with(Cell::get),
        largest: PEAK_REQUEST.with(Cell::get),
    };
    (r, stats)
}

/// A small deterministic generator (xorshift64*), so sweeps need no dependency and
/// every run sees the same inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
