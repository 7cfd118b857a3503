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
//	egressgw_bpf       the kernel calls (Maps): the library must be built with
//	                   `--features bpf`, and libelf and zlib are linked too.
//
// The system libraries are those `cargo rustc --release -p egress-ffi --crate-type
// staticlib -- --print native-static-libs` lists on x86_64 Linux.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo egressgw_bpf CFLAGS: -DEGRESS_FEATURE_BPF
#cgo !egressgw_dynamic,!egressgw_external LDFLAGS: ${SRCDIR}/../../target/release/libegress_ffi.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
#cgo egressgw_dynamic,!egressgw_external LDFLAGS: -L${SRCDIR}/../../target/release -legress_ffi -Wl,-rpath,${SRCDIR}/../../target/release
#cgo egressgw_bpf,!egressgw_external LDFLAGS: -lelf -lz
#include "egress_gateway.h"
#include "shim.h"
*/
import "C"
