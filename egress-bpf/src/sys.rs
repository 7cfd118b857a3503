//! The only place that calls libbpf: thin wrappers that take and return owned, checked
//! values. Every `unsafe` block states why it is sound.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use libbpf_sys as bpf;

use crate::error::Errno;

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

/// Creates an LPM-trie map.
pub(crate) fn create_lpm_trie(
    name: &str,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> Result<OwnedFd, Errno> {
    let cname = CString::new(name).map_err(|_| Errno(libc::EINVAL))?;
    let opts = bpf::bpf_map_create_opts {
        sz: size_of::<bpf::bpf_map_create_opts>() as _,
        map_flags: flags,
        ..Default::default()
    };
    // SAFETY: `cname` is a valid NUL-terminated string and `opts` a fully initialised
    // struct whose `sz` is its own size; both outlive the call, which only reads them.
    let ret = unsafe {
        bpf::bpf_map_create(
            bpf::BPF_MAP_TYPE_LPM_TRIE,
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
    // SAFETY: `fd` is an open descriptor for the call's duration; `cpath` is NUL-terminated.
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
    // SAFETY: `cpath` is NUL-terminated and `opts` fully initialised with its own size.
    owned_fd(unsafe { bpf::bpf_obj_get_opts(cpath.as_ptr(), &opts) })
}

/// What the kernel says about a map.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapInfo {
    pub(crate) map_type: u32,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) max_entries: u32,
}

pub(crate) fn map_info(fd: &OwnedFd) -> Result<MapInfo, Errno> {
    let mut info = bpf::bpf_map_info::default();
    let mut len = size_of::<bpf::bpf_map_info>() as u32;
    // SAFETY: `info` is a writable struct of `len` bytes; the kernel writes at most `len`.
    check(unsafe { bpf::bpf_map_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) })?;
    Ok(MapInfo {
        map_type: info.type_,
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
    })
}

/// Writes one element.
pub(crate) fn update(fd: &OwnedFd, key: &[u8], value: &[u8]) -> Result<(), Errno> {
    // SAFETY: `key` and `value` are readable for the map's key and value sizes (the caller
    // passes encodings of exactly those sizes, checked when the map was opened).
    check(unsafe {
        bpf::bpf_map_update_elem(
            fd.as_raw_fd(),
            key.as_ptr().cast(),
            value.as_ptr().cast(),
            u64::from(bpf::BPF_ANY),
        )
    })
}

/// Deletes one element.
pub(crate) fn delete(fd: &OwnedFd, key: &[u8]) -> Result<(), Errno> {
    // SAFETY: `key` is readable for the map's key size.
    check(unsafe { bpf::bpf_map_delete_elem(fd.as_raw_fd(), key.as_ptr().cast()) })
}

/// Writes `count` elements from concatenated keys and values; on error returns how many
/// were written before the failure.
pub(crate) fn update_batch(
    fd: &OwnedFd,
    keys: &[u8],
    values: &[u8],
    count: u32,
) -> Result<(), (u32, Errno)> {
    let mut done = count;
    let opts = bpf::bpf_map_batch_opts {
        sz: size_of::<bpf::bpf_map_batch_opts>() as _,
        elem_flags: u64::from(bpf::BPF_ANY),
        flags: 0,
    };
    // SAFETY: `keys` and `values` hold `count` keys and values of the map's sizes (built
    // by the caller from fixed-size encodings); `done` is writable; `opts` is initialised.
    let ret = unsafe {
        bpf::bpf_map_update_batch(
            fd.as_raw_fd(),
            keys.as_ptr().cast(),
            values.as_ptr().cast(),
            &mut done,
            &opts,
        )
    };
    batch_result(ret, done, count)
}

/// A failed batch reports how many elements it processed; a refusal before the first one
/// (permissions, unsupported) leaves the count untouched, which means none.
fn batch_result(ret: i32, done: u32, count: u32) -> Result<(), (u32, Errno)> {
    if ret >= 0 {
        return Ok(());
    }
    Err((if done < count { done } else { 0 }, Errno::from_ret(ret)))
}

/// Deletes `count` elements from concatenated keys; on error returns how many were deleted.
pub(crate) fn delete_batch(fd: &OwnedFd, keys: &[u8], count: u32) -> Result<(), (u32, Errno)> {
    let mut done = count;
    let opts = bpf::bpf_map_batch_opts {
        sz: size_of::<bpf::bpf_map_batch_opts>() as _,
        elem_flags: 0,
        flags: 0,
    };
    // SAFETY: `keys` holds `count` keys of the map's key size; `done` is writable.
    let ret = unsafe {
        bpf::bpf_map_delete_batch(fd.as_raw_fd(), keys.as_ptr().cast(), &mut done, &opts)
    };
    batch_result(ret, done, count)
}

/// The key after `key` (the first key when `None`); `Ok(false)` at the end.
pub(crate) fn next_key(fd: &OwnedFd, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool, Errno> {
    let key_ptr = key.map_or(std::ptr::null(), |k| k.as_ptr().cast());
    // SAFETY: `key_ptr` is NULL or a readable key; `next` is writable for the key size.
    let ret =
        unsafe { bpf::bpf_map_get_next_key(fd.as_raw_fd(), key_ptr, next.as_mut_ptr().cast()) };
    match ret {
        0 => Ok(true),
        _ if Errno::from_ret(ret).0 == libc::ENOENT => Ok(false),
        _ => Err(Errno::from_ret(ret)),
    }
}

/// Reads the value of `key`; `Ok(false)` when absent.
pub(crate) fn lookup(fd: &OwnedFd, key: &[u8], value: &mut [u8]) -> Result<bool, Errno> {
    // SAFETY: `key` is readable for the key size, `value` writable for the value size.
    let ret = unsafe {
        bpf::bpf_map_lookup_elem(
            fd.as_raw_fd(),
            key.as_ptr().cast(),
            value.as_mut_ptr().cast(),
        )
    };
    match ret {
        0 => Ok(true),
        _ if Errno::from_ret(ret).0 == libc::ENOENT => Ok(false),
        _ => Err(Errno::from_ret(ret)),
    }
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
    // SAFETY: statfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // `f_type`'s width differs between architectures; the conversion is identity on x86_64.
    #[allow(clippy::useless_conversion)]
    let f_type = i64::from(st.f_type);
    Ok(f_type == BPF_FS_MAGIC)
}
