package egressgw

// Every #cgo line of the package is here.
//
// By default the package links target/release/libegress_ffi.a (what
// `cargo build --release -p egress-ffi` makes, two directories up), so a built binary needs
// no shared library at run time. Build tags:
//
//	egressgw_dynamic   link libegress_ffi.so instead, found at run time through an rpath to
//	                   target/release (or LD_LIBRARY_PATH) under its SONAME
//	                   libegress_ffi.so.0 (scripts/install-c.sh makes that link);
//	egressgw_external  link nothing here: give the library in CGO_LDFLAGS yourself (another
//	                   target directory, a system install);
//	egressgw_pkgconfig link the library scripts/install-c.sh installed, through
//	                   `pkg-config egress_gateway` (PKG_CONFIG_PATH): what a module that
//	                   vendors this package uses, the repository's target/ being out of reach;
//	egressgw_static    a fully static binary (no shared library at all, libc included):
//	                   target/release/libegress_ffi.a linked with -static, unwinding from
//	                   libgcc_eh instead of libgcc_s; needs the static C libraries
//	                   (Debian's libc6-dev has them; with egressgw_bpf also libelf and
//	                   zlib's static archives);
//	egressgw_bpf       the kernel calls (Maps): the library must be built with
//	                   `--features bpf`, and libelf and zlib are linked too.
//
// The system libraries are those `cargo rustc --release -p egress-ffi --crate-type
// staticlib -- --print native-static-libs` lists on x86_64 Linux. The header is this
// directory's copy of include/egress_gateway.h (kept equal by egress-ffi's header test), so
// that a vendored copy of the package compiles.

/*
#cgo CFLAGS: -I${SRCDIR}
#cgo egressgw_bpf CFLAGS: -DEGRESS_FEATURE_BPF
#cgo !egressgw_dynamic,!egressgw_external,!egressgw_pkgconfig,!egressgw_static LDFLAGS: ${SRCDIR}/../../target/release/libegress_ffi.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
#cgo egressgw_static,!egressgw_dynamic,!egressgw_external,!egressgw_pkgconfig LDFLAGS: -static ${SRCDIR}/../../target/release/libegress_ffi.a -lgcc_eh -lutil -lrt -lpthread -lm -ldl
#cgo egressgw_dynamic,!egressgw_external,!egressgw_pkgconfig LDFLAGS: -L${SRCDIR}/../../target/release -legress_ffi -Wl,-rpath,${SRCDIR}/../../target/release
#cgo egressgw_pkgconfig pkg-config: egress_gateway
#cgo egressgw_bpf,!egressgw_external LDFLAGS: -lelf -lz
#include "egress_gateway.h"
#include "shim.h"
*/
import "C"

import "fmt"

// The linked library is the one this package's header describes: a library built from other
// sources (a stale target/release after a pull, another installed version) is refused at
// startup rather than misread at the first call.
func init() {
	if linked, want := uint32(C.egress_abi_version()), uint32(C.EGRESS_ABI_VERSION); linked != want {
		panic(fmt.Sprintf("egressgw: the linked libegress_ffi is %s (ABI %#x) but this package's header is %d.%d.%d (ABI %#x): rebuild or reinstall the library (cargo build --release -p egress-ffi)",
			C.GoString(C.egress_version()), linked, C.EGRESS_VERSION_MAJOR, C.EGRESS_VERSION_MINOR, C.EGRESS_VERSION_PATCH, want))
	}
}
