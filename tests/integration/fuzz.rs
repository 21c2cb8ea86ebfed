//! Property tests, as fuzzing on a stable toolchain (issue 14): generated
//! and mutated pipelines through the loader and the resolver, and random
//! and damaged bytes through every reader of a state file. Nothing a user
//! can put in a file may panic: a pipeline is resolved, or refused with an
//! error that names the file (`pipeline.toml:LINE:COL`); a state file is
//! read, or ignored, or refused with an error.
//!
//! Bounded for CI: each target runs a few hundred cases from a fixed seed
//! (a couple of seconds in all). To fuzz longer, and somewhere new:
//!
//! ```sh
//! PROPTEST_CASES=100000 PROPTEST_RNG_SEED=$RANDOM cargo test --test integration fuzz::
//! ```
//!
//! A failure prints the input proptest shrank it to; keep that input as a
//! regression test at the end of the target's module.
//!
//! This module runs the cases and damages bytes; [`pipelines`] and
//! [`states`] hold the targets.

mod pipelines;
mod states;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// The config of a target: `cases` unless `$PROPTEST_CASES` says, from a
/// fixed seed unless `$PROPTEST_RNG_SEED` says; no files of failures (keep
/// them as tests instead).
fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(14);
    }
    config.failure_persistence = None;
    config
}

/// Runs `test` on values of `strategy`; a panic or a failed check is a
/// failure that names the (shrunk) input.
fn fuzz<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value)) {
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&strategy, |value| {
        test(value);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Damage to a file: cut it, flip a byte, insert a snippet or random
/// bytes, remove a stretch.
#[derive(Debug, Clone)]
enum Damage {
    Truncate(Index),
    Flip(Index, u8),
    Snippet(Index, &'static [u8]),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
}

fn damage(snippets: &'static [&'static [u8]]) -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        (any::<Index>(), select(snippets)).prop_map(|(i, s)| Damage::Snippet(i, s)),
        (any::<Index>(), vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Damage::Insert(i, b)),
        (any::<Index>(), 1..32usize).prop_map(|(i, n)| Damage::Remove(i, n)),
    ]
}

fn apply(seed: &[u8], damages: &[Damage]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for d in damages {
        // A place between bytes, the end included.
        let at = |i: &Index, len: usize| i.index(len + 1);
        match d {
            Damage::Truncate(i) => bytes.truncate(at(i, bytes.len())),
            Damage::Flip(i, b) => {
                if !bytes.is_empty() {
                    let i = i.index(bytes.len());
                    bytes[i] ^= b | 1;
                }
            }
            Damage::Snippet(i, s) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, s.iter().copied());
            }
            Damage::Insert(i, b) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, b.iter().copied());
            }
            Damage::Remove(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
        }
    }
    bytes
}

/// `seeds` damaged one to six times, or random bytes.
fn damaged(
    seeds: Vec<Vec<u8>>,
    snippets: &'static [&'static [u8]],
) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (select(seeds), vec(damage(snippets), 1..6))
            .prop_map(|(seed, damages)| apply(&seed, &damages)),
        1 => vec(any::<u8>(), 0..300),
    ]
}
