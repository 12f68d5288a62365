//! A counting global allocator for the property tests of the decoders (dev-only).
//!
//! Measures the memory a closure allocates on this thread: its peak of live bytes and its
//! largest single request. While measuring, a request above [`REFUSE_ABOVE`] fails (the
//! process aborts with "memory allocation of N bytes failed") rather than being granted
//! lazily by the operating system's overcommit, so a runaway length cannot pass unnoticed.
//!
//! A test binary installs it and measures a decoder:
//!
//! ```text
//! #[global_allocator]
//! static ALLOC: testalloc::Tracking = testalloc::Tracking;
//!
//! let (result, usage) = testalloc::measure(|| decode(bytes));
//! assert!(usage.peak <= 64 * bytes.len() + 4096);
//! ```
//!
//! This crate is the only place of the workspace's tests with an `unsafe impl`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub const REFUSE_ABOVE: usize = 1 << 30;

pub struct Tracking;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// Counts a request of `size` more bytes (`total`: the block's new size); false refuses it.
fn grow(size: usize, total: usize) -> bool {
    ON.try_with(|on| {
        if !on.get() {
            return true;
        }
        LARGEST.set(LARGEST.get().max(total));
        if total > REFUSE_ABOVE {
            return false;
        }
        let live = LIVE.get() + size as isize;
        LIVE.set(live);
        PEAK.set(PEAK.get().max(live));
        true
    })
    .unwrap_or(true)
}

fn shrink(size: usize) {
    let _ = ON.try_with(|on| {
        if on.get() {
            LIVE.set(LIVE.get() - size as isize);
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged, or refused with null.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size(), layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size(), layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            if !grow(new_size - layout.size(), new_size) {
                return std::ptr::null_mut();
            }
        } else {
            shrink(layout.size() - new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What a measured closure allocated.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// Most bytes live at once (allocated during the closure and not yet freed).
    pub peak: usize,
    /// The largest single request.
    pub largest: usize,
}

struct Off;

impl Drop for Off {
    fn drop(&mut self) {
        ON.set(false);
    }
}

pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    LIVE.set(0);
    PEAK.set(0);
    LARGEST.set(0);
    ON.set(true);
    let off = Off;
    let r = f();
    drop(off);
    let usage = Usage {
        peak: PEAK.get().max(0) as usize,
        largest: LARGEST.get(),
    };
    (r, usage)
}
