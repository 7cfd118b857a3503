//! What several test binaries of egressctl share.
#![allow(dead_code)] // each binary uses its part

/// The largest resident size of the children this test binary ran, in KiB (its own
/// process: no other binary's children count).
pub(crate) fn max_child_rss_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a writable rusage; RUSAGE_CHILDREN is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: getrusage filled it.
    unsafe { usage.assume_init() }.ru_maxrss
}
