# Sourced by scripts/test-go.sh and scripts/test-cni.sh: what testing a Go module on the
# library takes. Go is Debian's golang-go (1.19) or newer; nothing is fetched (GOPROXY=off).
# Needs $root (the repository) set.

export GOFLAGS="${GOFLAGS:--mod=mod}" GOPROXY=off GOTOOLCHAIN=local
export GOCACHE="${GOCACHE:-$root/target/go/cache}"

# The library the Go package links (release; target/release/libegress_ffi.a, and the .so
# with its SONAME for -tags egressgw_dynamic).
build_library() {
    log "building the library ($(go version))"
    (cd "$root" && cargo build --quiet --release --locked -p egress-ffi &&
        ln -sf libegress_ffi.so target/release/libegress_ffi.so.0)
}

# gofmt (no file to reformat), go vet, go test -race, in the current directory's module.
check_module() {
    log "gofmt, go vet"
    local unformatted
    unformatted="$(gofmt -l .)"
    if [ -n "$unformatted" ]; then
        echo "error: gofmt would reformat: $unformatted" >&2
        exit 1
    fi
    go vet ./...
    log "go test -race"
    go test -race -count=1 ./...
}
