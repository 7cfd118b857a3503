//! The library's version, as a string at run time and as header macros at compile time.

use std::ffi::c_char;

/// The major version the header was generated for.
pub const EGRESS_VERSION_MAJOR: u32 = 0;
/// The minor version the header was generated for.
pub const EGRESS_VERSION_MINOR: u32 = 3;
/// The patch version the header was generated for.
pub const EGRESS_VERSION_PATCH: u32 = 0;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version (`"0.2.0"`): NUL-terminated, static, never freed. Compare it with
/// the header's `EGRESS_VERSION_*` macros to detect a header/library mismatch.
#[unsafe(no_mangle)]
pub extern "C" fn egress_version() -> *const c_char {
    VERSION.as_ptr().cast()
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
    }
}
