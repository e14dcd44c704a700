//! Small tools of the hot path: a fast hasher and a cache prefetch hint.

pub mod hash;
pub mod prefetch;
