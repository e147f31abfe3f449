//! Asking for memory before it is needed, where the tick measured a wait on a first load
//! (docs/BENCHMARKS.md): a hint to the processor, with no effect on what is computed.

/// Asks for the cache lines of the first two 64-byte blocks of the `bytes` bytes at `start`
/// to be loaded, without waiting for them.
#[inline(always)]
pub(crate) fn first_lines(start: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = start.cast::<i8>();
        // SAFETY: SSE is part of x86_64; a prefetch reads nothing and cannot fault, at any
        // address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(start);
            if bytes > 64 {
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(64));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, bytes);
}

/// [`first_lines`] of a slice's items.
#[inline(always)]
pub(crate) fn slice<T>(items: &[T]) {
    first_lines(items.as_ptr().cast(), size_of_val(items));
}
