//! The memory allocator of ml-connector's binaries (the CLI, every Lambda function and the
//! benchmarks), so that what the benchmarks measure is what runs.
//!
//! A poll turns every SYSPRO row into a `serde_json` map, fills, serialises and frees it: tens
//! of small allocations per record. With glibc's allocator that was about a third of a poll's
//! CPU; jemalloc's thread caches cut a poll's CPU by 35–45 % (see the README's performance
//! section for the figures).
//!
//! Tuned for a steady, small resident set rather than for many cores:
//! - `narenas:1`: a poll is one task and a sink a few; one arena (each thread keeps its own
//!   cache) instead of four per CPU, whose half-used pages would each hold memory;
//! - `dirty_decay_ms:100`, `muzzy_decay_ms:0`: freed pages go back to the OS a tenth of a
//!   second after the last use instead of ten seconds, so a long poll's peak stays where a
//!   short one's is (at most 1.2 × the 10k-row peak at 1M rows, issue 10).
//!
//! Operators can override the settings at run time with `_RJEM_MALLOC_CONF` (jemalloc reads
//! it after the compiled-in string).
//!
//! A binary links the allocator by calling [`allocator`] from `main` (`use mlc_alloc as _;`
//! is not enough for an otherwise unused crate). Building a binary with
//! `--no-default-features` leaves jemalloc out and uses the system allocator: jemalloc is C,
//! built by its own `configure`, and a cross-build (say to arm64 through cargo-lambda's zig)
//! that cannot build it can still ship.

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
mod imp {
    /// The process's global allocator.
    #[global_allocator]
    static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

    /// jemalloc's compiled-in options (`_rjem_malloc_conf`, read once at its initialisation):
    /// a NUL-terminated string behind a thin pointer, as the C `const char *` it is.
    #[allow(non_upper_case_globals)]
    #[export_name = "_rjem_malloc_conf"]
    pub static malloc_conf: Option<&'static u8> =
        Some(&b"narenas:1,dirty_decay_ms:100,muzzy_decay_ms:0\0"[0]);

    pub const NAME: &str = "jemalloc";
}

#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
mod imp {
    pub const NAME: &str = "system";
}

/// Which allocator this build uses (`jemalloc` or `system`); binaries log it at start, which
/// also keeps this crate, and so its `#[global_allocator]`, linked.
pub const ALLOCATOR: &str = imp::NAME;

/// The allocator's name, read through a function the optimiser cannot drop: calling it from
/// `main` guarantees the crate is linked.
#[inline(never)]
pub fn allocator() -> &'static str {
    std::hint::black_box(ALLOCATOR)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_compiled_in_options_are_a_c_string() {
        #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
        {
            let p: *const u8 = super::imp::malloc_conf.map_or(std::ptr::null(), |b| b);
            // SAFETY: the static points at a NUL-terminated byte string literal.
            let s = unsafe { std::ffi::CStr::from_ptr(p.cast()) };
            assert_eq!(
                s.to_str().ok(),
                Some("narenas:1,dirty_decay_ms:100,muzzy_decay_ms:0")
            );
            assert_eq!(super::allocator(), "jemalloc");
        }
        #[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
        assert_eq!(super::allocator(), "system");
    }
}
