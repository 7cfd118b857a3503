#!/usr/bin/env bash
# Installs the C library as a C project ships a dependency:
#   PREFIX/include/egress_gateway.h
#   PREFIX/lib/libegress_ffi.a
#   PREFIX/lib/libegress_ffi.so.VERSION (SONAME libegress_ffi.so.MAJOR) + .so.MAJOR and .so links
#   PREFIX/lib/pkgconfig/egress_gateway.pc
# built with the `dist` profile (no debug info, stripped shared library). A C program then
# links with `pkg-config --cflags --libs egress_gateway` (dynamic) or, fully static,
# `cc -static ... $(pkg-config --static --cflags --libs egress_gateway)`.
# Usage: scripts/install-c.sh PREFIX [--features bpf]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ "$#" -lt 1 ]; then
    echo "usage: scripts/install-c.sh PREFIX [--features bpf]" >&2
    exit 2
fi
prefix="$1"
shift
features=()
private_extra=""
if [ "$#" -gt 0 ]; then
    if [ "$*" != "--features bpf" ]; then
        echo "error: unknown arguments: $* (only --features bpf)" >&2
        exit 2
    fi
    features=(--features bpf)
    # libbpf (vendored into the library) needs libelf and zlib.
    private_extra=" -lelf -lz"
fi
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
major="${version%%.*}"
cargo build --quiet --locked --profile dist -p egress-ffi "${features[@]}"
install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 0644 include/egress_gateway.h "$prefix/include/"
install -m 0644 target/dist/libegress_ffi.a "$prefix/lib/"
# The standard library's objects in the archive carry debug info: not shipped.
strip --strip-debug "$prefix/lib/libegress_ffi.a"
install -m 0755 target/dist/libegress_ffi.so "$prefix/lib/libegress_ffi.so.$version"
ln -sf "libegress_ffi.so.$version" "$prefix/lib/libegress_ffi.so.$major"
ln -sf "libegress_ffi.so.$major" "$prefix/lib/libegress_ffi.so"
# The system libraries Rust's standard library needs in a static link (`cargo rustc
# --crate-type staticlib -- --print native-static-libs`), with libgcc_eh for unwinding so
# that a fully static link (-static) works as well as a static link of this library alone.
cat > "$prefix/lib/pkgconfig/egress_gateway.pc" <<PC
prefix=$prefix
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: egress_gateway
Description: Cilium egress gateway maps, computed and programmed (the C ABI of egress-gateway)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -legress_ffi
Libs.private: -lgcc_eh -lutil -lrt -lpthread -lm -ldl -lc$private_extra
PC
echo "installed egress_gateway $version in $prefix"
