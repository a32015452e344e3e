//! Structure-aware property tests ("fuzzing on stable", issue #18) over every decoder
//! that takes outside input: request bodies through the real JSON extractor and the
//! handlers' validation, `scheduler_opts`, resource slots and sizes, identifiers, list
//! cursors, `Last-Event-ID`, `?at=`, `Idempotency-Key`, query strings, and every stored
//! event type. Properties: nothing panics; a rejection is a typed error answered 4xx
//! (never 500); an accepted value round-trips where that makes sense.
//!
//! Inputs are mostly valid shapes with damage (see [`gen`]), plus arbitrary JSON and
//! bytes. `SESSIOND_FUZZ_CASES` sets the cases per decoder (default 2000; CI runs
//! 100000 through `scripts/fuzz`). `SESSIOND_FUZZ_SEED` (a u64) fixes the run's seed;
//! without it a random one is drawn and printed, so a failure can be replayed:
//! `SESSIOND_FUZZ_SEED=<seed> cargo test -p sessiond --test fuzz <decoder>`. A failing
//! case is also saved (proptest failure persistence) in `tests/fuzz/regressions/`,
//! replayed first on every later run: commit those files.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

mod bodies;
mod events;
mod gen;
mod params;
mod slots;

use proptest::strategy::Strategy;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use std::cell::Cell;
use std::fmt::Debug;
use std::sync::OnceLock;
use std::time::Instant;

thread_local! {
    static ACCEPTED: Cell<u64> = const { Cell::new(0) };
}

/// Counts a case the decoder accepted (whole chain), for the acceptance rate printed
/// per decoder: a generator that only produces garbage would show as 0%.
pub fn accepted() {
    ACCEPTED.with(|a| a.set(a.get() + 1));
}

/// Cases per decoder.
pub fn cases() -> u32 {
    std::env::var("SESSIOND_FUZZ_CASES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(2_000)
}

/// The run's seed: `SESSIOND_FUZZ_SEED`, or random (printed once).
pub fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = std::env::var("SESSIOND_FUZZ_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(rand::random);
        eprintln!(
            "fuzz: SESSIOND_FUZZ_SEED={seed} ({} cases per decoder)",
            cases()
        );
        seed
    })
}

/// FNV-1a: mixes the decoder's name into the seed, so one decoder replays alone.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs `test` on `cases()` values of `strategy` with the run's seed; failures are
/// shrunk, saved to `tests/fuzz/regressions/<name>.txt` and reported with the seed.
pub fn fuzz<S>(
    name: &'static str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let seed = seed();
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&fnv(name).to_le_bytes());
    let path: &'static str = Box::leak(
        format!(
            "{}/tests/fuzz/regressions/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        )
        .into_boxed_str(),
    );
    let config = Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(path))),
        rng_algorithm: RngAlgorithm::ChaCha,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    ACCEPTED.with(|a| a.set(0));
    let start = Instant::now();
    let result = runner.run(&strategy, test);
    let elapsed = start.elapsed();
    let ok = ACCEPTED.with(Cell::get);
    eprintln!(
        "fuzz {name}: {} cases in {elapsed:.2?}, {:.1}% accepted",
        cases(),
        100.0 * ok as f64 / f64::from(cases().max(1))
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, value)) => panic!(
            "fuzz {name}: {why}\nminimal input: {value:#?}\nreplay: SESSIOND_FUZZ_SEED={seed} \
             cargo test -p sessiond --test fuzz {name} (saved in {path})"
        ),
        Err(TestError::Abort(why)) => panic!("fuzz {name}: aborted: {why} (seed {seed})"),
    }
}

/// Fails the case unless `cond`.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(proptest::test_runner::TestCaseError::fail(format!($($fmt)*)));
        }
    };
}
