//! The test engine's randomness: every value that differs between two real runs of one
//! instance differs here too, as fully, from one seed, so a failure it causes
//! reproduces with that seed.
//!
//! On the Workflows engine two runs of an instance (the first and a replay, or two
//! replays) see different UUIDs from `crypto.randomUUID()` and different clock readings
//! outside steps: a replay happens later, after a sleep, a retry delay, an event, a
//! restart of the isolate. Code outside steps that branches on either (the first
//! characters of a UUID, the parity of the millisecond) takes another branch on replay.
//! So here:
//! - [`Rng::uuid`] is a version-4 UUID with all of its 122 random bits drawn from the
//!   seed's stream (not a counter behind a fixed prefix, whose first characters never
//!   change);
//! - a run's clock outside steps reads the virtual time plus an offset of 0 to 999 ms
//!   drawn for that run ([`clock_offset_ms`]): constant within the run (the Workers clock
//!   stands still between I/O), different from run to run, as a real replay's is later
//!   than the wake that started it. Inside a step the clock is the virtual time exactly
//!   (its result is stored, so its readings never reach a replay).
//!
//! The seed comes from [`TestEngine::seed`](super::TestEngine::seed), else from
//! `WORKER_WORKFLOWS_SEED` in the environment, else it is new for every engine; the
//! determinism check's messages print it.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

/// The environment variable a seed is read from when the test sets none.
pub const SEED_VAR: &str = "WORKER_WORKFLOWS_SEED";

/// How far a run's clock outside steps is ahead of the virtual time, at most (exclusive).
pub const MAX_CLOCK_OFFSET_MS: u64 = 1000;

/// SplitMix64's step: a good 64-bit mix, enough for test values (not for secrets).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// A seed for an engine the test gave none: `WORKER_WORKFLOWS_SEED` when set (and a
/// number), else a new one (from the process's random hasher keys and the time).
pub fn default_seed() -> u64 {
    if let Some(seed) = std::env::var(SEED_VAR).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
        return seed;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish()
}

/// A stream of random values from one seed.
#[derive(Debug)]
pub struct Rng {
    seed: Cell<u64>,
    state: Cell<u64>,
}

impl Rng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { seed: Cell::new(seed), state: Cell::new(seed) }
    }

    /// The seed it started from.
    pub fn seed(&self) -> u64 {
        self.seed.get()
    }

    /// Starts the stream of another seed.
    pub fn reseed(&self, seed: u64) {
        self.seed.set(seed);
        self.state.set(seed);
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let state = self.state.get().wrapping_add(GOLDEN);
        self.state.set(state);
        mix(state)
    }

    /// A version-4 UUID: 122 random bits, the version nibble 4 and the variant bits 10.
    pub fn uuid(&self) -> String {
        let (high, low) = (self.next_u64(), self.next_u64());
        let high = (high & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
        let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", high >> 32, (high >> 16) & 0xffff, high & 0xffff, low >> 48, low & 0xffff_ffff_ffff)
    }
}

/// How far the clock outside steps is ahead of the virtual time in run `run` (counted
/// across the engine's runs of every instance) under `seed`: 0 to 999 ms, the same for
/// one seed and run, independent of the UUIDs drawn meanwhile.
pub fn clock_offset_ms(seed: u64, run: u64) -> u64 {
    mix(seed ^ mix(run.wrapping_mul(GOLDEN))) % MAX_CLOCK_OFFSET_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn uuids_are_version_4_and_vary_in_every_position() {
        let rng = Rng::new(7);
        let uuids: Vec<String> = (0..256).map(|_| rng.uuid()).collect();
        for uuid in &uuids {
            assert_eq!(uuid.len(), 36, "{uuid}");
            assert_eq!(uuid.as_bytes()[14], b'4', "version 4: {uuid}");
            assert!(matches!(uuid.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "variant 10: {uuid}");
            assert!(uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{uuid}");
        }
        // Every random position takes many values: the first character above all (a
        // counter behind a fixed prefix never changes it).
        for position in (0..36).filter(|&i| ![8, 13, 14, 18, 19, 23].contains(&i)) {
            let seen: BTreeSet<u8> = uuids.iter().map(|u| u.as_bytes()[position]).collect();
            assert!(seen.len() >= 12, "position {position} took only {seen:?}");
        }
        assert_eq!(uuids.iter().collect::<BTreeSet<_>>().len(), uuids.len(), "all distinct");
    }

    #[test]
    fn a_seed_gives_the_same_stream_and_another_seed_another() {
        let (a, b) = (Rng::new(42), Rng::new(42));
        assert_eq!((0..8).map(|_| a.uuid()).collect::<Vec<_>>(), (0..8).map(|_| b.uuid()).collect::<Vec<_>>());
        let c = Rng::new(43);
        assert_ne!(Rng::new(42).uuid(), c.uuid());
        a.reseed(42);
        assert_eq!(a.uuid(), Rng::new(42).uuid());
        assert_eq!(a.seed(), 42);
    }

    #[test]
    fn clock_offsets_stay_under_a_second_and_differ_from_run_to_run() {
        let offsets: Vec<u64> = (1..=200).map(|run| clock_offset_ms(9, run)).collect();
        assert!(offsets.iter().all(|&o| o < MAX_CLOCK_OFFSET_MS));
        assert!(offsets.iter().collect::<BTreeSet<_>>().len() > 150, "{offsets:?}");
        assert_eq!(clock_offset_ms(9, 3), clock_offset_ms(9, 3));
        assert_ne!((1..=5).map(|r| clock_offset_ms(9, r)).collect::<Vec<_>>(), (1..=5).map(|r| clock_offset_ms(10, r)).collect::<Vec<_>>());
        // Parity (what a branch on the millisecond sees) changes between runs too.
        assert!(offsets.windows(2).any(|w| w[0] % 2 != w[1] % 2));
    }

    #[test]
    fn without_the_variable_every_engine_gets_a_new_seed() {
        match std::env::var(SEED_VAR).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(set) => assert_eq!(default_seed(), set),
            None => assert_ne!(default_seed(), default_seed()),
        }
    }
}
