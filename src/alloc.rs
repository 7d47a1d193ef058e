//! Allocator settings for bulk streaming.
//!
//! Every message of a blob or archive stream is a buffer of up to 1 MiB that
//! lives for one hop. glibc serves allocations that large with fresh `mmap`s
//! by default and returns freed heap tops to the kernel, so each chunk costs
//! page faults on memory the kernel must zero (and, in VMs with free-page
//! reporting, fetch back from the host). Keeping such buffers in the heap lets
//! the same few megabytes be reused for the whole stream; peak memory is
//! unchanged because the number of buffers in flight is bounded.

/// Buffers up to this size come from the heap, never from their own mapping.
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory kept at the top of the heap before it is given back.
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Applies the settings; call once at start-up, before threads allocate.
pub fn tune_for_streaming() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // other threads exist and with documented parameter values.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
