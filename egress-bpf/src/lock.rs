//! One writer per pin directory: an advisory lock (`flock`) on the directory itself — a bpffs
//! holds no regular files — taken for a read–diff–write cycle. Writers of this library in
//! any process (egressctl, the C, Go and Python map handles, the lab) take it, so two of
//! them never interleave their writes; a reader needs no lock. Within one process, the
//! threads sharing a handle take turns too: a hold belongs to the thread that took it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a writer waits for another by default.
pub const DEFAULT_WRITER_WAIT: Duration = Duration::from_secs(10);

/// The lock of one directory as a handle holds it: taken on a thread's first hold, released
/// when that thread's last hold ends (holds nest: `program` inside a caller's own cycle).
#[derive(Debug)]
pub(crate) struct DirLock {
    dir: PathBuf,
    state: Mutex<LockState>,
    /// Signalled when the last hold ends.
    released: Condvar,
}

#[derive(Debug, Default)]
struct LockState {
    /// The open directory whose `flock` is held, while any hold lasts.
    file: Option<File>,
    holds: usize,
    /// The thread whose holds these are.
    owner: Option<ThreadId>,
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
            released: Condvar::new(),
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

    fn busy(&self, start: Instant) -> Error {
        Error::Busy {
            dir: self.dir.clone(),
            waited: start.elapsed(),
        }
    }

    /// Holds the lock: at once when this thread holds it already through this handle, else
    /// once no other thread of this handle and no other writer does, waiting up to the
    /// handle's wait ([`Error::Busy`] after it).
    pub(crate) fn hold(&self) -> Result<WriterGuard<'_>> {
        let me = std::thread::current().id();
        let start = Instant::now();
        let mut state = self.state();
        let wait = state.wait.unwrap_or(DEFAULT_WRITER_WAIT);
        // Another thread of this handle: its turn first.
        while state.holds > 0 && state.owner != Some(me) {
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(self.busy(start));
            }
            state = self
                .released
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if state.holds > 0 {
            state.holds += 1;
            return Ok(WriterGuard { lock: self });
        }
        let file = File::open(&self.dir).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut pause = Duration::from_millis(1);
        // Another writer (another process, or another handle): polled, as flock cannot wait
        // with a bound.
        while !crate::sys::try_flock_exclusive(&file).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })? {
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(self.busy(start));
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        state.file = Some(file);
        state.holds = 1;
        state.owner = Some(me);
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
            state.owner = None;
            self.lock.released.notify_all();
        }
    }
}
