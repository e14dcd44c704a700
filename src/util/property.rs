//! The settings of the property tests: a bounded number of cases, so that
//! they stay quick; a fixed seed, so that every run tries the same cases
//! (`PROPTEST_RNG_SEED=N` tries others); no files of failures written beside
//! the sources (a failure prints the smallest input it found).

use proptest::test_runner::{Config, RngSeed};

/// The settings for a property test of `cases` cases.
pub fn config(cases: u32) -> Config {
    let mut config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    if matches!(config.rng_seed, RngSeed::Random) {
        config.rng_seed = RngSeed::Fixed(0x5EED);
    }
    config
}
