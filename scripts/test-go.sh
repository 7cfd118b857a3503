#!/usr/bin/env bash
# The Go package bindings/go (egressgw), as CI runs it:
#   1. cargo build --release -p egress-ffi (the package links target/release/libegress_ffi.a);
#   2. gofmt (no file to reformat), go vet;
#   3. go test -race: every example snapshot's maps, the sentinels against the header's
#      result codes, error paths, concurrent lookups and events, the cni-add example;
#   4. the cni-add example linked dynamically (-tags egressgw_dynamic): it needs
#      libegress_ffi.so and runs; the static build does not need it; the fully static build
#      (-tags egressgw_static) needs no loader and no shared library at all, and runs;
#   5. the README's Go quick start, extracted into a module of its own that requires egressgw
#      through a replace directive, as a user's module would; built and run;
#   6. the benchmarks, one pass each on a small workload (scripts/bench-go.sh --quick);
#   7. the library rebuilt with --features bpf and the package with -tags egressgw_bpf: the
#      kernel maps (Maps: create, program, dump, adopt) on a private bpffs, with the whole
#      suite again under -race. Needs root; skipped with a message when the kernel refuses the
#      mount, a failure instead under EGRESS_REQUIRE_BPF=1 (CI). The default library is
#      rebuilt afterwards (a library with the kernel calls needs -lelf -lz to link).
# Go is Debian's golang-go (1.19) or newer; nothing is fetched (GOPROXY=off).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v go >/dev/null 2>&1 || { echo "error: go not found (apt-get install golang-go)" >&2; exit 1; }
out="$root/target/go"
mkdir -p "$out"
log() { printf '==> %s\n' "$*"; }
. "$root/scripts/go-module.sh"

build_library
cd bindings/go
check_module

log "linking: static by default, dynamic with -tags egressgw_dynamic"
go build -o "$out/cni-add-static" ./examples/cni-add
go build -tags egressgw_dynamic -o "$out/cni-add-dynamic" ./examples/cni-add
if readelf -d "$out/cni-add-static" | grep -q 'libegress_ffi'; then
    echo "error: the static build needs libegress_ffi.so" >&2
    exit 1
fi
readelf -d "$out/cni-add-dynamic" | grep -q 'NEEDED.*libegress_ffi.so' || {
    echo "error: the dynamic build does not link libegress_ffi.so" >&2
    exit 1
}
cd "$root"
for build in static dynamic; do
    "$out/cni-add-$build" -f examples/snapshots/seed-gateway-group.yaml -uid 7d0c6f3e-77 \
        -label app=nginx -ip 172.22.48.77 -pod-node 172.22.48.48 > "$out/cni-add-$build.txt"
done
cmp "$out/cni-add-static.txt" "$out/cni-add-dynamic.txt"

log "a fully static binary: -tags egressgw_static"
(cd bindings/go && go build -tags egressgw_static -o "$out/cni-add-fully-static" ./examples/cni-add) \
    2>"$out/fully-static.warnings"
# glibc's link-time notes about getaddrinfo/getpwuid_r (referenced by Rust's std, never
# called by the library) are expected; anything else is an error.
if grep -v -e "warning: Using '\(getaddrinfo\|getpwuid_r\)' in statically linked" \
        -e 'in function `std::' -e '^# ' "$out/fully-static.warnings" | grep -q .; then
    cat "$out/fully-static.warnings" >&2; exit 1
fi
if readelf -l "$out/cni-add-fully-static" | grep -q INTERP || readelf -d "$out/cni-add-fully-static" | grep -q NEEDED; then
    echo "error: the egressgw_static build needs a dynamic loader or a shared library" >&2
    exit 1
fi
"$out/cni-add-fully-static" -f examples/snapshots/seed-gateway-group.yaml -uid 7d0c6f3e-77 \
    -label app=nginx -ip 172.22.48.77 -pod-node 172.22.48.48 > "$out/cni-add-fully-static.txt"
cmp "$out/cni-add-static.txt" "$out/cni-add-fully-static.txt"

