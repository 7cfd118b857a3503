//! Cilium's pinned egress gateway maps: create or open them, apply plans, dump them.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use egress_core::compact::CompactElement;
use egress_core::engine::{Action, Engine, Plan, PlanOp};
use egress_core::entries::{Entry, MapEntries};
use egress_core::maps::{DEFAULT_MAX_ENTRIES, Layout, MapId, MapKind};
use libbpf_sys as bpf;

use crate::error::{ApplyError, Errno, Error, Result};
use crate::lock::{DirLock, WriterGuard};
use crate::sys::{self, MapFd, SysError};

/// Where Cilium pins its maps.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/tc/globals";

/// The flags Cilium's agent creates the maps of a layout with: `BPF_F_NO_PREALLOC`, and
/// from 1.20 (the `dual` layout, and `v4v2` after it) `BPF_F_RDONLY_PROG` too (commit
/// `c1c21117f1`; CILIUM-VERSIONS.md §5). The flags follow the layout, the version whose
/// maps they are: 1.20's rules written to the `legacy` layout (an override) create 1.18's
/// maps.
///
/// The compact layout's maps take 1.20's flags (read-only to programs; no preallocation,
/// which an LPM trie requires and which keeps an endpoint hash as small as its contents).
pub fn map_flags(layout: Layout) -> u32 {
    match layout {
        Layout::V4Legacy => bpf::BPF_F_NO_PREALLOC,
        Layout::V4Dual | Layout::V4V2 | Layout::Compact => {
            bpf::BPF_F_NO_PREALLOC | bpf::BPF_F_RDONLY_PROG
        }
    }
}

/// The kernel's map type of `id` (`BPF_MAP_TYPE_*`).
pub fn map_type(id: MapId) -> u32 {
    match id.kind() {
        MapKind::LpmTrie => bpf::BPF_MAP_TYPE_LPM_TRIE,
        MapKind::Hash => bpf::BPF_MAP_TYPE_HASH,
    }
}

/// A map element's key and value bytes.
type Element = (Vec<u8>, Vec<u8>);

/// One pinned map (an LPM trie, or the compact layout's endpoint hash), its shape checked
/// when opened.
#[derive(Debug)]
pub struct PinnedMap {
    map: MapFd,
    name: &'static str,
    path: PathBuf,
    max_entries: u32,
    /// The flags it was created with.
    flags: u32,
    /// The kernel's id of the map, to tell whether the pin still names it.
    id: u32,
}

