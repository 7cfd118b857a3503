//! The only place that calls libbpf or libc: thin wrappers that take and return owned,
//! checked values. Every `unsafe` block states why it is sound; no other module of the crate
//! may hold one.
#![allow(unsafe_code)]
//!
//! Map element syscalls read and write whole keys and values through bare pointers, as many
//! bytes as the map's key and value sizes. So they are methods of [`MapFd`], which learns
//! those sizes from the kernel when it is made, and each checks every buffer it hands over
//! against them (count × size for batches), refusing with a [`BufferSizeError`] before
//! libbpf is called: no safe caller can make libbpf read or write past a Rust buffer.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use libbpf_sys as bpf;

use crate::error::{BufferSizeError, Errno};

fn c_path(path: &Path) -> Result<CString, Errno> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno(libc::EINVAL))
}

/// Wraps a new descriptor returned by libbpf (negative on error).
fn owned_fd(ret: i32) -> Result<OwnedFd, Errno> {
    if ret < 0 {
        return Err(Errno::from_ret(ret));
    }
    // SAFETY: libbpf returned a fresh, open descriptor that nothing else owns; the OwnedFd
    // becomes its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

fn check(ret: i32) -> Result<(), Errno> {
    if ret < 0 {
        Err(Errno::from_ret(ret))
    } else {
        Ok(())
    }
}

/// Creates a map of `map_type` (`BPF_MAP_TYPE_*`).
pub(crate) fn create_map(
    map_type: u32,
    name: &str,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
    flags: u32,
) -> Result<OwnedFd, Errno> {
    let cname = CString::new(name).map_err(|_| Errno(libc::EINVAL))?;
    let size = |n: usize| u32::try_from(n).map_err(|_| Errno(libc::EINVAL));
    let (key_size, value_size) = (size(key_size)?, size(value_size)?);
    let opts = bpf::bpf_map_create_opts {
        sz: size_of::<bpf::bpf_map_create_opts>() as _,
        map_flags: flags,
        ..Default::default()
    };
    // SAFETY: `cname` is a valid NUL-terminated string and `opts` a fully initialised
    // struct whose `sz` is its own size; both outlive the call, which only reads them.
    let ret = unsafe {
        bpf::bpf_map_create(
            map_type,
            cname.as_ptr(),
            key_size,
            value_size,
            max_entries,
            &opts,
        )
    };
    owned_fd(ret)
}

/// Pins a map at `path`.
pub(crate) fn pin(fd: &OwnedFd, path: &Path) -> Result<(), Errno> {
    let cpath = c_path(path)?;
    // SAFETY: `fd` is an open descriptor for the call's duration; `cpath` is NUL-terminated
    // and only read.
    check(unsafe { bpf::bpf_obj_pin(fd.as_raw_fd(), cpath.as_ptr()) })
}

/// Opens a pinned object (read-only when `read_only`).
pub(crate) fn open_pinned(path: &Path, read_only: bool) -> Result<OwnedFd, Errno> {
    let cpath = c_path(path)?;
    let opts = bpf::bpf_obj_get_opts {
        sz: size_of::<bpf::bpf_obj_get_opts>() as _,
        file_flags: if read_only { bpf::BPF_F_RDONLY } else { 0 },
        ..Default::default()
    };
    // SAFETY: `cpath` is NUL-terminated and `opts` fully initialised with its own size;
    // both are only read.
    owned_fd(unsafe { bpf::bpf_obj_get_opts(cpath.as_ptr(), &opts) })
}

/// What the kernel says about a map.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapInfo {
    pub(crate) id: u32,
    pub(crate) map_type: u32,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) max_entries: u32,
    pub(crate) map_flags: u32,
}

pub(crate) fn map_info(fd: &OwnedFd) -> Result<MapInfo, Errno> {
    let mut info = bpf::bpf_map_info::default();
    let mut len = size_of::<bpf::bpf_map_info>() as u32;
    // SAFETY: `info` is a writable struct of `len` bytes and `len` a writable u32; the
    // kernel writes at most `len` bytes of info and stores the length it wrote in `len`.
    check(unsafe { bpf::bpf_map_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) })?;
    Ok(MapInfo {
        id: info.id,
        map_type: info.type_,
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        map_flags: info.map_flags,
    })
}

