//! A hint to the processor: start loading a value's memory now, because it
//! will be read soon.
//!
//! The engine knows, a few messages ahead, which slots of its large tables
//! the coming events will touch (their digests are made on the reading
//! thread). Each of those slots is a cache miss when reached; hinted ahead,
//! the misses of several events overlap instead of following one another.

/// Asks for the cache line holding `value` to be loaded into the cache.
/// It changes nothing the program can observe, only how soon a later read
/// of `value` completes.
#[inline]
pub fn prefetch<T>(value: &T) {
    line(std::ptr::from_ref(value).cast());
}

/// [`prefetch`] for every cache line `value` spans.
#[inline]
pub fn prefetch_all<T: ?Sized>(value: &T) {
    let start = std::ptr::from_ref(value).cast::<u8>();
    for offset in (0..std::mem::size_of_val(value)).step_by(64) {
        line(start.wrapping_add(offset));
    }
}

/// The hint for the cache line holding `address`, which is never read.
#[inline]
fn line(address: *const u8) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    #[allow(unsafe_code)]
    // SAFETY: a prefetch reads no memory the program can observe and cannot
    // fault, whatever the address. The intrinsic is unsafe only because it
    // requires the SSE target feature, which this block is compiled under.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address.cast());
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = address;
}