impl PinnedMap {
    /// Opens the map `id` pinned at `dir/<its name>`, creating and pinning it when missing
    /// (with `max_entries`, or Cilium's default). An existing map must be of the id's type
    /// with its key and value sizes and, when `max_entries` is given, that capacity; any
    /// flags. Also says whether this call created and pinned it.
    fn open_or_create(
        dir: &Path,
        id: MapId,
        max_entries: Option<u32>,
        flags: u32,
        create: bool,
        read_only: bool,
    ) -> Result<(Self, bool)> {
        let (name, key_size, value_size) = (id.name(), id.key_size(), id.value_size());
        let map_type = map_type(id);
        let path = dir.join(name);
        let mut created = false;
        let syscall = |op, errno| Error::Syscall {
            op,
            target: path.display().to_string(),
            errno,
        };
        let fd = match sys::open_pinned(&path, read_only) {
            Ok(fd) => fd,
            Err(Errno(libc::ENOENT)) if create => {
                let max = max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
                let fd = sys::create_map(map_type, name, key_size, value_size, max, flags)
                    .map_err(|e| syscall("create map", e))?;
                match sys::pin(&fd, &path) {
                    Ok(()) => {
                        created = true;
                        fd
                    }
                    // Another process pinned its map first: that one is the map (this one
                    // goes with its fd).
                    Err(Errno(libc::EEXIST)) => sys::open_pinned(&path, read_only)
                        .map_err(|e| syscall("open pinned map", e))?,
                    Err(e) => return Err(syscall("pin map", e)),
                }
            }
            // Something else at the pin's path: a directory is said so, not as the kernel's
            // EACCES; a path through a file as ENOTDIR.
            Err(e) => {
                let errno = match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_dir() => Errno(libc::EISDIR),
                    Err(io) if io.raw_os_error() == Some(libc::ENOTDIR) => Errno(libc::ENOTDIR),
                    _ => e,
                };
                return Err(syscall("open pinned map", errno));
            }
        };
        let info = sys::map_info(&fd).map_err(|e| syscall("read map info", e))?;
        let expect = |field, expected: u64, found: u32| {
            if expected == u64::from(found) {
                Ok(())
            } else {
                Err(Error::Mismatch {
                    path: path.clone(),
                    field,
                    expected,
                    found: found.into(),
                })
            }
        };
        expect("type", map_type.into(), info.map_type)?;
        expect("key size", key_size as u64, info.key_size)?;
        expect("value size", value_size as u64, info.value_size)?;
        if let Some(max) = max_entries {
            expect("max_entries", max.into(), info.max_entries)?;
        }
        // The element syscalls' buffers are checked against the kernel's sizes, the ones
        // just compared with the layout's.
        let map = MapFd::new(fd, name, &info).map_err(|e| syscall("read map info", e))?;
        Ok((
            Self {
                map,
                name,
                path,
                max_entries: info.max_entries,
                flags: info.map_flags,
                id: info.id,
            },
            created,
        ))
    }

    /// The map's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The flags the map was created with (`BPF_F_*`; a map pinned by an older agent keeps
    /// its own).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Every element decoded as an entry of this map, and those that do not decode (a
    /// foreign writer's), each with its bytes.
    pub fn entries_lenient(&self) -> Result<(MapEntries, Vec<Unreadable>)> {
        let (entries, unreadable) = self.decoded()?;
        Ok((MapEntries::from_entries(entries), unreadable))
    }

    /// Every element decoded as an entry of this map, and those that do not decode.
    fn decoded(&self) -> Result<(Vec<Entry>, Vec<Unreadable>)> {
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        self.decode_into(Entry::decode, &mut entries, &mut unreadable)?;
        Ok((entries, unreadable))
    }

    /// The map's id (the maps are opened by their [`MapId`]'s name).
    fn id(&self) -> MapId {
        MapId::from_name(self.name)
            .unwrap_or_else(|| unreachable!("the maps are opened by their MapId's name"))
    }

    /// Every element decoded by `decode` (given the map's id, key and value) into `out`,
    /// those that do not decode into `unreadable`, each with its bytes.
    fn decode_into<T>(
        &self,
        decode: impl Fn(MapId, &[u8], &[u8]) -> std::result::Result<T, egress_core::maps::DecodeError>,
        out: &mut Vec<T>,
        unreadable: &mut Vec<Unreadable>,
    ) -> Result<()> {
        let id = self.id();
        for (key, value) in self.elements().map_err(|e| self.sys_error("read map", e))? {
            match decode(id, &key, &value) {
                Ok(element) => out.push(element),
                Err(e) => unreadable.push(Unreadable {
                    map: self.name,
                    key,
                    value,
                    detail: e.to_string(),
                }),
            }
        }
        Ok(())
    }

    /// Where it is pinned.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its capacity.
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    /// Its key size in bytes.
    pub fn key_size(&self) -> usize {
        self.map.key_size()
    }

    /// Its value size in bytes.
    pub fn value_size(&self) -> usize {
        self.map.value_size()
    }

    /// Its descriptor.
    pub fn fd(&self) -> &OwnedFd {
        self.map.fd()
    }

    /// Checks that the pin still names this map: a pin deleted or replaced under a running
    /// program would take its writes to a map nobody reads.
    pub fn check_pinned(&self) -> Result<()> {
        let unpinned = |what| Error::Unpinned {
            path: self.path.clone(),
            what,
        };
        let fd = match sys::open_pinned(&self.path, true) {
            Ok(fd) => fd,
            Err(Errno(libc::ENOENT)) => return Err(unpinned("deleted")),
            Err(errno) => {
                return Err(Error::Syscall {
                    op: "open pinned map",
                    target: self.path.display().to_string(),
                    errno,
                });
            }
        };
        match sys::map_info(&fd) {
            Ok(info) if info.id == self.id => Ok(()),
            Ok(_) => Err(unpinned("replaced")),
            Err(errno) => Err(Error::Syscall {
                op: "read map info",
                target: self.path.display().to_string(),
                errno,
            }),
        }
    }

    /// The kernel's own account of the map's memory in bytes (`memlock` in its fdinfo: the
    /// map's memory use since Linux 6.4).
    pub fn memory_bytes(&self) -> Result<u64> {
        let path = format!("/proc/self/fdinfo/{}", self.map.fd().as_raw_fd());
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: PathBuf::from(&path),
            source,
        })?;
        text.lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::Decode {
                map: self.name.to_owned(),
                detail: format!("{path} has no memlock line"),
            })
    }

    /// Writes one element as given, sizes checked against the map's (for a tool that seeds
    /// or repairs a map by hand, and for tests of foreign entries).
    pub fn write_raw(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.map
            .update(key, value)
            .map_err(|e| self.sys_error("write element", e))
    }

    /// Deletes the element with this exact key.
    pub fn delete_raw(&self, key: &[u8]) -> Result<()> {
        self.map
            .delete(key)
            .map_err(|e| self.sys_error("delete element", e))
    }

    fn sys_error(&self, op: &'static str, error: SysError) -> Error {
        match error {
            SysError::Kernel(errno) => Error::Syscall {
                op,
                target: self.path.display().to_string(),
                errno,
            },
            SysError::Size(e) => Error::BufferSize(e),
        }
    }

    /// All (key, value) byte pairs.
    fn elements(&self) -> std::result::Result<Vec<Element>, SysError> {
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        loop {
            let mut next = vec![0u8; self.map.key_size()];
            if !self.map.next_key(key.as_deref(), &mut next)? {
                return Ok(out);
            }
            let mut value = vec![0u8; self.map.value_size()];
            // A key deleted between the two calls is simply skipped.
            if self.map.lookup(&next, &mut value)? {
                out.push((next.clone(), value));
            }
            key = Some(next);
        }
    }
}