/// Why a map element wrapper failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SysError {
    /// libbpf or the kernel refused.
    Kernel(Errno),
    /// A buffer does not have the map's size: refused before libbpf was called.
    Size(BufferSizeError),
}

impl From<BufferSizeError> for SysError {
    fn from(e: BufferSizeError) -> Self {
        SysError::Size(e)
    }
}

/// A libbpf return value: 0 or a negative error.
fn kernel(ret: i32) -> Result<(), SysError> {
    check(ret).map_err(SysError::Kernel)
}

/// 0 → `true`, `ENOENT` → `false` (no such key, or no next key), else the error.
fn found(ret: i32) -> Result<bool, SysError> {
    match ret {
        0 => Ok(true),
        _ if Errno::from_ret(ret).0 == libc::ENOENT => Ok(false),
        _ => Err(SysError::Kernel(Errno::from_ret(ret))),
    }
}

/// Checks that a buffer holds `count` elements of `size` bytes each.
fn check_len(
    map: &'static str,
    buffer: &'static str,
    size: usize,
    count: usize,
    found: usize,
) -> Result<(), BufferSizeError> {
    // Saturated, the expectation exceeds any slice length, so an overflow is refused too.
    let expected = size.saturating_mul(count);
    if found == expected {
        Ok(())
    } else {
        Err(BufferSizeError {
            map,
            buffer,
            expected,
            found,
        })
    }
}

/// An open LPM-trie or hash map with the key and value sizes the kernel reported when it was
/// opened. Every element operation is a method that checks its buffers against these sizes.
#[derive(Debug)]
pub(crate) struct MapFd {
    fd: OwnedFd,
    name: &'static str,
    key_size: usize,
    value_size: usize,
}

impl MapFd {
    /// Takes a map descriptor with the kernel's `info` on it (`map_info`), keeping its
    /// sizes. Only LPM tries and (shared, not per-CPU) hashes are taken (others: `EINVAL`):
    /// their element syscalls copy exactly `key_size` bytes per key and `value_size` per
    /// value, which per-CPU maps, for one, do not.
    pub(crate) fn new(fd: OwnedFd, name: &'static str, info: &MapInfo) -> Result<Self, Errno> {
        if info.map_type != bpf::BPF_MAP_TYPE_LPM_TRIE && info.map_type != bpf::BPF_MAP_TYPE_HASH {
            return Err(Errno(libc::EINVAL));
        }
        let size = |n: u32| usize::try_from(n).map_err(|_| Errno(libc::EINVAL));
        Ok(Self {
            fd,
            name,
            key_size: size(info.key_size)?,
            value_size: size(info.value_size)?,
        })
    }

    /// The descriptor.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The kernel's key size.
    pub(crate) fn key_size(&self) -> usize {
        self.key_size
    }

    /// The kernel's value size.
    pub(crate) fn value_size(&self) -> usize {
        self.value_size
    }

    fn check_keys(&self, buffer: &'static str, count: usize, b: &[u8]) -> Result<(), SysError> {
        Ok(check_len(self.name, buffer, self.key_size, count, b.len())?)
    }

    fn check_values(&self, buffer: &'static str, count: usize, b: &[u8]) -> Result<(), SysError> {
        Ok(check_len(
            self.name,
            buffer,
            self.value_size,
            count,
            b.len(),
        )?)
    }

    /// Writes one element.
    pub(crate) fn update(&self, key: &[u8], value: &[u8]) -> Result<(), SysError> {
        self.check_keys("key", 1, key)?;
        self.check_values("value", 1, value)?;
        // SAFETY: the kernel reads `key_size` bytes at the key pointer and `value_size` at
        // the value pointer; `key` and `value` were just checked to be exactly that long,
        // and are only read.
        kernel(unsafe {
            bpf::bpf_map_update_elem(
                self.fd.as_raw_fd(),
                key.as_ptr().cast(),
                value.as_ptr().cast(),
                u64::from(bpf::BPF_ANY),
            )
        })
    }

    /// Deletes one element.
    pub(crate) fn delete(&self, key: &[u8]) -> Result<(), SysError> {
        self.check_keys("key", 1, key)?;
        // SAFETY: the kernel reads `key_size` bytes at the key pointer; `key` was just
        // checked to be exactly that long.
        kernel(unsafe { bpf::bpf_map_delete_elem(self.fd.as_raw_fd(), key.as_ptr().cast()) })
    }

