//! One writer per pin directory: an advisory lock (`flock`) on the directory itself — a bpffs
//! holds no regular files — taken for a read–diff–write cycle. Writers of this library in
//! any process (egressctl, the C, Go and Python map handles, the lab) take it, so two of
//! them never interleave their writes; a reader needs no lock.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a writer waits for another by default.
pub const DEFAULT_WRITER_WAIT: Duration = Duration::from_secs(10);

/// The lock of one directory as a handle holds it: taken on the first hold, released when
/// the last hold ends (holds nest: `program` inside a caller's own cycle).
#[derive(Debug)]
pub(crate) struct DirLock {
    dir: PathBuf,
    state: Mutex<LockState>,
}

#[derive(Debug, Default)]
struct LockState {
    /// The open directory whose `flock` is held, while any hold lasts.
    file: Option<File>,
    holds: usize,
    wait: Option<Duration>,
}

/// A hold of a directory's writer lock; the lock is released when the last hold is dropped.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct WriterGuard<'a> {
    lock: &'a DirLock,
}

impl DirLock {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            state: Mutex::new(LockState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, LockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long [`DirLock::hold`] waits for another writer.
    pub(crate) fn set_wait(&self, wait: Duration) {
        self.state().wait = Some(wait);
    }

    pub(crate) fn wait(&self) -> Duration {
        self.state().wait.unwrap_or(DEFAULT_WRITER_WAIT)
    }

    /// Holds the lock: at once when this handle holds it already, else once no other writer
    /// does, waiting up to the handle's wait ([`Error::Busy`] after it).
    pub(crate) fn hold(&self) -> Result<WriterGuard<'_>> {
        let mut state = self.state();
        if state.holds > 0 {
            state.holds += 1;
            return Ok(WriterGuard { lock: self });
        }
        let wait = state.wait.unwrap_or(DEFAULT_WRITER_WAIT);
        let file = File::open(&self.dir).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match crate::sys::try_flock_exclusive(&file) {
                Ok(true) => break,
                Ok(false) => {
                    let waited = start.elapsed();
                    if waited >= wait {
                        return Err(Error::Busy {
                            dir: self.dir.clone(),
                            waited,
                        });
                    }
                    std::thread::sleep(pause.min(wait - waited));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(Error::Io {
                        path: self.dir.clone(),
                        source,
                    });
                }
            }
        }
        state.file = Some(file);
        state.holds = 1;
        Ok(WriterGuard { lock: self })
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.lock.state();
        state.holds -= 1;
        if state.holds == 0 {
            // Closing the directory releases its flock.
            state.file = None;
        }
    }
}
