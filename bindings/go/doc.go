// Package egressgw is the egress-gateway engine for Go programs — CNI plugins, agents,
// tooling — over its C ABI (include/egress_gateway.h). It computes Kubernetes egress
// gateway policy exactly as Cilium does and the byte-exact entries of Cilium's BPF maps:
// feed it policies, nodes and endpoints as events, take plans, write them to the maps,
// acknowledge them; ask it what the datapath does with a packet, and why.
//
// # Building
//
// The package links the library that `cargo build --release -p egress-ffi` makes, from
// target/release of the repository two directories up: statically by default (a built
// binary needs no shared library at run time). With the build tag egressgw_dynamic it links
// libegress_ffi.so with an rpath to that directory (loaded as its SONAME
// libegress_ffi.so.0: `ln -s libegress_ffi.so target/release/libegress_ffi.so.0`, or install
// the library with scripts/install-c.sh); with egressgw_external it links nothing
// itself and the library comes from CGO_LDFLAGS (another target directory, a system
// install); with egressgw_static the binary is fully static (-static: no dynamic loader, no
// shared library, libc included). The standard library is all it imports.
//
// With the build tag egressgw_bpf the package also programs the kernel: Maps opens or
// creates Cilium's pinned maps, writes an engine's plans into them, reads them back, and
// Engine.AdoptMaps makes a restarted agent write only the difference. The library must then
// be built with `--features bpf`, and libelf and zlib are linked too; without the tag, build
// the library without that feature (its kernel calls would need them to link).
//
// # Concurrency
//
// An Engine may be shared between goroutines. The queries — Lookup, LookupBatch, MapsJSON,
// Entries, Explain, ConflictsJSON, Stats — run concurrently with each other. The events
// (Upsert*, Delete*, SetDevices), TakePlan, Ack, Adopt and Close need the engine to
// themselves, as the C ABI requires: a read-write mutex makes them wait for every call in
// progress, and makes the others wait for them. No Go pointer is kept by C past a call.
//
// # Errors
//
// Every failure is an *Error (its Code, Message, every field error with its path, the
// errno) or a *PolicyError (an invalid policy, which unwraps to its *Error), and errors.Is
// matches one sentinel per result code of the header (ErrPolicy, ErrInput, ErrCapacity,
// ...) and ErrClosed after Close. Arguments refused on the Go side (a zero netip.Addr) are
// ErrInvalidArgument errors that name them as the library names its own.
package egressgw