log "the README's Go quick start, in a module of its own"
quick="$out/quickstart"
rm -rf "$quick" && mkdir -p "$quick"
awk '/<!-- go-quickstart -->/ { found = 1; next }
     found && /^```go$/ { inside = 1; next }
     inside && /^```$/ { exit }
     inside { print }' README.md > "$quick/main.go"
[ -s "$quick/main.go" ] || { echo "error: no Go quick start in README.md" >&2; exit 1; }
cat > "$quick/go.mod" <<MOD
module quickstart

go 1.19

require egressgw v0.0.0

replace egressgw => $root/bindings/go
MOD
(cd "$quick" && go build -o quickstart .)
"$quick/quickstart" > "$quick/output.txt"
grep -qx 'masquerade 172.22.49.119' "$quick/output.txt" || {
    echo "error: the quick start's lookup:" >&2; cat "$quick/output.txt" >&2; exit 1; }
grep -q '^broken: spec.destinationCIDRs\[0\]: ' "$quick/output.txt" || {
    echo "error: the quick start's policy error:" >&2; cat "$quick/output.txt" >&2; exit 1; }
grep -q '^upsert cilium_egress_gw_policy_v4 key 20000000ac16304d' "$quick/output.txt" || {
    echo "error: the quick start's CNI ADD:" >&2; cat "$quick/output.txt" >&2; exit 1; }

log "without cgo: one clear error"
if (cd bindings/go && CGO_ENABLED=0 go build ./ 2>"$out/nocgo.txt"); then
    echo "error: the package built without cgo" >&2; exit 1
fi
grep -q 'egressgw needs cgo' "$out/nocgo.txt" || {
    echo "error: a build without cgo does not say it needs cgo:" >&2; cat "$out/nocgo.txt" >&2; exit 1; }

log "the quick start vendored, against the installed library (-tags egressgw_pkgconfig)"
prefix="$out/prefix"
rm -rf "$prefix" && ./scripts/install-c.sh "$prefix" >/dev/null
vendored="$out/vendored"
rm -rf "$vendored" && mkdir -p "$vendored"
cp "$quick/main.go" "$quick/go.mod" "$vendored/"
(
    cd "$vendored"
    go mod vendor
    [ -f vendor/egressgw/egress_gateway.h ] || {
        echo "error: go mod vendor did not copy the package's header" >&2; exit 1; }
    PKG_CONFIG_PATH="$prefix/lib/pkgconfig" GOFLAGS=-mod=vendor \
        go build -tags egressgw_pkgconfig -o quickstart .
)
LD_LIBRARY_PATH="$prefix/lib" "$vendored/quickstart" > "$vendored/output.txt"
cmp "$quick/output.txt" "$vendored/output.txt"
readelf -d "$vendored/quickstart" | grep -q 'NEEDED.*\[libegress_ffi\.so\.0\]' || {
    echo "error: the vendored build does not load libegress_ffi.so.0" >&2; exit 1; }

log "benchmarks, one pass each (scripts/bench-go.sh --quick)"
scripts/bench-go.sh --quick > "$out/bench-quick.txt"
log "the kernel maps: --features bpf, -tags egressgw_bpf"
cargo build --quiet --release --locked -p egress-ffi --features bpf
ln -sf libegress_ffi.so target/release/libegress_ffi.so.0  # its SONAME
(cd bindings/go && go vet -tags egressgw_bpf ./... && go test -race -count=1 -tags egressgw_bpf -v ./... > "$out/test-bpf.txt") || {
    cat "$out/test-bpf.txt" >&2; exit 1; }
grep -E '^(--- SKIP|    maps_test)' "$out/test-bpf.txt" || true
grep -q '^--- PASS: TestProgramDumpAndAdoptTheKernelMaps' "$out/test-bpf.txt" ||
    echo "note: the kernel map tests were skipped (see above)"
cargo build --quiet --release --locked -p egress-ffi
ln -sf libegress_ffi.so target/release/libegress_ffi.so.0  # its SONAME
log "Go: all passed"
