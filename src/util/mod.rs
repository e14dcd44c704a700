//! Small tools: a fast hasher and a cache prefetch hint for the hot path,
//! a lock-free histogram for metrics.

pub mod bloom;
pub mod hash;
pub mod histogram;
pub mod prefetch;