/// The IPv4 and IPv6 egress gateway maps of one node: the layout's IPv4 maps (one, or the
/// legacy map and `_v4_v2` for `dual`) and the IPv6 map; for the compact layout, per family
/// its rule trie and endpoint hash.
#[derive(Debug)]
pub struct EgressMaps {
    layout: Layout,
    /// Every map, in [`Layout::maps`] order (the IPv4 maps first).
    maps: Vec<PinnedMap>,
    /// Whether batch syscalls work on these maps (turned off at the first refusal). Atomic
    /// so that maps can be shared between threads (the kernel serialises the writes).
    batch: AtomicBool,
    /// The pins this value's opening created (see [`EgressMaps::remove_created`]).
    created: Vec<PathBuf>,
    /// The pin directory's writer lock.
    lock: DirLock,
}

/// Checks that `dir` is on a bpffs; with `create`, makes it (and missing parents) when its
/// nearest existing ancestor is on one — never creating directories elsewhere.
fn ensure_bpffs(dir: &Path, create: bool) -> Result<()> {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_owned(),
            source,
        }
    }
    // `try_exists`, not `exists`: a directory this process may not search (another user's
    // bpffs) is a permission error, not a missing directory on some other filesystem.
    if create && !dir.try_exists().map_err(io(dir))? {
        let mut existing = Path::new("/");
        for a in dir.ancestors() {
            if a.try_exists().map_err(io(a))? {
                existing = a;
                break;
            }
        }
        if !sys::is_bpffs(existing).map_err(io(existing))? {
            return Err(Error::NotBpffs {
                path: dir.to_owned(),
            });
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    match sys::is_bpffs(dir) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotBpffs {
            path: dir.to_owned(),
        }),
        Err(source) => Err(Error::Io {
            path: dir.to_owned(),
            source,
        }),
    }
}

impl EgressMaps {
    /// Opens the maps pinned in `dir` for `layout`, creating missing ones with `max_entries`
    /// (default: Cilium's 16384). With `max_entries` given, existing maps must have it.
    pub fn open_or_create(dir: &Path, layout: Layout, max_entries: Option<u32>) -> Result<Self> {
        Self::open_with(dir, layout, max_entries, true, false)
    }

