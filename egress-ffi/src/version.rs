//! The library's version, as a string at run time and as header macros at compile time.

use std::ffi::c_char;

use crate::boundary::{checked_out, run};
use crate::egress_result;
use crate::error::egress_error;
use crate::types::{cilium_version, layout_number};

/// The major version the header was generated for.
pub const EGRESS_VERSION_MAJOR: u32 = 0;
/// The minor version the header was generated for.
pub const EGRESS_VERSION_MINOR: u32 = 4;
/// The patch version the header was generated for.
pub const EGRESS_VERSION_PATCH: u32 = 0;

/// The version as one number, `(MAJOR << 16) | (MINOR << 8) | PATCH`, the header's side of
/// `egress_abi_version()`.
pub const EGRESS_ABI_VERSION: u32 =
    (EGRESS_VERSION_MAJOR << 16) | (EGRESS_VERSION_MINOR << 8) | EGRESS_VERSION_PATCH;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The linked library's version as one number, `(MAJOR << 16) | (MINOR << 8) | PATCH`:
/// compare it with the header's `EGRESS_ABI_VERSION` at startup
/// (`if (egress_abi_version() != EGRESS_ABI_VERSION) abort();`) to refuse a library built
/// from other sources than the header. Needs nothing else of the library.
#[unsafe(no_mangle)]
pub extern "C" fn egress_abi_version() -> u32 {
    EGRESS_ABI_VERSION
}

/// The library's version (`"MAJOR.MINOR.PATCH"`): NUL-terminated, static, never freed.
/// Compare it with the header's `EGRESS_VERSION_*` macros to detect a header/library
/// mismatch.
#[unsafe(no_mangle)]
pub extern "C" fn egress_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The IPv4 map layout Cilium `version` writes (`EGRESS_CILIUM_*`; CILIUM-VERSIONS.md §5) into
/// `*layout_out`: `EGRESS_LAYOUT_LEGACY` for 1.18 and 1.19, `EGRESS_LAYOUT_DUAL` for 1.20 —
/// the layout an engine of `EGRESS_LAYOUT_VERSION` plans for, which `egress_maps_open` needs
/// named. An unknown version is `EGRESS_RESULT_INVALID_ENUM` (path `version`).
///
/// # Safety
/// `layout_out` is valid for a write; `error_out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_cilium_version_layout(
    version: u32,
    layout_out: *mut u32,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let out = checked_out(layout_out, "layout_out")?;
            let layout = layout_number(cilium_version(version, "version")?.layout());
            out.write(layout);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_macros_equal_the_crate_version() {
        let parts = [
            env!("CARGO_PKG_VERSION_MAJOR"),
            env!("CARGO_PKG_VERSION_MINOR"),
            env!("CARGO_PKG_VERSION_PATCH"),
        ];
        let macros = [
            EGRESS_VERSION_MAJOR,
            EGRESS_VERSION_MINOR,
            EGRESS_VERSION_PATCH,
        ];
        for (part, value) in parts.iter().zip(macros) {
            assert_eq!(part.parse::<u32>().ok(), Some(value));
        }
        // SAFETY: a static NUL-terminated string.
        let text = unsafe { std::ffi::CStr::from_ptr(egress_version()) };
        assert_eq!(text.to_str().ok(), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(
            egress_abi_version(),
            (macros[0] << 16) | (macros[1] << 8) | macros[2]
        );
    }
}
