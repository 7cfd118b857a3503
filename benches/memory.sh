#!/usr/bin/env bash
# The large-snapshot figures of README.md's "Hostile input" table, measured again:
#   - 1 M entries from a 25 MB YAML snapshot (250,000 endpoints x 4 CIDRs) through
#     `egressctl list -o json`;
#   - a 204 MB snapshot (2 M endpoints x 4 CIDRs: 8 M entries), with `--max-input 300M` (the
#     default 64M refuses it), through `egressctl validate`, `egressctl list -o json` (which
#     refuses 8 M entries, more than --max-output-entries' default, once it has counted them)
#     and `egressctl list -o json --max-output-entries 8000000` (which computes them).
# The snapshots are egressctl/tests/memory.rs's (one gateway node, one worker, N endpoints of
# one label, one policy of 4 destination CIDRs), written here by awk. Each command runs once
# under GNU time (`/usr/bin/time -v`, installed with apt when missing), its output to
# /dev/null; one line per figure: wall and CPU seconds, maximum resident set size (MiB), the
# command. Needs ~3 GB of memory and ~250 MB of temporary disk; takes a few minutes. Not part
# of the test command (too slow): run it by hand, `benches/memory.sh`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf '==> %s\n' "$*" >&2; }

if ! /usr/bin/time -v true >/dev/null 2>&1; then
    log "installing time (GNU time: /usr/bin/time -v)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
log "cargo build --release -p egressctl"
cargo build --quiet --release --locked -p egressctl
egressctl="$root/target/release/egressctl"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# snapshot ENDPOINTS FILE: egressctl/tests/memory.rs's snapshot of ENDPOINTS endpoints, byte
# for byte (endpoint i: uid u%07d, name p<i>, address 10.<i / 65536>.<i / 256 % 256>.<i % 256>).
snapshot() {
    awk -v n="$1" 'BEGIN {
        printf "localNode: gw1\nnodes:\n- name: gw1\n  labels: {egress: '\''true'\''}\n"
        printf "  ipv4: 10.255.0.1\n  interfaces:\n"
        printf "  - {name: eth0, index: 2, addresses: [10.255.0.1/16], defaultRoute: true}\n"
        printf "- {name: w1, ipv4: 10.255.0.2}\nendpoints:\n"
        for (i = 0; i < n; i++)
            printf "- {uid: u%07d, namespace: default, name: p%d, node: w1, labels: {app: a}, ips: [10.%d.%d.%d]}\n",
                i, i, int(i / 65536), int(i / 256) % 256, i % 256
        printf "policies:\n- metadata: {name: p}\n  spec:\n"
        printf "    selectors: [{podSelector: {matchLabels: {app: a}}}]\n"
        printf "    destinationCIDRs: [1.0.0.0/16, 1.1.0.0/16, 1.2.0.0/16, 1.3.0.0/16]\n"
        printf "    egressGateway: {nodeSelector: {matchLabels: {egress: '\''true'\''}}}\n"
    }' >"$2"
}

# measure WHAT STATUS ARGS...: runs egressctl ARGS once under GNU time (its output to
# /dev/null, its stderr kept in $work/stderr.txt), which must exit with STATUS; prints the
# figure's line: wall and CPU (user + system) seconds, maximum resident set size.
measure() {
    local what="$1" want="$2" status=0
    shift 2
    /usr/bin/time -v -o "$work/time.txt" "$egressctl" "$@" >/dev/null 2>"$work/stderr.txt" ||
        status=$?
    if [ "$status" != "$want" ]; then
        echo "error: egressctl $*: exit $status, expected $want:" >&2
        cat "$work/stderr.txt" "$work/time.txt" >&2
        exit 1
    fi
    awk -v what="$what" -v cmd="egressctl $*" '
        /Elapsed \(wall clock\) time/ {
            n = split($NF, t, ":")
            wall = (n == 3) ? t[1] * 3600 + t[2] * 60 + t[3] : t[1] * 60 + t[2]
        }
        /User time \(seconds\)|System time \(seconds\)/ { cpu += $NF }
        /Maximum resident set size/ { rss = $NF / 1024 }
        END { printf "%s: %.1f s (CPU %.1f s), max RSS %.0f MiB - %s\n", what, wall, cpu, rss, cmd }
    ' "$work/time.txt"
}

small="$work/snapshot-250k.yaml"
large="$work/snapshot-2m.yaml"
log "snapshots: 250,000 and 2,000,000 endpoints x 4 CIDRs"
snapshot 250000 "$small"
snapshot 2000000 "$large"
size() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }'; }
log "$(basename "$small"): $(size "$small"); $(basename "$large"): $(size "$large")"
# The small snapshot's entries, counted in a run of their own (not timed).
entries="$("$egressctl" list -f "$small" -o json 2>/dev/null | grep -c '"sourceIP"' || true)"
[ "$entries" = 1000000 ] || { echo "error: $small gave $entries entries, not 1000000" >&2; exit 1; }

log "measuring (one run each; output to /dev/null)"
measure "1 M entries from the 25 MB YAML snapshot, list -o json" 0 list -f "$small" -o json
measure "the 204 MB snapshot, validate" 0 --max-input 300M validate "$large"
# 8 M entries: more than --max-output-entries' default (4,194,304), refused once counted.
measure "the 204 MB snapshot, list -o json (refused: 8 M entries)" 1 \
    --max-input 300M list -f "$large" -o json
grep -q 'the maps would hold 8000000 entries' "$work/stderr.txt" || {
    echo "error: list of $large was not refused for its 8000000 entries:" >&2
    cat "$work/stderr.txt" >&2
    exit 1
}
measure "the 204 MB snapshot, list -o json (8 M entries computed)" 0 \
    --max-input 300M list -f "$large" -o json --max-output-entries 8000000
