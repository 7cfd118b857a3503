#!/usr/bin/env bash
# integrations/cni (egress-agent and the egress-cni chained plugin), as CI runs it:
#   1. the library (egress-ffi, release) the Go package links; the CNI project's Go source
#      (Debian's golang-github-appc-cni-dev) and reference plugins (containernetworking-plugins)
#      installed with apt when missing;
#   2. gofmt, go vet, go test -race: the agent (ADD/DEL/CHECK, Pod events around them, the
#      socket API, no programming before the first list) and the plugin as a runtime runs it
#      (its binary, the CNI_* environment, prevResult passed through, the spec's error codes,
#      the DEL queue while the agent is down);
#   3. the commands built into target/cni (egress-agent, egress-cni, egress-cni-run: the lab's
#      stand-in for a runtime's libcni call; egress-agent-bpf with the kernel maps below);
#   4. with the kernel maps (--features bpf, -tags egressgw_bpf): the agent on a private bpffs
#      (ADD writes the entry before answering, a restart adopts the maps and writes nothing, a
#      crash converges), and the end-to-end run of the commands as a node runs them (package
#      e2e: egress-agent as its own process, libcni running ptp → egress-cni in pods' network
#      namespaces, the agent SIGKILLed and restarted, a DEL queued while it is down). Skipped
#      with a message without the privilege, a failure under EGRESS_REQUIRE_BPF=1 (CI). The
#      default library is rebuilt afterwards.
# Go is Debian's golang-go (1.19); nothing is fetched (GOPROXY=off).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf '==> %s\n' "$*"; }
cni_src=/usr/share/gocode/src/github.com/containernetworking/cni
missing=()
[ -f "$cni_src/go.mod" ] || missing+=(golang-github-appc-cni-dev)
[ -x /usr/lib/cni/ptp ] || missing+=(containernetworking-plugins)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
out="$root/target/cni"
mkdir -p "$out"
. "$root/scripts/go-module.sh"

build_library
cd integrations/cni
check_module
log "the commands: $out/egress-agent, $out/egress-cni"
go build -o "$out/egress-agent" ./cmd/egress-agent
go build -o "$out/egress-cni" ./cmd/egress-cni
go build -o "$out/egress-cni-run" ./cmd/egress-cni-run
CNI_COMMAND=VERSION "$out/egress-cni" </dev/null | grep -q '"1.0.0"'

log "the kernel maps: --features bpf, -tags egressgw_bpf"
cd "$root"
cargo build --quiet --release --locked -p egress-ffi --features bpf
cd integrations/cni
(go vet -tags egressgw_bpf ./... && go test -race -count=1 -tags egressgw_bpf -v ./... > "$out/test-bpf.txt") || {
    cat "$out/test-bpf.txt" >&2; exit 1; }
grep -E '^--- SKIP' "$out/test-bpf.txt" || true
grep -q '^--- PASS: TestAKernelAgentAdoptsItsMapsOnRestart' "$out/test-bpf.txt" &&
    grep -q '^--- PASS: TestTheCommandsOnANode' "$out/test-bpf.txt" ||
    echo "note: the agent's kernel map tests were skipped (see above)"
go build -tags egressgw_bpf -o "$out/egress-agent-bpf" ./cmd/egress-agent
cd "$root"
cargo build --quiet --release --locked -p egress-ffi
log "CNI integration: all passed"
