//! The one boundary every export goes through: panics caught, pointers NULL-checked, slices
//! built without `from_raw_parts(NULL, 0)`, UTF-8 validated, and failures turned into a
//! result code plus an optional error object.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use crate::error::{Failure, egress_error, egress_result};

/// Runs an export's body: `*error_out` is cleared first (when given), a failure or a panic
/// becomes its result code and, when `error_out` is not NULL, an error object the caller
/// frees with `egress_error_free`. A misaligned `error_out` cannot be written: the call is
/// refused with `EGRESS_RESULT_INVALID_ARGUMENT` before anything is done.
///
/// # Safety
/// `error_out` is NULL or valid for one pointer write.
pub(crate) unsafe fn run(
    error_out: *mut *mut egress_error,
    body: impl FnOnce() -> Result<(), Failure>,
) -> egress_result {
    if !error_out.is_aligned() {
        return egress_result::InvalidArgument;
    }
    if !error_out.is_null() {
        // SAFETY: not NULL, and the caller promises it is valid for writes.
        unsafe { error_out.write(ptr::null_mut()) };
    }
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return egress_result::Ok,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::panic(payload.as_ref()),
    };
    let code = failure.code;
    // A buffer too small is the answer to a size query, not a failure to describe: the
    // size needed is in the call's count output, and no error object is handed out (a
    // size-query loop would otherwise allocate, and leak, one per call).
    if !error_out.is_null() && code != egress_result::InsufficientSize {
        // Building the error object allocates; a panic there must not cross into C either.
        if let Ok(error) = catch_unwind(AssertUnwindSafe(|| egress_error::boxed(failure))) {
            // SAFETY: as above.
            unsafe { error_out.write(error) };
        }
    }
    code
}

/// [`run`] for the exports without an error object (the lookups): the code only. Inlined
/// so that a lookup through the ABI is one call into the engine, not two.
#[inline(always)]
pub(crate) fn run_code(body: impl FnOnce() -> Result<(), egress_result>) -> egress_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => egress_result::Ok,
        Ok(Err(code)) => code,
        Err(_) => egress_result::Panic,
    }
}

/// A shared reference to what `ptr` points at, or a NULL-parameter failure naming `name`.
///
/// # Safety
/// `ptr` is NULL or points at a valid `T` not mutated for `'a`.
pub(crate) unsafe fn reference<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    aligned(ptr, name)?;
    // SAFETY: the caller's promise; aligned.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// Refuses a pointer not aligned for `T` (a reference to it, or a write through it, would be
/// undefined behaviour); NULL passes, for the callers' own NULL checks.
pub(crate) fn aligned<T>(ptr: *const T, name: &str) -> Result<(), Failure> {
    if ptr.is_aligned() {
        Ok(())
    } else {
        Err(Failure::invalid_argument(
            name,
            format!("not aligned to {} bytes", align_of::<T>()),
        ))
    }
}

/// An exclusive reference to what `ptr` points at, or a NULL-parameter failure.
///
/// # Safety
/// `ptr` is NULL or points at a valid `T` nothing else accesses for `'a`.
pub(crate) unsafe fn exclusive<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    aligned(ptr, name)?;
    // SAFETY: the caller's promise; aligned.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// Checks an output pointer: not NULL, aligned.
pub(crate) fn checked_out<T>(ptr: *mut T, name: &str) -> Result<*mut T, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    aligned(ptr, name)?;
    Ok(ptr)
}

/// `len` elements at `ptr`; an empty slice when `len` is 0, whatever `ptr` is.
///
/// # Safety
/// When `len > 0`, `ptr` is NULL or points at `len` valid, aligned `T`s not mutated for `'a`.
pub(crate) unsafe fn slice<'a, T>(
    ptr: *const T,
    len: usize,
    name: &str,
) -> Result<&'a [T], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    aligned(ptr, name)?;
    check_extent::<T>(len, name)?;
    // SAFETY: not NULL, aligned, the extent fits an isize, and the caller promises `len`
    // valid items.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `len` writable elements at `ptr` (an empty slice when `len` is 0).
