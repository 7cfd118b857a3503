//go:build !cgo

package egressgw

// The package is a cgo binding of libegress_ffi: without cgo there is nothing to build. This
// line is the one error such a build reports.
var _ int = "egressgw needs cgo: build with CGO_ENABLED=1 and a C compiler (the library is libegress_ffi, a C library)"