    /// Opens existing maps only (`read_only`: writes will be refused by the kernel).
    pub fn open(dir: &Path, layout: Layout, read_only: bool) -> Result<Self> {
        Self::open_with(dir, layout, None, false, read_only)
    }

    fn open_with(
        dir: &Path,
        layout: Layout,
        max: Option<u32>,
        create: bool,
        read_only: bool,
    ) -> Result<Self> {
        if max.is_some() {
            egress_core::maps::capacity("max_entries", max)?;
        }
        ensure_bpffs(dir, create)?;
        let open = |id: MapId| {
            PinnedMap::open_or_create(dir, id, max, map_flags(layout), create, read_only)
        };
        let mut opened: Vec<PinnedMap> = Vec::new();
        let mut created: Vec<PathBuf> = Vec::new();
        for &id in layout.maps() {
            match open(id) {
                Ok((map, made)) => {
                    if made {
                        created.push(map.path.clone());
                    }
                    opened.push(map);
                }
                Err(e) => {
                    // Nothing half-made is left behind: the maps this call created go.
                    for path in &created {
                        let _ = std::fs::remove_file(path);
                    }
                    return Err(e);
                }
            }
        }
        Ok(Self {
            layout,
            maps: opened,
            batch: AtomicBool::new(true),
            created,
            lock: DirLock::new(dir),
        })
    }

    /// Whether opening created (and pinned) any of the maps.
    pub fn created_any(&self) -> bool {
        !self.created.is_empty()
    }

