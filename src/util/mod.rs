//! Small tools: a fast hasher and a cache prefetch hint for the hot path,
//! a lock-free histogram for metrics, the settings of the property tests,
//! the log line, the retry policy, the one runtime.

pub mod bloom;
pub mod hash;
pub mod histogram;
pub mod log;
pub mod prefetch;
#[cfg(test)]
pub mod property;
pub mod retry;
pub mod runtime;