///
/// # Safety
/// When `len > 0`, `ptr` is NULL or points at `len` aligned `T`s, writable and not otherwise
/// accessed for `'a` (their contents may be uninitialised: callers only write `Copy` data).
pub(crate) unsafe fn slice_mut<'a, T: Copy>(
    ptr: *mut T,
    len: usize,
    name: &str,
) -> Result<&'a mut [T], Failure> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    aligned(ptr, name)?;
    check_extent::<T>(len, name)?;
    // SAFETY: not NULL, aligned, the extent fits an isize, and the caller promises `len`
    // writable items; `T: Copy` has no drop glue, so overwriting uninitialised items is sound.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

fn check_extent<T>(len: usize, name: &str) -> Result<(), Failure> {
    match len.checked_mul(size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(Failure::invalid_argument(
            name,
            format!("{len} items do not fit in memory"),
        )),
    }
}

/// UTF-8 text of `len` bytes at `ptr` (empty when `len` is 0).
///
/// # Safety
/// As [`slice`].
pub(crate) unsafe fn utf8<'a>(ptr: *const u8, len: usize, name: &str) -> Result<&'a str, Failure> {
    // SAFETY: forwarded.
    let bytes = unsafe { slice(ptr, len, name) }?;
    std::str::from_utf8(bytes).map_err(|e| Failure::utf8(name, &e))
}

/// Optional UTF-8 text: `None` when `ptr` is NULL or `len` is 0.
///
/// # Safety
/// As [`slice`].
pub(crate) unsafe fn optional_text<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: forwarded.
    unsafe { utf8(ptr, len, name) }.map(Some)
}

/// Copies `bytes` into the caller's buffer, or reports the size needed without writing.
///
/// # Safety
/// `buf` as [`slice_mut`] with `buf_len`; `written_out` valid for one write (checked for NULL).
pub(crate) unsafe fn copy_out(
    bytes: &[u8],
    buf: *mut u8,
    buf_len: usize,
    written_out: *mut usize,
) -> Result<(), Failure> {
    let written_out = checked_out(written_out, "written_out")?;
    // SAFETY: checked for NULL; the caller promises it is valid.
    unsafe { written_out.write(bytes.len()) };
    if bytes.len() > buf_len {
        return Err(Failure::insufficient("buf_len", buf_len, bytes.len()));
    }
    // SAFETY: forwarded from the caller.
    let buf = unsafe { slice_mut(buf, buf_len, "buf") }?;
    buf[..bytes.len()].copy_from_slice(bytes);
    Ok(())
}

/// A document written twice by `write`: once to count its bytes (nothing held), then, when
/// the caller's buffer holds it, into that buffer — never the whole text in memory, so that
/// the size of a document of millions of entries costs nothing to ask for. `write` must
/// write the same bytes both times (the engine is borrowed shared meanwhile, so it does);
/// were it not so, the call fails as a bug (`EGRESS_RESULT_PANIC`) with the buffer written
/// only within its first `*written_out` bytes.
///
/// # Safety
/// As [`copy_out`].
pub(crate) unsafe fn stream_out(
    write: impl Fn(&mut dyn std::io::Write) -> std::io::Result<()>,
    buf: *mut u8,
    buf_len: usize,
    written_out: *mut usize,
) -> Result<(), Failure> {
    /// Counts bytes, keeps none.
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let written_out = checked_out(written_out, "written_out")?;
    let mut counter = Counter(0);
    write(&mut counter).map_err(|e| Failure::bug(format!("rendering: {e}")))?;
    let size = counter.0;
    // SAFETY: checked for NULL; the caller promises it is valid.
    unsafe { written_out.write(size) };
    if size > buf_len {
        return Err(Failure::insufficient("buf_len", buf_len, size));
    }
    // SAFETY: forwarded from the caller.
    let buf = unsafe { slice_mut(buf, buf_len, "buf") }?;
    let mut rest: &mut [u8] = &mut buf[..size];
    write(&mut rest).map_err(|e| Failure::bug(format!("rendering: {e}")))?;
    if !rest.is_empty() {
        return Err(Failure::bug("the document changed while written".into()));
    }
    Ok(())
}

