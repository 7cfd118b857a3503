#!/usr/bin/env bash
# The fuzz targets (fuzz/, cargo fuzz on stable with --sanitizer none), each run for SECONDS
# (default 15) from a seed corpus of the repository's snapshots, dumps and test inputs:
#   snapshot       any text through the snapshot/dump reader, the policy reader, the merge;
#   objects        any text through the one-object readers and the Cilium config reader;
#   engine_events  random event sequences against the engine, checked against a model of the
#                  kernel map, the standalone lookup table and a from-scratch engine;
#   c_abi          random calls of the C ABI: NULL and misaligned pointers, enum values,
#                  buffer sizes, text that is not UTF-8; every query within its allocation
#                  budget (1 MiB + 256 B per input byte + twice the caller's buffer).
# A finding (a panic, a failed check, an input slower than 10 s or using more than 2 GB)
# fails the run and leaves the input in fuzz/artifacts/<target>/.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-15}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...] (SECONDS a positive integer, got $seconds)" >&2
    exit 2
fi
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(snapshot objects engine_events c_abi)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --version 0.13.2 >&2
fi
# A fresh corpus each run: the seeds only (libFuzzer adds what it finds; kept, it would make
# every later smoke run longer).
corpus="$root/target/fuzz-corpus"
rm -rf "$corpus"
mkdir -p "$corpus"/{snapshot,objects,engine_events,c_abi}
cp examples/snapshots/*.yaml examples/snapshots/dumps/*.yaml egressctl/tests/data/*.yaml "$corpus/snapshot/"
cp egressctl/tests/data/*.yaml examples/snapshots/dumps/*.devices.yaml "$corpus/objects/"

cargo fuzz build --sanitizer none --fuzz-dir fuzz
for target in "${targets[@]}"; do
    echo "==> fuzz $target for ${seconds}s" >&2
    log="$root/target/fuzz-$target.log"
    if ! cargo fuzz run --sanitizer none --fuzz-dir fuzz "$target" "$corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "error: fuzz target $target found a failure (input in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$log" >&2 || true
done
