//! Result codes and error objects: the one place where the core's errors (and the kernel
//! adapter's) become C result codes.

use std::ffi::{CStr, CString, c_char};

use egress_core::field::FieldError;
use egress_core::{Error, ErrorKind};

/// What an export did. `EGRESS_RESULT_OK` is 0; every other value is a failure. Values are
/// fixed: a retired code is never reused for another meaning.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum egress_result {
    /// Success.
    Ok = 0,
    /// A bug: the library panicked. The call did nothing reliable; free the engine.
    Panic = 1,
    /// A required pointer argument was NULL (the error's path names it).
    NullParameter = 2,
    /// A text argument is not UTF-8 (the error's path names it).
    InvalidUtf8 = 3,
    /// A `uint32_t` enum argument or field holds a value the enum does not have.
    InvalidEnum = 4,
    /// The output buffer is too small: the `*_out` count or size holds what is needed and
    /// nothing was written to the buffer.
    InsufficientSize = 5,
    /// The text is not YAML/JSON, or holds the wrong number of documents.
    Parse = 6,
    /// Input errors of a snapshot or object, each with its field path.
    Input = 7,
    /// An invalid policy: every field error, each with its path; the previous version of the
    /// policy stays in force.
    Policy = 8,
    /// A map's desired state exceeds its `max_entries` (counted before a plan is built, with
    /// the stale keys deleted first where that makes it fit); nothing was written.
    Capacity = 9,
    /// Map bytes that do not decode into an entry.
    Decode = 10,
    /// An argument's value is not accepted (an unknown node, `applied` past the taken plan, ...).
    InvalidArgument = 11,
    /// A kernel call failed (`egress_error_errno` gives its errno; 0 for a failure without one,
    /// such as a file that could not be read).
    Kernel = 12,
    /// Memory the machine refused (a plan's operations, counted before they are built):
    /// nothing was changed or handed out; the host process goes on.
    OutOfMemory = 13,
}

/// A failure on its way to C: the code and what the error object will say.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: egress_result,
    message: String,
    /// (path, reason) of each field error.
    fields: Vec<(String, String)>,
    policy: Option<String>,
    errno: i32,
}

impl Failure {
    fn new(code: egress_result, message: String) -> Self {
        Self {
            code,
            message,
            fields: Vec::new(),
            policy: None,
            errno: 0,
        }
    }

    fn about(code: egress_result, path: &str, reason: String) -> Self {
        Self {
            message: format!("{path}: {reason}"),
            fields: vec![(path.to_owned(), reason)],
            ..Self::new(code, String::new())
        }
    }

    pub(crate) fn null(name: &str) -> Self {
        Self::about(
            egress_result::NullParameter,
            name,
            "must not be NULL".to_owned(),
        )
    }

    pub(crate) fn utf8(name: &str, error: &std::str::Utf8Error) -> Self {
        Self::about(
            egress_result::InvalidUtf8,
            name,
            format!("not UTF-8 ({error})"),
        )
    }

    pub(crate) fn invalid_enum(name: &str, value: u32, accepted: &str) -> Self {
        Self::about(
            egress_result::InvalidEnum,
            name,
            format!("{value} is not one of {accepted}"),
        )
    }

    /// A bug of this library that did not panic (a document that rendered differently twice):
    /// reported as a panic is.
    pub(crate) fn bug(message: String) -> Self {
        Self::new(egress_result::Panic, message)
    }

    pub(crate) fn insufficient(name: &str, given: usize, needed: usize) -> Self {
        Self::about(
            egress_result::InsufficientSize,
            name,
            format!("{given} is too small: {needed} needed; nothing was written"),
        )
    }

    pub(crate) fn invalid_argument(name: &str, reason: String) -> Self {
        Self::about(egress_result::InvalidArgument, name, reason)
    }

    pub(crate) fn panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown payload");
        Self::new(
            egress_result::Panic,
            format!("egress-gateway panicked (a bug; please report it): {what}"),
        )
    }

    /// A kernel failure with its errno (0 when there is none).
    #[cfg(feature = "bpf")]
    pub(crate) fn kernel(message: String, errno: i32) -> Self {
        Self {
            errno,
            ..Self::new(egress_result::Kernel, message)
        }
    }
}

impl From<Error> for Failure {
    /// The mapping from the core's error kinds to result codes.
    fn from(error: Error) -> Self {
        let code = match error.kind() {
            ErrorKind::Parse => egress_result::Parse,
            ErrorKind::Input => egress_result::Input,
            ErrorKind::Policy => egress_result::Policy,
            ErrorKind::Capacity => egress_result::Capacity,
            ErrorKind::Decode => egress_result::Decode,
            ErrorKind::InvalidArgument => egress_result::InvalidArgument,
            ErrorKind::OutOfMemory => egress_result::OutOfMemory,
            // A kind added to the core later: an argument problem until it gets its own code.
            _ => egress_result::InvalidArgument,
        };
        Self {
            fields: error
                .field_errors()
                .iter()
                .map(|f| (f.path.clone(), f.reason.to_string()))
                .collect(),
            policy: error.policy_name().map(str::to_owned),
            ..Self::new(code, error.to_string())
        }
    }
}

impl From<FieldError> for Failure {
    fn from(error: FieldError) -> Self {
        Error::InvalidArgument(error).into()
    }
}

