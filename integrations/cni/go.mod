module egresscni

go 1.19

require (
	egressgw v0.0.0
	github.com/containernetworking/cni v1.1.2
)

// The library's Go package, from this repository.
replace egressgw => ../../bindings/go

// The CNI project's own packages (skel, types, libcni) from Debian's
// golang-github-appc-cni-dev: nothing is fetched (GOFLAGS=-mod=mod GOPROXY=off).
replace github.com/containernetworking/cni => /usr/share/gocode/src/github.com/containernetworking/cni