/// Writes the `needed` items into the caller's array, or reports how many are needed without writing.
///
/// # Safety
/// `buf` as [`slice_mut`] with `buf_len` (the names are the export's parameters, for errors);
/// `count_out` valid for one write (checked for NULL).
pub(crate) unsafe fn fill<T: Copy>(
    needed: usize,
    items: impl Iterator<Item = T>,
    (buf, buf_name): (*mut T, &str),
    (buf_len, len_name): (usize, &str),
    count_out: *mut usize,
) -> Result<(), Failure> {
    let count_out = checked_out(count_out, "count_out")?;
    // SAFETY: checked for NULL; the caller promises it is valid.
    unsafe { count_out.write(needed) };
    if needed > buf_len {
        return Err(Failure::insufficient(len_name, buf_len, needed));
    }
    // SAFETY: forwarded from the caller.
    let buf = unsafe { slice_mut(buf, buf_len, buf_name) }?;
    for (slot, item) in buf.iter_mut().zip(items) {
        *slot = item;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{
        egress_error_code, egress_error_free, egress_error_message, egress_error_path,
    };

    #[test]
    fn a_panic_becomes_a_result_code_and_an_error() {
        let mut error: *mut egress_error = ptr::dangling_mut();
        // SAFETY: `error` is valid for writes.
        let code = unsafe { run(&mut error, || panic!("boom")) };
        assert_eq!(code, egress_result::Panic);
        // SAFETY: the error was just made.
        unsafe {
            assert_eq!(egress_error_code(error), egress_result::Panic);
            let message = std::ffi::CStr::from_ptr(egress_error_message(error));
            assert!(
                message.to_str().is_ok_and(|m| m.contains("boom")),
                "{message:?}"
            );
            assert!(egress_error_path(error).is_null());
            egress_error_free(error);
        }
        assert_eq!(run_code(|| panic!("boom")), egress_result::Panic);
    }

    #[test]
    fn success_clears_the_error_slot_and_no_slot_is_fine() {
        let mut error: *mut egress_error = ptr::dangling_mut();
        // SAFETY: `error` is valid for writes.
        assert_eq!(unsafe { run(&mut error, || Ok(())) }, egress_result::Ok);
        assert!(error.is_null());
        // SAFETY: a NULL slot is allowed.
        let code = unsafe { run(ptr::null_mut(), || Err(Failure::null("x"))) };
        assert_eq!(code, egress_result::NullParameter);
    }

    /// A misaligned error slot is refused before the body runs and never written (the fuzz
    /// target `c_abi` found the write).
    #[test]
    fn a_misaligned_error_slot_is_refused_untouched() {
        let mut slots = [0u8; 2 * size_of::<usize>()];
        let misaligned = slots[1..].as_mut_ptr().cast::<*mut egress_error>();
        let mut ran = false;
        // SAFETY: the pointer is into `slots`; `run` must not write through it.
        let code = unsafe {
            run(misaligned, || {
                ran = true;
                Err(Failure::null("x"))
            })
        };
        assert_eq!(code, egress_result::InvalidArgument);
        assert!(!ran);
        assert_eq!(slots, [0u8; 2 * size_of::<usize>()]);
    }

    #[test]
    fn empty_slices_need_no_pointer_and_others_do() {
        // SAFETY: length 0 never reads the pointer; NULL is checked before use.
        unsafe {
            assert_eq!(
                slice::<u8>(ptr::null(), 0, "a").map(<[u8]>::len).ok(),
                Some(0)
            );
            assert!(slice::<u8>(ptr::null(), 1, "a").is_err());
            assert!(slice::<u64>(ptr::dangling(), usize::MAX / 4, "a").is_err());
            assert_eq!(utf8(b"ok".as_ptr(), 2, "t").ok(), Some("ok"));
            let bad = [0xc3u8];
            assert_eq!(
                utf8(bad.as_ptr(), 1, "t").err().map(|f| f.code),
                Some(egress_result::InvalidUtf8)
            );
            assert_eq!(optional_text(ptr::null(), 0, "t").ok(), Some(None));
        }
    }
}
