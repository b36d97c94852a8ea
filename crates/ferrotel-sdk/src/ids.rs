//! Trace and span ids: random, fast, never zero, and different in a forked child.
//!
//! Each thread keeps a xorshift-style generator seeded from the OS's randomness. After
//! `fork()` the child would otherwise repeat its parent's sequence, so [`after_fork`] bumps
//! a generation counter and every thread's generator reseeds when it sees a new one.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static STATE: Cell<(u64, u64, u64)> = const { Cell::new((0, 0, u64::MAX)) };
}

/// Call in the child right after `fork()`.
pub fn after_fork() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

fn seed() -> (u64, u64) {
    let mut bytes = [0u8; 16];
    // /dev/urandom is always there on the platforms we build for; if it is not, mix the
    // clock, the pid and a stack address so ids still differ between processes.
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if from_os.is_err() {
        let local = 0u8;
        let mix = crate::now_ns() ^ ((std::process::id() as u64) << 32) ^ (&local as *const u8 as u64);
        bytes[..8].copy_from_slice(&mix.to_le_bytes());
        bytes[8..].copy_from_slice(&mix.rotate_left(29).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    }
    let a = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
    let b = u64::from_le_bytes(bytes[8..].try_into().unwrap_or_default());
    (a | 1, b | 2) // xorshift128+ must not start from all zeros
}

/// The next `N` × 64 random bits (xorshift128+), from one visit to the thread's generator.
fn next<const N: usize>() -> [u64; N] {
    STATE.with(|cell| {
        let (mut s0, mut s1, generation) = cell.get();
        let current = GENERATION.load(Ordering::Relaxed);
        if generation != current {
            (s0, s1) = seed();
        }
        let drawn = std::array::from_fn(|_| {
            let result = s0.wrapping_add(s1);
            let t = s0 ^ (s0 << 23);
            (s0, s1) = (s1, t ^ s1 ^ (t >> 17) ^ (s1 >> 26));
            result
        });
        cell.set((s0, s1, current));
        drawn
    })
}

fn next_u64() -> u64 {
    next::<1>()[0]
}

/// A uniform draw from `0..n` (`n` > 0); the modulo bias is below 2^-40 for the counts it
/// serves (exemplar sampling).
pub fn random_below(n: u64) -> u64 {
    next_u64() % n.max(1)
}

pub fn new_span_id() -> u64 {
    loop {
        let id = next_u64();
        if id != 0 {
            return id;
        }
    }
}

pub fn new_trace_id() -> u128 {
    loop {
        let [high, low] = next::<2>();
        let id = ((high as u128) << 64) | low as u128;
        if id != 0 {
            return id;
        }
    }
}

/// An AWS X-Ray trace id: the Unix time in seconds in the first 32 bits (X-Ray rejects
/// traces whose ids are not roughly current), then 96 random bits.
pub fn new_xray_trace_id() -> u128 {
    let seconds = crate::now_ns() / 1_000_000_000;
    let [high, low] = next::<2>();
    let random = ((high as u128) << 32 | (low >> 32) as u128) & ((1u128 << 96) - 1);
    (u128::from(seconds as u32) << 96) | random
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn xray_trace_ids_start_with_the_time() {
        let before = (crate::now_ns() / 1_000_000_000) as u32;
        let ids: HashSet<u128> = (0..1000).map(|_| new_xray_trace_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids {
            let seconds = (id >> 96) as u32;
            assert!(seconds >= before && seconds <= before + 5, "{id:032x}");
        }
    }

    #[test]
    fn ids_are_distinct_and_nonzero() {
        let spans: HashSet<u64> = (0..10_000).map(|_| new_span_id()).collect();
        assert_eq!(spans.len(), 10_000);
        let traces: HashSet<u128> = (0..10_000).map(|_| new_trace_id()).collect();
        assert_eq!(traces.len(), 10_000);
    }

    #[test]
    fn threads_do_not_share_a_sequence() {
        let a = std::thread::spawn(|| (0..100).map(|_| new_span_id()).collect::<Vec<_>>())
            .join()
            .unwrap();
        let b = std::thread::spawn(|| (0..100).map(|_| new_span_id()).collect::<Vec<_>>())
            .join()
            .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_new_generation_reseeds() {
        new_span_id();
        let before = STATE.with(|c| c.get());
        after_fork();
        new_span_id();
        let after = STATE.with(|c| c.get());
        assert_ne!(before.2, after.2);
    }
}