    /// Unpins the maps this value's opening created (they are gone once this value is
    /// dropped), for a caller whose first use of fresh maps was refused: nothing stays pinned
    /// with a size no later run can use. Maps that existed before are left as they are.
    /// Holds the directory's writer lock (a caller's own hold nests): no other writer is
    /// between its checks and its writes while the pins go.
    pub fn remove_created(&self) -> Result<()> {
        let _writer = self.lock_writer()?;
        for path in &self.created {
            std::fs::remove_file(path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Holds the pin directory's writer lock (an advisory `flock` on the directory) until
    /// the guard is dropped: one writer per directory, across processes. A caller's
    /// read–diff–write cycle (read the maps, adopt them, program) holds it throughout;
    /// [`EgressMaps::program`], [`EgressMaps::apply`] and
    /// [`EgressMaps::delete_unreadable`] hold it themselves (holds of one handle nest).
    /// Waits for another writer up to [`EgressMaps::set_writer_wait`] (default
    /// [`DEFAULT_WRITER_WAIT`](crate::DEFAULT_WRITER_WAIT)), then [`Error::Busy`].
    pub fn lock_writer(&self) -> Result<WriterGuard<'_>> {
        self.lock.hold()
    }

    /// How long a write waits for another writer of the directory (see
    /// [`EgressMaps::lock_writer`]).
    pub fn set_writer_wait(&self, wait: std::time::Duration) {
        self.lock.set_wait(wait);
    }

    /// How long a write waits for another writer of the directory.
    pub fn writer_wait(&self) -> std::time::Duration {
        self.lock.wait()
    }

    /// The layout of the IPv4 map.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The map `id`, when the layout has it.
    pub fn map(&self, id: MapId) -> Option<&PinnedMap> {
        self.maps.iter().find(|m| m.name == id.name())
    }

    fn layout_map(&self, id: MapId) -> &PinnedMap {
        self.map(id)
            .unwrap_or_else(|| unreachable!("a layout's read maps are among its maps"))
    }

    /// The IPv4 map entries are read back from ([`Layout::ipv4_map`]: `_v4_v2` where it is
    /// written; the compact layout's IPv4 rule trie).
    pub fn ipv4(&self) -> &PinnedMap {
        self.layout_map(self.layout.ipv4_map())
    }

    /// Every IPv4 map, in Cilium's reconcile order.
    pub fn ipv4_maps(&self) -> &[PinnedMap] {
        &self.maps[..self.layout.ipv4_maps().len()]
    }

    /// Every IPv6 map (Cilium's one; the compact layout's rule trie and endpoint hash).
    fn ipv6_maps(&self) -> &[PinnedMap] {
        &self.maps[self.layout.ipv4_maps().len()..]
    }

    fn all(&self) -> impl Iterator<Item = &PinnedMap> {
        self.maps.iter()
    }

    /// The IPv6 map (the compact layout's IPv6 rule trie).
    pub fn ipv6(&self) -> &PinnedMap {
        self.layout_map(self.layout.ipv6_map())
    }

    /// Turns batch syscalls on or off (off: one syscall per element, the baseline of the
    /// kernel-apply benchmark).
    pub fn set_batching(&self, on: bool) {
        self.batch.store(on, Ordering::Relaxed);
    }

    /// The smallest capacity of the maps. An engine is better held to each map's own
    /// ([`EgressMaps::engine_capacity`]).
    pub fn max_entries(&self) -> u32 {
        self.all().map(|m| m.max_entries).min().unwrap_or(0)
    }

    /// The engine settings that hold each map to its own capacity: `(max_entries,
    /// max_entries_v6)` for [`EngineConfig`](egress_core::engine::EngineConfig) — the IPv4
    /// maps' smallest, since they hold the same keys.
    pub fn engine_capacity(&self) -> (u32, Option<u32>) {
        let min = |maps: &[PinnedMap]| maps.iter().map(|m| m.max_entries).min().unwrap_or(0);
        (min(self.ipv4_maps()), Some(min(self.ipv6_maps())))
    }

    /// The map of `op` (operation `index` of `total`), checked: it must be one of these
    /// maps, and the operation must have its key size and, for an upsert, its value size.
    fn map_for(&self, op: &PlanOp, index: usize, total: usize) -> Result<&PinnedMap> {
        let Some(map) = self.all().find(|m| m.name == op.map().name()) else {
            return Err(Error::PlanWrongMap {
                index,
                total,
                found: op.map().name(),
                ipv4: self.ipv4().name,
                ipv6: self.ipv6().name,
                layout: self.layout,
            });
        };
        let size = |field, expected: usize, found: usize| {
            if expected == found {
                Ok(())
            } else {
                Err(Error::PlanWrongSize {
                    index,
                    total,
                    map: map.name,
                    field,
                    expected,
                    found,
                })
            }
        };
        size("key", map.key_size(), op.key().len())?;
        if op.action() == Action::Upsert {
            size("value", map.value_size(), op.value().len())?;
        }
        Ok(map)
    }

    /// Checks that every operation of `plan` is for one of these maps and has that map's key
    /// size and, for an upsert, value size: a plan made for other maps or the other layout
    /// is refused as a whole ([`Error::PlanWrongMap`], [`Error::PlanWrongSize`]).
    pub fn check_plan(&self, plan: &Plan) -> Result<()> {
        let total = plan.ops().len();
        for (index, op) in plan.ops().iter().enumerate() {
            self.map_for(op, index, total)?;
        }
        Ok(())
    }

    /// Writes a plan in its order (every upsert before any delete, or the reverse when
    /// [`Plan::deletes_first`]), batching runs of one map and action where the kernel
    /// allows, holding the directory's writer lock ([`EgressMaps::lock_writer`]). Returns
    /// the operations written.
    ///
    /// A plan that is not for these maps ([`check_plan`](Self::check_plan)) is refused with
    /// [`Error::PlanWrongMap`] or [`Error::PlanWrongSize`] before anything is written, and so
    /// is a write while another writer holds the directory ([`Error::Busy`]). On a failure
    /// while writing, [`Error::Apply`] says which operation failed and how many were written
    /// before it.
    pub fn apply(&self, plan: &Plan) -> Result<usize> {
        self.check_plan(plan)?;
        let _writer = self.lock_writer()?;
        let ops = plan.ops();
        let mut at = 0;
        while at < ops.len() {
            let (action, name) = (ops[at].action(), ops[at].map());
            let run = ops[at..]
                .iter()
                .take_while(|o| o.action() == action && o.map() == name)
                .count();
            // Checked by check_plan already: cannot fail here.
            let map = self.map_for(&ops[at], at, ops.len())?;
            if let Err((written, error)) = self.apply_run(map, &ops[at..at + run]) {
                let index = at + written;
                let errno = match error {
                    SysError::Kernel(errno) => errno,
                    // Unreachable after check_plan, which compared every key and value with
                    // these very maps' sizes; reported like the kernel's refusal of a wrong
                    // size so that `applied` stays exact.
                    SysError::Size(_) => Errno(libc::EINVAL),
                };
                return Err(Error::Apply(ApplyError {
                    applied: index,
                    index,
                    total: ops.len(),
                    failed: Box::new(ops[index].clone()),
                    errno,
                }));
            }
            at += run;
        }
        Ok(ops.len())
    }

    /// One run of one action on one map: a batch syscall, then one by one from the first
    /// element the batch did not write (which also names a failing element exactly).
    fn apply_run(
        &self,
        map: &PinnedMap,
        run: &[PlanOp],
    ) -> std::result::Result<(), (usize, SysError)> {
        let upsert = run.first().is_some_and(|op| op.action() == Action::Upsert);
        let mut start = 0usize;
        let count = u32::try_from(run.len()).ok().filter(|&n| n > 1);
        if let Some(count) = count.filter(|_| self.batch.load(Ordering::Relaxed)) {
            let keys: Vec<u8> = run.iter().flat_map(|o| o.key().iter().copied()).collect();
            let result = if upsert {
                let values: Vec<u8> = run.iter().flat_map(|o| o.value().iter().copied()).collect();
                map.map.update_batch(&keys, &values, count)
            } else {
                map.map.delete_batch(&keys, count)
            };
            match result {
                Ok(()) => return Ok(()),
                Err((written, error)) => {
                    let unsupported = matches!(
                        error,
                        SysError::Kernel(Errno(libc::EINVAL | libc::EOPNOTSUPP | 524))
                    );
                    if written == 0 && unsupported {
                        self.batch.store(false, Ordering::Relaxed);
                    }
                    start = written as usize;
                }
            }
        }
        for (i, op) in run.iter().enumerate().skip(start) {
            let result = if upsert {
                map.map.update(op.key(), op.value())
            } else {
                map.map.delete(op.key())
            };
            match result {
                Ok(()) => {}
                // Deleting a key that is already gone leaves the map as the plan wants it.
                Err(SysError::Kernel(Errno(libc::ENOENT))) if !upsert => {}
                Err(error) => return Err((i, error)),
            }
        }
        Ok(())
    }

    /// Takes the engine's plan, writes it and acknowledges what was written — all of it, or
    /// on a failure the operations before the failed one, so that the rest comes back in the
    /// next plan; the directory's writer lock is held throughout. Refused before anything is
    /// written, and nothing acknowledged: another writer holding the directory past the wait
    /// ([`Error::Busy`]), an engine configured for another layout than these maps'
    /// ([`Error::LayoutMismatch`]), a pin deleted or replaced since the maps were opened
    /// ([`Error::Unpinned`]: reopen them), a desired state that does not fit a map, or a
    /// plan that is not for these maps.
    ///
    /// A compact layout's plan may be one step of a change too big for its maps at once
    /// ([`Engine::take_plan`]): program again while the engine has pending sources.
    pub fn program(&self, engine: &mut Engine) -> Result<Plan> {
        self.check_layout(engine)?;
        let _writer = self.lock_writer()?;
        for map in self.all() {
            map.check_pinned()?;
        }
        let plan = engine.take_plan()?;
        match self.apply(&plan) {
            Ok(applied) => {
                engine.ack(&plan, applied)?;
                Ok(plan)
            }
            Err(Error::Apply(e)) => {
                engine.ack(&plan, e.applied)?;
                Err(Error::Apply(e))
            }
            Err(e) => Err(e),
        }
    }

    /// The whole read–diff–write cycle of a writer, under the directory's writer lock
    /// ([`EgressMaps::lock_writer`]): reads what the maps hold, makes it the engine's
    /// programmed baseline ([`EgressMaps::baseline`], then
    /// [`Engine::adopt`](egress_core::engine::Engine::adopt)), and programs the difference
    /// ([`EgressMaps::program`]). Elements the engine cannot read (another writer's, with a
    /// prefix the layout cannot have) are deleted after the plan — so that a refused plan
    /// writes nothing — or before it when they take the room the plan needs written upserts
    /// first (counted conservatively: programmed, desired and unreadable entries together
    /// past a map's capacity, while the desired state fits; for the compact layout, always
    /// when the plan is not refused). Another writer can neither
    /// write between the read and the writes nor be mixed with this one.
    pub fn reconcile(&self, engine: &mut Engine) -> Result<Reconciled> {
        let _writer = self.lock_writer()?;
        let unreadable = self.adopt_into(engine)?;
        let unreadable_first = !unreadable.is_empty()
            && if self.layout.is_compact() {
                // The compact maps' room is in elements, which the engine's plan counts: the
                // unreadable ones go first unless the plan is refused anyway (then nothing
                // is written).
                engine.take_plan().is_ok()
            } else {
                unreadable_take_the_room(engine, &unreadable)
            };
        if unreadable_first {
            self.delete_unreadable(&unreadable)?;
        }
        let plan = self.program(engine)?;
        if !unreadable_first {
            self.delete_unreadable(&unreadable)?;
        }
        Ok(Reconciled {
            plan,
            deleted_unreadable: unreadable,
            unreadable_first,
        })
    }

    /// Reads both maps into entries (in output order). An element that does not decode (a
    /// foreign writer's) is an error naming its key bytes; [`EgressMaps::dump_lenient`]
    /// reads around it.
    pub fn dump(&self) -> Result<MapEntries> {
        let (entries, unreadable) = self.dump_lenient()?;
        match unreadable.into_iter().next() {
            None => Ok(entries),
            Some(u) => Err(Error::Decode {
                map: u.map.to_owned(),
                detail: format!("key {}: {}", hex(&u.key), u.detail),
            }),
        }
    }

    /// Reads both maps: the entries, and the elements that do not decode into one (a
    /// foreign writer's: a prefix length the layout cannot have, ...), each with its bytes.
    /// The compact layout's maps are read whole and joined ([`egress_core::compact::entries_of`]):
    /// the entries Cilium's maps would hold for the same decisions.
    pub fn dump_lenient(&self) -> Result<(MapEntries, Vec<Unreadable>)> {
        if self.layout.is_compact() {
            let (elements, unreadable) = self.compact_elements()?;
            return Ok((egress_core::compact::entries_of(elements), unreadable));
        }
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for map in [self.ipv4(), self.ipv6()] {
            let (read, bad) = map.decoded()?;
            entries.extend(read);
            unreadable.extend(bad);
        }
        Ok((MapEntries::from_entries(entries), unreadable))
    }

    /// What the maps hold as one programmed baseline for
    /// [`Engine::adopt`](egress_core::engine::Engine::adopt), with the elements that do not
    /// decode. With one IPv4 map it is [`EgressMaps::dump_lenient`]. With two (`dual`), a key
    /// both hold with the same bytes is adopted as `_v4_v2` holds it; a key only one holds,
    /// or that they hold with different bytes, is adopted with ifindex `u32::MAX` (which no
    /// device has), so that the engine's next plan writes it again to both maps, or
    /// deletes it from both.
    pub fn baseline(&self) -> Result<(MapEntries, Vec<Unreadable>)> {
        if self.layout != Layout::V4Dual {
            return self.dump_lenient();
        }
        let mut elements = Vec::new();
        let mut unreadable = Vec::new();
        for map in self.all() {
            let id = map.id();
            let (read, bad) = map.decoded()?;
            elements.extend(read.into_iter().map(|e| (id, e)));
            unreadable.extend(bad);
        }
        let entries = egress_core::engine::baseline(self.layout, elements);
        Ok((MapEntries::from_entries(entries), unreadable))
    }

    /// Makes what the maps hold the engine's programmed baseline: [`EgressMaps::baseline`]
    /// adopted as entries, or for the compact layout its elements (with their set ids)
    /// adopted as such ([`Engine::adopt_compact`](egress_core::engine::Engine::adopt_compact)).
    /// Returns the elements that do not decode. An engine configured for another layout
    /// than these maps' is refused ([`Error::LayoutMismatch`]), nothing adopted.
    pub fn adopt_into(&self, engine: &mut Engine) -> Result<Vec<Unreadable>> {
        self.check_layout(engine)?;
        if self.layout.is_compact() {
            let (elements, unreadable) = self.compact_elements()?;
            engine.adopt_compact(elements);
            Ok(unreadable)
        } else {
            let (live, unreadable) = self.baseline()?;
            // A Cilium layout's engine (checked above) adopts any entries.
            engine
                .adopt(live.iter().copied())
                .map_err(|e| Error::Argument(e.to_field_error()))?;
            Ok(unreadable)
        }
    }

    /// Refuses an engine configured for another layout than these maps'
    /// ([`Error::LayoutMismatch`]).
    fn check_layout(&self, engine: &Engine) -> Result<()> {
        let configured = engine.config().layout;
        if configured == self.layout {
            Ok(())
        } else {
            Err(Error::LayoutMismatch {
                engine: configured,
                maps: self.layout,
            })
        }
    }

    /// The compact layout's elements, every map's (what
    /// [`Engine::adopt_compact`](egress_core::engine::Engine::adopt_compact) takes), and the
    /// elements that do not decode; nothing for Cilium's layouts.
    pub fn compact_elements(&self) -> Result<(Vec<CompactElement>, Vec<Unreadable>)> {
        let mut elements = Vec::new();
        let mut unreadable = Vec::new();
        for map in self.all().filter(|m| m.id().is_compact()) {
            map.decode_into(CompactElement::decode, &mut elements, &mut unreadable)?;
        }
        Ok((elements, unreadable))
    }

    /// The kernel's own account of the maps' memory, in bytes (`memlock` of each map's
    /// fdinfo, which is the map's memory use since Linux 6.4), summed.
    pub fn memory_bytes(&self) -> Result<u64> {
        self.all().map(PinnedMap::memory_bytes).sum()
    }

    /// Deletes elements [`EgressMaps::dump_lenient`] could not read (the engine can neither
    /// program nor delete what it cannot decode).
    pub fn delete_unreadable(&self, elements: &[Unreadable]) -> Result<()> {
        let _writer = self.lock_writer()?;
        for u in elements {
            if let Some(map) = self.all().find(|m| m.name == u.map) {
                map.delete_raw(&u.key)?;
            }
        }
        Ok(())
    }
}

/// What [`EgressMaps::reconcile`] did.
#[derive(Clone, Debug)]
pub struct Reconciled {
    /// The plan written (acknowledged in the engine).
    pub plan: Plan,
    /// The elements the engine could not read, deleted.
    pub deleted_unreadable: Vec<Unreadable>,
    /// Whether they were deleted before the plan (they took the room it needed).
    pub unreadable_first: bool,
}

/// Whether the live elements the engine cannot read may leave too little room in a map for
/// the plan written upserts first — programmed, desired and unreadable entries together past
/// its capacity (more than the plan's real peak, programmed plus new keys: conservative) —
/// while the desired state fits (else the plan is refused, and nothing should be deleted).
fn unreadable_take_the_room(engine: &Engine, unreadable: &[Unreadable]) -> bool {
    let stats = engine.stats();
    let config = engine.config();
    let held = |ipv6: bool| {
        // Per map: a layout of two IPv4 maps has each map's own.
        let mut per_map: Vec<(&str, usize)> = Vec::new();
        for u in unreadable
            .iter()
            .filter(|u| (u.map == MapId::V6.name()) == ipv6)
        {
            match per_map.iter_mut().find(|(m, _)| *m == u.map) {
                Some((_, n)) => *n += 1,
                None => per_map.push((u.map, 1)),
            }
        }
        per_map.into_iter().map(|(_, n)| n).max().unwrap_or(0)
    };
    let families = [
        (
            stats.programmed_v4,
            stats.desired_v4,
            held(false),
            config.max_entries,
        ),
        (
            stats.programmed_v6,
            stats.desired_v6,
            held(true),
            config.max_entries_v6.unwrap_or(config.max_entries),
        ),
    ];
    let fits = families
        .iter()
        .all(|&(_, desired, _, max)| desired <= max as usize);
    fits && families.iter().any(|&(programmed, desired, held, max)| {
        held > 0 && programmed + desired + held > max as usize
    })
}

/// An element of a live map that does not decode into an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The map's name.
    pub map: &'static str,
    /// The key's bytes.
    pub key: Vec<u8>,
    /// The value's bytes.
    pub value: Vec<u8>,
    /// Why it does not decode.
    pub detail: String,
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