    /// Writes `count` elements from concatenated keys and values; on error returns how many
    /// were written before the failure.
    pub(crate) fn update_batch(
        &self,
        keys: &[u8],
        values: &[u8],
        count: u32,
    ) -> Result<(), (u32, SysError)> {
        let n = elements(count);
        self.check_keys("keys", n, keys).map_err(|e| (0, e))?;
        self.check_values("values", n, values).map_err(|e| (0, e))?;
        let mut done = count;
        let opts = bpf::bpf_map_batch_opts {
            sz: size_of::<bpf::bpf_map_batch_opts>() as _,
            elem_flags: u64::from(bpf::BPF_ANY),
            flags: 0,
        };
        // SAFETY: the kernel reads at most `count` keys of `key_size` bytes and `count`
        // values of `value_size` bytes; `keys` and `values` were just checked to be exactly
        // count × size long. `done` is a writable u32; `opts` is initialised with its size.
        let ret = unsafe {
            bpf::bpf_map_update_batch(
                self.fd.as_raw_fd(),
                keys.as_ptr().cast(),
                values.as_ptr().cast(),
                &mut done,
                &opts,
            )
        };
        batch_result(ret, done, count)
    }

    /// Deletes `count` elements from concatenated keys; on error returns how many were
    /// deleted.
    pub(crate) fn delete_batch(&self, keys: &[u8], count: u32) -> Result<(), (u32, SysError)> {
        self.check_keys("keys", elements(count), keys)
            .map_err(|e| (0, e))?;
        let mut done = count;
        let opts = bpf::bpf_map_batch_opts {
            sz: size_of::<bpf::bpf_map_batch_opts>() as _,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: the kernel reads at most `count` keys of `key_size` bytes; `keys` was just
        // checked to be exactly count × key_size long. `done` is a writable u32.
        let ret = unsafe {
            bpf::bpf_map_delete_batch(self.fd.as_raw_fd(), keys.as_ptr().cast(), &mut done, &opts)
        };
        batch_result(ret, done, count)
    }

    /// Writes the key after `key` (the first key when `None`) into `next`; `Ok(false)` at
    /// the end.
    pub(crate) fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool, SysError> {
        if let Some(key) = key {
            self.check_keys("key", 1, key)?;
        }
        self.check_keys("next key", 1, next)?;
        let key_ptr = key.map_or(std::ptr::null(), |k| k.as_ptr().cast());
        // SAFETY: the kernel reads `key_size` bytes at `key_ptr` unless it is NULL, and
        // writes `key_size` bytes into `next`; both were just checked to be exactly that
        // long, and `next` is borrowed mutably, so nothing else sees the write.
        let ret = unsafe {
            bpf::bpf_map_get_next_key(self.fd.as_raw_fd(), key_ptr, next.as_mut_ptr().cast())
        };
        found(ret)
    }

    /// Reads the value of `key` into `value`; `Ok(false)` when absent.
    pub(crate) fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool, SysError> {
        self.check_keys("key", 1, key)?;
        self.check_values("value", 1, value)?;
        // SAFETY: the kernel reads `key_size` bytes of `key` and, the map being an LPM trie
        // (not per-CPU: checked in `new`), writes `value_size` bytes into `value`; both were
        // just checked to be exactly that long, and `value` is borrowed mutably.
        let ret = unsafe {
            bpf::bpf_map_lookup_elem(
                self.fd.as_raw_fd(),
                key.as_ptr().cast(),
                value.as_mut_ptr().cast(),
            )
        };
        found(ret)
    }
}

/// A batch's element count as a length factor (saturated where `usize` is narrower, which
/// no buffer then matches).
fn elements(count: u32) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

/// A failed batch reports how many elements it processed; a refusal before the first one
/// (permissions, unsupported) leaves the count untouched, which means none.
fn batch_result(ret: i32, done: u32, count: u32) -> Result<(), (u32, SysError)> {
    if ret >= 0 {
        return Ok(());
    }
    Err((
        if done < count { done } else { 0 },
        SysError::Kernel(Errno::from_ret(ret)),
    ))
}

/// Whether `path` lies on a BPF filesystem.
pub(crate) fn is_bpffs(path: &Path) -> Result<bool, std::io::Error> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let cpath = c_path(path).map_err(|e| std::io::Error::from_raw_os_error(e.0))?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `cpath` is NUL-terminated; `st` is writable storage for one `statfs`.
    let ret = unsafe { libc::statfs(cpath.as_ptr(), st.as_mut_ptr()) };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it filled `st` (which was zeroed to begin with).
    let st = unsafe { st.assume_init() };
    // `f_type`'s width differs between architectures; the conversion is identity on x86_64.
    #[allow(clippy::useless_conversion)]
    let f_type = i64::from(st.f_type);
    Ok(f_type == BPF_FS_MAGIC)
}

