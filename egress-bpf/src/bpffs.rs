//! A private BPF filesystem in a temporary directory, for tests and benchmarks: mounted on
//! creation, unmounted and removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A mounted private bpffs.
#[derive(Debug)]
pub struct PrivateBpffs {
    dir: PathBuf,
}

impl PrivateBpffs {
    /// Mounts a fresh bpffs under the system temp directory. `Err` says why the kernel
    /// refused (callers skip with that line, or fail under `EGRESS_REQUIRE_BPF=1`).
    pub fn new() -> Result<Self, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "egress-bpffs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Err(err) = crate::sys::mount_bpffs(&dir) {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!("mount -t bpf {}: {err}", dir.display()));
        }
        Ok(Self { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PrivateBpffs {
    fn drop(&mut self) {
        crate::sys::unmount_lazy(&self.dir);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// For tests: a private bpffs, or `None` after printing one line saying why BPF is not
/// available — and a panic instead when `EGRESS_REQUIRE_BPF=1` (CI, where BPF works).
pub fn bpffs_or_skip(test: &str) -> Option<PrivateBpffs> {
    available_or_skip(test, PrivateBpffs::new())
}

/// For tests: what a BPF operation gave, or `None` after printing one line saying why BPF
/// is not available — and a panic instead when `EGRESS_REQUIRE_BPF=1`.
pub(crate) fn available_or_skip<T, E: std::fmt::Display>(
    test: &str,
    result: std::result::Result<T, E>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(why) => {
            assert!(
                std::env::var("EGRESS_REQUIRE_BPF").as_deref() != Ok("1"),
                "{test}: BPF is required (EGRESS_REQUIRE_BPF=1) but unavailable: {why}"
            );
            eprintln!("skipped {test}: BPF unavailable here: {why}");
            record_skip(test, &format!("BPF unavailable here: {why}"));
            None
        }
    }
}

/// For tests: records that the kernel test `test` skipped, and why, as one line
/// `rust TEST: WHY` appended to the file `EGRESS_SKIP_LOG` names, when it is set (the test
/// command sets it and counts the lines). One append (`O_APPEND`) per line: tests running in
/// parallel, in this process or others, do not mix their lines. A file that cannot be written
/// is a failure (a skip must not go uncounted).
pub fn record_skip(test: &str, why: &str) {
    use std::io::Write;
    let Some(log) = std::env::var_os("EGRESS_SKIP_LOG").filter(|log| !log.is_empty()) else {
        return;
    };
    let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = format!("rust {test}: {why}\n");
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&log)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(err) = appended {
        panic!(
            "{test}: recording its skip in EGRESS_SKIP_LOG={}: {err}",
            log.to_string_lossy()
        );
    }
}