#[cfg(feature = "bpf")]
impl From<egress_bpf::Error> for Failure {
    fn from(error: egress_bpf::Error) -> Self {
        use egress_bpf::ErrorKind as Kind;
        let code = match error.kind() {
            Kind::Capacity => egress_result::Capacity,
            Kind::OutOfMemory => egress_result::OutOfMemory,
            Kind::Decode => egress_result::Decode,
            Kind::InvalidArgument => egress_result::InvalidArgument,
            _ => egress_result::Kernel,
        };
        Self {
            code,
            ..Self::kernel(error.to_string(), error.errno().map_or(0, |e| e.0))
        }
    }
}

/// Text for C: NUL-terminated, with any NUL inside replaced (it would end the string).
fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{fffd}")).unwrap_or_default()
}

/// A failure's details: code, message, field errors (path and reason each), the invalid
/// policy's name and the errno. Opaque; read it with the `egress_error_*` accessors, free it
/// with `egress_error_free`. Strings it returns live as long as the error.
pub struct egress_error {
    code: egress_result,
    message: CString,
    fields: Vec<(CString, CString)>,
    policy: Option<CString>,
    errno: i32,
}

impl egress_error {
    pub(crate) fn boxed(failure: Failure) -> *mut egress_error {
        let error = egress_error {
            code: failure.code,
            message: c_text(&failure.message),
            fields: failure
                .fields
                .iter()
                .map(|(path, reason)| (c_text(path), c_text(reason)))
                .collect(),
            policy: failure.policy.as_deref().map(c_text),
            errno: failure.errno,
        };
        Box::into_raw(Box::new(error))
    }
}

const EMPTY: &CStr = c"";

/// The error's result code (`EGRESS_RESULT_NULL_PARAMETER` for a NULL error).
///
/// # Safety
/// `error` is NULL or an error from this library, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_error_code(error: *const egress_error) -> egress_result {
    // SAFETY: the caller's promise.
    unsafe { error.as_ref() }.map_or(egress_result::NullParameter, |e| e.code)
}

/// The whole message as UTF-8 with a terminating NUL, one line per field error:
/// `<path>: <reason>`, or `<policy>: <path>: <reason>` for an invalid policy (`<unnamed>`
/// when it has no name). Valid until the error is freed; `""` for a NULL error.
///
/// # Safety
/// `error` is NULL or an error from this library, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_error_message(error: *const egress_error) -> *const c_char {
    // SAFETY: the caller's promise.
    unsafe { error.as_ref() }.map_or(EMPTY.as_ptr(), |e| e.message.as_ptr())
}

/// The path of the first field error (`spec.egressGateways[1].egressIP`, `local_node`, ...),
/// or NULL when the error is not about a field. Valid until the error is freed.
///
/// # Safety
/// `error` is NULL or an error from this library, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_error_path(error: *const egress_error) -> *const c_char {
    // SAFETY: the caller's promise.
    unsafe { egress_error_field_path(error, 0) }
}

/// The number of field errors (every error of an invalid policy or input; 0 when the error
/// is not about fields).
///
/// # Safety
/// `error` is NULL or an error from this library, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_error_field_count(error: *const egress_error) -> usize {
    // SAFETY: the caller's promise.
    unsafe { error.as_ref() }.map_or(0, |e| e.fields.len())
}

/// Field error `index`'s path, or NULL when `index` is out of range. Valid until the error
/// is freed.
///
/// # Safety
/// `error` is NULL or an error from this library, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_error_field_path(
    error: *const egress_error,
    index: usize,
) -> *const c_char {
    // SAFETY: the caller's promise.
    let field = unsafe { error.as_ref() }.and_then(|e| e.fields.get(index));
    field.map_or(std::ptr::null(), |(path, _)| path.as_ptr())
}

/// Field error `index`'s reason (`Required value`, `Invalid value: "x": ...`), or NULL when
/// `index` is out of range. Valid until the error is freed.
///
/// # Safety
/// `error` is NULL or an error from this library, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_error_field_reason(
    error: *const egress_error,
    index: usize,
) -> *const c_char {
    // SAFETY: the caller's promise.
    let field = unsafe { error.as_ref() }.and_then(|e| e.fields.get(index));
    field.map_or(std::ptr::null(), |(_, reason)| reason.as_ptr())
}

/// The invalid policy's `metadata.name` for `EGRESS_RESULT_POLICY` (NULL when it has none or
/// for other errors). Valid until the error is freed.
///
/// # Safety
/// `error` is NULL or an error from this library, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_error_policy(error: *const egress_error) -> *const c_char {
    // SAFETY: the caller's promise.
    let policy = unsafe { error.as_ref() }.and_then(|e| e.policy.as_ref());
    policy.map_or(std::ptr::null(), |p| p.as_ptr())
}

/// The errno of a failed kernel call (`EGRESS_RESULT_KERNEL`), else 0.
///
/// # Safety
/// `error` is NULL or an error from this library, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_error_errno(error: *const egress_error) -> i32 {
    // SAFETY: the caller's promise.
    unsafe { error.as_ref() }.map_or(0, |e| e.errno)
}

/// Frees an error. NULL is a no-op.
///
/// # Safety
/// `error` is NULL or an error from this library, not yet freed; it is invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_error_free(error: *mut egress_error) {
    if !error.is_null() {
        // SAFETY: made by Box::into_raw in `boxed`, freed once (the caller's promise).
        drop(unsafe { Box::from_raw(error) });
    }
}
