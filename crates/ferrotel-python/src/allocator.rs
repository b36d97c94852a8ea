//! The global allocator: mimalloc, asked for plain blocks whenever those are aligned enough.
//!
//! The `mimalloc` crate passes every request through `mi_malloc_aligned`, which takes a
//! slower path than `mi_malloc` (about 60 instructions against 20 per block, counted on the
//! span path, which makes several small blocks per span). mimalloc's blocks are word
//! aligned, and 16-byte aligned from 16 bytes on (`MI_MAX_ALIGN_SIZE`), so only larger
//! alignments need the aligned calls.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

pub(crate) struct Mimalloc;

/// Whether a plain mimalloc block of `layout.size()` bytes is aligned as `layout` asks.
fn plain_block_fits(layout: Layout) -> bool {
    layout.align() <= std::mem::size_of::<usize>() || (layout.align() <= 16 && layout.size() >= 16)
}

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free` takes blocks of any
// alignment); a plain block is only handed out where `plain_block_fits` holds.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions take any size and a power-of-two alignment.
        unsafe {
            if plain_block_fits(layout) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if plain_block_fits(layout) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, hence by mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is mimalloc's; the new block keeps `layout`'s alignment.
        unsafe {
            if plain_block_fits(Layout::from_size_align_unchecked(new_size, layout.align())) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::plain_block_fits;
    use std::alloc::Layout;

    #[test]
    fn only_alignments_mimalloc_gives_plainly_take_plain_blocks() {
        let fits = |size, align| plain_block_fits(Layout::from_size_align(size, align).unwrap());
        assert!(fits(1, 1) && fits(5, 4) && fits(24, 8));
        assert!(fits(16, 16) && fits(400, 16));
        assert!(!fits(8, 16) && !fits(64, 32) && !fits(4096, 4096));
    }
}
