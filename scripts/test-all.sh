#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing, then runs
# formatting and lint checks and the whole test suite. Used by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# Every kernel test that skips (no root, no BPF) appends one line `LANGUAGE TEST: WHY` to this
# file, whatever its language and working directory (an absolute path); the last line printed
# counts them, after listing them. EGRESS_REQUIRE_BPF=1 (CI) fails a skip instead: 0 there.
EGRESS_SKIP_LOG="$(realpath "$(mktemp)")"
export EGRESS_SKIP_LOG
: >"$EGRESS_SKIP_LOG"
skip_count() { wc -l <"$EGRESS_SKIP_LOG"; }
report_skips() {
    local count
    count="$(skip_count)" || count="? (EGRESS_SKIP_LOG=$EGRESS_SKIP_LOG unreadable)"
    sed 's/^/    /' "$EGRESS_SKIP_LOG" >&2 || true
    rm -f "$EGRESS_SKIP_LOG"
    log "kernel tests skipped: $count"
}
trap report_skips EXIT

# --- toolchain -------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    # rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH.
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        log "installing rustup component $component"
        rustup component add "$component"
    fi
done

# System packages: libbpf-sys builds its vendored libbpf with make and a C compiler against
# libelf and zlib (found with pkg-config); the datapath test compiles its BPF program with
# clang (and asks gcc for the multiarch include path); `egressctl list --interfaces host`
# reads devices with iproute2's `ip -j`.
missing=()
command -v make >/dev/null 2>&1 || missing+=(make)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# The C ABI checks (scripts/test-c.sh): the header as C++17, the C tests under valgrind.
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v readelf >/dev/null 2>&1 || missing+=(binutils)
# The Python module (scripts/test-python.sh): a Python 3 with venv (ensurepip).
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# The Go package (scripts/test-go.sh): Debian's Go toolchain; no module is downloaded.
command -v go >/dev/null 2>&1 || missing+=(golang-go)
# egress-lab (the seed's experiment in network namespaces): bpftool loads its tc programs,
# libbpf's headers compile them, nsenter (util-linux) attaches them inside a namespace.
command -v bpftool >/dev/null 2>&1 || missing+=(bpftool)
[ -f /usr/include/bpf/bpf_helpers.h ] || missing+=(libbpf-dev)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
{ [ -x /usr/bin/kill ] || [ -x /bin/kill ]; } || missing+=(procps)
pkg-config --exists libelf 2>/dev/null || missing+=(libelf-dev)
pkg-config --exists zlib 2>/dev/null || missing+=(zlib1g-dev)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The example fixtures are in examples/snapshots (a test keeps them equal to
# ../shared/examples when that sits beside the checkout).

# --- checks ------------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
# The fuzz crate is a workspace of its own (cargo fuzz builds it).
rustfmt --edition 2024 --check fuzz/fuzz_targets/*.rs
# --workspace includes egress-bpf and the benches (not default members); --all-features
# builds egressctl's kernel commands. Kernel tests mount private bpffs instances: they need
# root (CI is); EGRESS_REQUIRE_BPF=1 (set by .ci/run) makes a skipped kernel test a failure.
log "cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# egress-bpf without its testkit feature (the product's build): no dead code left behind.
cargo clippy -p egress-bpf --all-targets --locked -- -D warnings
# The CNI integration first: egress-agent and the egress-cni plugin on the Go package (go test
# -race, the plugin run as a runtime runs it, the kernel maps, libcni with the reference ptp
# plugin in network namespaces, the commands end to end); it builds the commands into
# target/cni, which every egress-lab run (in cargo test below) uses.
log "CNI integration (scripts/test-cni.sh)"
./scripts/test-cni.sh
log "cargo test"
cargo test --workspace --all-features --locked
# The B.10 examples' expected maps, derived again from the rules without the engine (the CLI
# test above compares the engine's output with the same files).
log "examples: seed-gateway-group dumps derived from the rules"
python3 examples/snapshots/dumps/derive-seed-gateway-group.py --check
# The C ABI from C: header drift is checked by `cargo test` (egress-ffi/tests/header.rs);
# here the header as C11/C++17, the C tests and examples under sanitizers and valgrind,
# static and dynamic linking, the README's C quick start.
log "C ABI (scripts/test-c.sh)"
./scripts/test-c.sh >/dev/null
# The Python module: a fresh venv with maturin, pytest and mypy from the package index, the
# wheel, pytest (stubtest and the README's Python quick start included), pip install.
log "Python module (scripts/test-python.sh)"
./scripts/test-python.sh
# The Go package: gofmt, go vet, go test -race, static and dynamic linking, the README's Go
# quick start in a module of its own, the benchmarks once each.
log "Go package (scripts/test-go.sh)"
./scripts/test-go.sh
# Fuzz smoke runs: every target of fuzz/ for 15 s from the repository's inputs (cargo-fuzz is
# installed from the Rust registry when missing).
log "fuzz smoke runs (scripts/fuzz.sh)"
./scripts/fuzz.sh 15
log "egressctl demo (the README's first command)"
cargo run --quiet --release --locked -p egressctl -- demo >/dev/null
# That default build has no kernel calls: `apply` must say how to get them (exit 2).
status=0
message="$(target/release/egressctl apply -f x 2>&1)" || status=$?
if [ "$status" != 2 ] || [[ "$message" != *"--features bpf"* ]]; then
    echo "error: egressctl apply without the bpf feature: exit $status: $message" >&2
    exit 1
fi
# The binary to ship: the dist profile, stripped; it must print what the release build does.
log "egressctl as shipped (--profile dist: stripped)"
cargo build --quiet --profile dist --locked -p egressctl
sections="$(readelf -S target/dist/egressctl)"
if grep -qE '\.symtab|\.debug_' <<<"$sections"; then
    echo "error: target/dist/egressctl is not stripped" >&2
    exit 1
fi
dist_demo="$(target/dist/egressctl demo 2>/dev/null)"
release_demo="$(target/release/egressctl demo 2>/dev/null)"
if [ "$dist_demo" != "$release_demo" ]; then
    echo "error: the dist build prints another demo than the release build" >&2
    exit 1
fi
# The report binary checks its own results (lookup answers, plan contents) as it measures;
# CI runs its quick form so that it keeps working. Figures are not judged here.
log "benchmark report (quick)"
cargo run --quiet --release --locked -p egress-benches --bin report -- --quick >/dev/null
# The lab's measurements once (its experiment is tests/seed.rs, run by cargo test above): the
# lab figures in benches/README.md come from this command (with its default 2 GB).
log "egress-lab bench (one pass, 200 MB downloads)"
cargo run --quiet --release --locked -p egress-lab -- bench --bytes 200000000 >/dev/null
if [ "${EGRESS_REQUIRE_BPF:-}" = 1 ] && [ "$(skip_count)" != 0 ]; then
    echo "error: EGRESS_REQUIRE_BPF=1 but kernel tests skipped (listed below)" >&2
    exit 1
fi
log "all checks passed"