/// Mounts a bpffs at `dir`.
pub(crate) fn mount_bpffs(dir: &Path) -> Result<(), std::io::Error> {
    let target = c_path(dir).map_err(|e| std::io::Error::from_raw_os_error(e.0))?;
    let bpf = c"bpf";
    // SAFETY: all pointers are valid NUL-terminated strings living across the call; no
    // mount data is passed.
    let ret = unsafe {
        libc::mount(
            bpf.as_ptr(),
            target.as_ptr(),
            bpf.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Detaches the mount at `dir` (lazily: users of it keep what they hold).
pub(crate) fn unmount_lazy(dir: &Path) {
    if let Ok(target) = c_path(dir) {
        // SAFETY: `target` is a valid NUL-terminated path; a lazy unmount of a mount point
        // this crate made affects nothing else.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[cfg(feature = "testkit")]
/// What to do with one map of a [`BpfObject`] before it is loaded.
pub(crate) enum MapSetup<'a> {
    /// Use this open map (the kernel's key and value sizes replace the program's).
    Reuse(std::os::fd::BorrowedFd<'a>),
    /// Set its initial contents (a `.rodata` section: exactly its size).
    Initial(&'a [u8]),
    /// Leave it as the object declares it.
    Keep,
}

#[cfg(feature = "testkit")]
/// A libbpf object (a compiled BPF ELF) opened from memory, closed on drop — with it the
/// descriptors of its maps and programs.
pub(crate) struct BpfObject(*mut bpf::bpf_object);

#[cfg(feature = "testkit")]
impl Drop for BpfObject {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful `bpf_object__open_mem` and is closed
        // once, here.
        unsafe { bpf::bpf_object__close(self.0) }
    }
}

#[cfg(feature = "testkit")]
impl BpfObject {
    /// Opens `elf` as an object named `name` (libbpf's logging off).
    pub(crate) fn open(elf: &[u8], name: &str) -> Result<Self, String> {
        // SAFETY: passing None turns libbpf's logging off; no callback is kept.
        unsafe { bpf::libbpf_set_print(None) };
        let name = CString::new(name).map_err(|e| e.to_string())?;
        let opts = bpf::bpf_object_open_opts {
            sz: size_of::<bpf::bpf_object_open_opts>() as _,
            object_name: name.as_ptr(),
            ..Default::default()
        };
        // SAFETY: `elf` is a readable buffer of its length; `opts` is initialised with its own
        // size and `name` outlives the call (libbpf copies what it keeps).
        let object =
            unsafe { bpf::bpf_object__open_mem(elf.as_ptr().cast(), elf.len() as _, &opts) };
        if object.is_null() {
            return Err(format!("open object: {}", Errno::last()));
        }
        Ok(Self(object))
    }

    /// Sets up each map by its name, before the object is loaded.
    pub(crate) fn prepare_maps<'a>(
        &self,
        setup: impl Fn(&str) -> MapSetup<'a>,
    ) -> Result<(), String> {
        let mut map: *mut bpf::bpf_map = std::ptr::null_mut();
        loop {
            // SAFETY: the object is open; `map` is NULL or a map of this object.
            map = unsafe { bpf::bpf_object__next_map(self.0, map) };
            if map.is_null() {
                return Ok(());
            }
            // SAFETY: `map` is a non-null map of the open object, which it lives as long as.
            let name_ptr = unsafe { bpf::bpf_map__name(map) };
            if name_ptr.is_null() {
                return Err("a map of the object has no name".to_owned());
            }
            // SAFETY: a non-null name of a map of the open object is a NUL-terminated string
            // owned by the object, copied here before anything can free it.
            let name = unsafe { std::ffi::CStr::from_ptr(name_ptr) }
                .to_string_lossy()
                .into_owned();
            let ret = match setup(&name) {
                // SAFETY: `map` belongs to the open, not-yet-loaded object; the descriptor is
                // open for the call, during which libbpf duplicates it (the object owns the
                // copy).
                MapSetup::Reuse(fd) => unsafe { bpf::bpf_map__reuse_fd(map, fd.as_raw_fd()) },
                // SAFETY: libbpf copies exactly `value.len()` bytes from `value`, which is
                // that long (refusing with EINVAL when it is not the section's size).
                MapSetup::Initial(value) => unsafe {
                    bpf::bpf_map__set_initial_value(map, value.as_ptr().cast(), value.len() as _)
                },
                MapSetup::Keep => 0,
            };
            if ret < 0 {
                return Err(format!("prepare map {name}: {}", Errno::from_ret(ret)));
            }
        }
    }

    /// Every map the object declares (before it is loaded: as its ELF says).
    pub(crate) fn map_declarations(&self) -> Vec<MapDeclaration> {
        let mut out = Vec::new();
        let mut map: *mut bpf::bpf_map = std::ptr::null_mut();
        loop {
            // SAFETY: the object is open; `map` is NULL or a map of this object.
            map = unsafe { bpf::bpf_object__next_map(self.0, map) };
            if map.is_null() {
                return out;
            }
            // SAFETY: `map` is a non-null map of the open object; the name, when there is
            // one, is a NUL-terminated string it owns, copied at once.
            let name = unsafe {
                let p = bpf::bpf_map__name(map);
                if p.is_null() {
                    String::new()
                } else {
                    std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            // SAFETY: `map` is a map of the open object; these getters only read it.
            let declared = unsafe {
                MapDeclaration {
                    name,
                    map_type: bpf::bpf_map__type(map),
                    key_size: bpf::bpf_map__key_size(map),
                    value_size: bpf::bpf_map__value_size(map),
                    max_entries: bpf::bpf_map__max_entries(map),
                    flags: bpf::bpf_map__map_flags(map),
                }
            };
            out.push(declared);
        }
    }

    /// Loads the object into the kernel (the verifier checks its programs).
    pub(crate) fn load(&self) -> Result<(), Errno> {
        // SAFETY: the object is open and prepared.
        check(unsafe { bpf::bpf_object__load(self.0) })
    }

    /// The descriptor of the loaded program `name` (owned by the object).
    pub(crate) fn program_fd(&self, name: &str) -> Result<i32, String> {
        let cname = CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: the object is loaded; `cname` is NUL-terminated.
        let prog = unsafe { bpf::bpf_object__find_program_by_name(self.0, cname.as_ptr()) };
        if prog.is_null() {
            return Err(format!("no program {name}"));
        }
        // SAFETY: `prog` is a loaded program of the object.
        let fd = unsafe { bpf::bpf_program__fd(prog) };
        if fd < 0 {
            Err(format!("program {name} has no descriptor"))
        } else {
            Ok(fd)
        }
    }
}

/// A map as an object declares it.
#[cfg(feature = "testkit")]
pub(crate) struct MapDeclaration {
    pub(crate) name: String,
    pub(crate) map_type: u32,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) max_entries: u32,
    pub(crate) flags: u32,
}

#[cfg(feature = "testkit")]
/// What one `BPF_PROG_TEST_RUN` gave: the program's return value, the mean duration of a run
/// in ns, and the bytes of `out` it wrote.
pub(crate) struct TestRun {
    pub(crate) retval: u32,
    pub(crate) duration: u32,
    pub(crate) written: usize,
}

#[cfg(feature = "testkit")]
/// Runs the loaded program `prog` `repeat` times on `packet`, its output into `out`.
pub(crate) fn prog_test_run(
    prog: i32,
    packet: &[u8],
    out: &mut [u8],
    repeat: i32,
) -> Result<TestRun, String> {
    let size = |n: usize| u32::try_from(n).map_err(|_| "packet too large".to_owned());
    let (size_in, size_out) = (size(packet.len())?, size(out.len())?);
    if size_out == 0 {
        return Err("no room for the output packet".to_owned());
    }
    let mut opts = bpf::bpf_test_run_opts {
        sz: size_of::<bpf::bpf_test_run_opts>() as _,
        data_in: packet.as_ptr().cast(),
        data_out: out.as_mut_ptr().cast(),
        data_size_in: size_in,
        data_size_out: size_out,
        repeat,
        ..Default::default()
    };
    // SAFETY: the kernel reads `data_size_in` bytes of `packet` and writes at most
    // `data_size_out` (non-zero, checked above: a zero would not bound it) into `out`:
    // their exact lengths, both living across the call. A descriptor that is not a loaded
    // program is refused by the kernel.
    let ret = unsafe { bpf::bpf_prog_test_run_opts(prog, &mut opts) };
    if ret < 0 {
        return Err(format!("BPF_PROG_TEST_RUN: {}", Errno::from_ret(ret)));
    }
    Ok(TestRun {
        retval: opts.retval,
        duration: opts.duration,
        written: (opts.data_size_out as usize).min(out.len()),
    })
}

/// Takes an exclusive `flock` on the open file without waiting: `Ok(false)` when another open
/// file description holds one. Released when the file is closed.
pub(crate) fn try_flock_exclusive(file: &std::fs::File) -> Result<bool, std::io::Error> {
    // SAFETY: `file` is an open descriptor for the duration of the call; flock reads no memory.
    let ret = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if ret == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::fs::File;

    use egress_core::maps::{MapKeyV4, MapKeyV6, MapValueV4, MapValueV4Legacy};

    use super::*;

    const NAME: &str = "test_map";
    const K: usize = MapKeyV4::SIZE;
    const V: usize = MapValueV4::SIZE;
    const LEGACY: usize = MapValueV4Legacy::SIZE;

    fn refused(buffer: &'static str, expected: usize, found: usize) -> SysError {
        SysError::Size(BufferSizeError {
            map: NAME,
            buffer,
            expected,
            found,
        })
    }

    /// A v4_v2-sized handle on a descriptor that is not a map: buffers that pass the checks
    /// reach the kernel, which refuses the descriptor; buffers that fail them never do.
    fn not_a_map() -> MapFd {
        MapFd {
            fd: File::open("/dev/null").unwrap().into(),
            name: NAME,
            key_size: K,
            value_size: V,
        }
    }

    #[test]
    fn check_len_wants_count_times_size() {
        assert_eq!(check_len(NAME, "keys", K, 3, 3 * K), Ok(()));
        assert_eq!(check_len(NAME, "key", K, 1, K), Ok(()));
        assert_eq!(check_len(NAME, "keys", K, 0, 0), Ok(()));
        assert_eq!(
            check_len(NAME, "values", V, 3, 3 * LEGACY),
            Err(BufferSizeError {
                map: NAME,
                buffer: "values",
                expected: 3 * V,
                found: 3 * LEGACY
            })
        );
        assert!(check_len(NAME, "value", V, 1, V + 1).is_err());
        // An overflowing count × size saturates and matches no buffer.
        let huge = check_len(NAME, "keys", K, usize::MAX, usize::MAX / 2).unwrap_err();
        assert_eq!(huge.expected, usize::MAX);
        let text = huge.to_string();
        assert!(text.starts_with("test_map: keys buffer of"), "{text}");
    }

    #[test]
    fn every_element_wrapper_refuses_a_wrong_length_before_the_kernel() {
        let map = not_a_map();
        let (key, value, legacy) = ([1u8; K], [2u8; V], [3u8; LEGACY]);
        // One element: a legacy value, short and long keys.
        assert_eq!(map.update(&key, &legacy), Err(refused("value", V, LEGACY)));
        assert_eq!(
            map.update(&key[..K - 1], &value),
            Err(refused("key", K, K - 1))
        );
        assert_eq!(
            map.delete(&[0; MapKeyV6::SIZE]),
            Err(refused("key", K, MapKeyV6::SIZE))
        );
        // Batches: count × size, for keys and values.
        let keys = key.repeat(3);
        assert_eq!(
            map.update_batch(&keys, &legacy.repeat(3), 3),
            Err((0, refused("values", 3 * V, 3 * LEGACY)))
        );
        assert_eq!(
            map.update_batch(&keys, &value.repeat(4), 4),
            Err((0, refused("keys", 4 * K, 3 * K)))
        );
        assert_eq!(
            map.delete_batch(&keys, 2),
            Err((0, refused("keys", 2 * K, 3 * K)))
        );
        // Reads into buffers: the key read, the next key or the value written.
        let mut short = [0u8; K - 1];
        assert_eq!(
            map.next_key(None, &mut short),
            Err(refused("next key", K, K - 1))
        );
        let mut next = [9u8; K];
        assert_eq!(
            map.next_key(Some(&key[..4]), &mut next),
            Err(refused("key", K, 4))
        );
        let mut small = [9u8; LEGACY];
        assert_eq!(
            map.lookup(&key, &mut small),
            Err(refused("value", V, LEGACY))
        );
        let mut out = [9u8; V];
        assert_eq!(map.lookup(&key[..8], &mut out), Err(refused("key", K, 8)));
        // Nothing was written into the refused buffers.
        assert_eq!((next, small, out), ([9; K], [9; LEGACY], [9; V]));
        // The right lengths pass the checks and reach the kernel, which refuses /dev/null.
        let kernel = |r: Result<bool, SysError>| matches!(r, Err(SysError::Kernel(_)));
        assert!(kernel(map.update(&key, &value).map(|()| true)));
        assert!(kernel(map.delete(&key).map(|()| true)));
        assert!(kernel(map.next_key(None, &mut next)));
        assert!(kernel(map.lookup(&key, &mut out)));
        assert!(matches!(
            map.update_batch(&keys, &value.repeat(3), 3),
            Err((_, SysError::Kernel(_)))
        ));
        assert!(matches!(
            map.delete_batch(&keys, 3),
            Err((_, SysError::Kernel(_)))
        ));
    }

    /// A fresh unpinned v4_v2-shaped trie, or `None` (skipped) where BPF is unavailable —
    /// a failure instead under `EGRESS_REQUIRE_BPF=1`.
    fn trie(test: &str) -> Option<MapFd> {
        let created = create_map(
            bpf::BPF_MAP_TYPE_LPM_TRIE,
            NAME,
            K,
            V,
            16,
            bpf::BPF_F_NO_PREALLOC,
        );
        let fd = crate::bpffs::available_or_skip(test, created)?;
        let info = map_info(&fd).unwrap();
        Some(MapFd::new(fd, NAME, &info).unwrap())
    }

    fn contents(map: &MapFd) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        loop {
            let mut next = vec![0u8; map.key_size()];
            if !map.next_key(key.as_deref(), &mut next).unwrap() {
                return out;
            }
            let mut value = vec![0u8; map.value_size()];
            assert!(map.lookup(&next, &mut value).unwrap());
            out.push((next.clone(), value));
            key = Some(next);
        }
    }

    #[test]
    fn a_real_map_is_left_unchanged_by_refused_buffers() {
        let Some(map) = trie("a_real_map_is_left_unchanged_by_refused_buffers") else {
            return;
        };
        // The sizes come from the kernel.
        assert_eq!((map.key_size(), map.value_size()), (K, V));
        let key = |i: u8| {
            let mut b = [0u8; K];
            MapKeyV4::new([10, 0, 0, i].into(), [1, 1, 1, 0].into(), 24).encode(&mut b);
            b
        };
        let value = [7u8; V];
        map.update(&key(1), &value).unwrap();
        let before = contents(&map);
        assert_eq!(before, vec![(key(1).to_vec(), value.to_vec())]);
        // A legacy plan's bytes, one by one and batched: refused, the trie unchanged.
        let legacy = [5u8; LEGACY];
        assert_eq!(
            map.update(&key(1), &legacy),
            Err(refused("value", V, LEGACY))
        );
        assert_eq!(
            map.update(&key(2), &legacy),
            Err(refused("value", V, LEGACY))
        );
        let keys = [key(1), key(2), key(3)].concat();
        assert_eq!(
            map.update_batch(&keys, &legacy.repeat(3), 3),
            Err((0, refused("values", 3 * V, 3 * LEGACY)))
        );
        assert_eq!(
            map.delete_batch(&keys[..2 * K], 3),
            Err((0, refused("keys", 3 * K, 2 * K)))
        );
        assert_eq!(map.delete(&key(1)[..K - 4]), Err(refused("key", K, K - 4)));
        assert_eq!(contents(&map), before);
        // The right lengths go through.
        map.update_batch(&keys, &value.repeat(3), 3).unwrap();
        assert_eq!(contents(&map).len(), 3);
        map.delete_batch(&keys, 3).unwrap();
        assert!(contents(&map).is_empty());
    }
}
