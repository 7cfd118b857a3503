//! The shared library's SONAME: `libegress_ffi.so.<major>`, so that a program linked
//! against it records the ABI it needs (`NEEDED libegress_ffi.so.0`) rather than the file
//! name the linker happened to see.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".to_owned());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libegress_ffi.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
