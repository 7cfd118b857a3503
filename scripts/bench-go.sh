#!/usr/bin/env bash
# The Go benchmarks beside the C ABI and the Rust API, on one workload, in one run:
#   1. binding_workload (benches/src/bin) writes W-cluster as a snapshot, IPv4 queries and
#      the pods of CNI ADDs to target/go/bench, and prints the Rust and C ABI figures on them
#      (checked: the file loads into the engine's own entries, C answers equal Rust's);
#   2. go test -bench in bindings/go measures one bare cgo call, Lookup, LookupBatch,
#      LookupParallel and the CNI ADD path on the same files (checked: the Go answers' checksum equals Rust's, each
#      pod's plan has as many operations as Rust's);
#   3. a summary: Go beside C, and the difference (what cgo and the Go side add).
# --quick: small sizes and one pass of each benchmark (CI runs it so that it keeps working;
# its figures are not judged).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quick=""
case "${1:-}" in
    --quick) quick=--quick ;;
    "") ;;
    *) echo "usage: scripts/bench-go.sh [--quick]" >&2; exit 2 ;;
esac
export GOFLAGS="${GOFLAGS:--mod=mod}" GOPROXY=off GOTOOLCHAIN=local
export GOCACHE="${GOCACHE:-$root/target/go/cache}"
data="$root/target/go/bench"
mkdir -p "$data"

cargo build --quiet --release --locked -p egress-ffi -p egress-benches --bin binding_workload
ln -sf libegress_ffi.so target/release/libegress_ffi.so.0  # its SONAME
target/release/binding_workload "$data" $quick > "$data/figures.json"
if [ -n "$quick" ]; then
    lookup_time=1x; add_time=1x; count=1
else
    # binding_workload writes 20,000 pods; each figure is the median of 5 runs.
    lookup_time=2s; add_time=20000x; count=5
fi
cd bindings/go
{
    EGRESS_BENCH_DATA="$data" go test -run '^$' -bench '^Benchmark(Lookup|CgoCrossing)' -benchtime "$lookup_time" -count "$count" .
    EGRESS_BENCH_DATA="$data" go test -run '^$' -bench '^BenchmarkCNIAdd$' -benchtime "$add_time" -count "$count" .
} > "$data/go.txt"
cd "$root"
cat "$data/figures.json"
grep '^Benchmark' "$data/go.txt"
# The median ns/op of each Go benchmark, and the Rust/C figures, side by side.
awk '
    function median(name,    n, i, j, t, v) {
        n = split(runs[name], v, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    FNR == NR { if ($0 ~ /"lookup_v4_ns"/) s = "l"; if ($0 ~ /"lookup_v4_batched_ns"/) s = "b"; if ($0 ~ /"cni_add_us"/) s = "a";
                if ($1 == "\"rust\":") { gsub(/,/, "", $2); rust[s] = $2 }
                if ($1 == "\"c_abi\":") { gsub(/,/, "", $2); c[s] = $2 }
                next }
    /^Benchmark/ { name = $1; sub(/-[0-9]+$/, "", name); runs[name] = runs[name] " " $3 }
    END {
        if (quick) print "(--quick: one pass of each benchmark; the figures below check that it runs, they measure nothing)"
        for (name in runs) go[name] = median(name)
        n = split("BenchmarkCgoCrossing BenchmarkLookup BenchmarkLookupBatch BenchmarkLookupParallel BenchmarkCNIAdd", names, " ")
        for (i = 1; i <= n; i++) if (!(names[i] in go)) { print "error: no figure for " names[i] > "/dev/stderr"; exit 1 }
        printf "one cgo call of a C function that does nothing: %.1f ns\n", go["BenchmarkCgoCrossing"]
        printf "lookup (one query): Go Lookup %.1f ns, C ABI %.1f ns, Rust %.1f ns: Go adds %.1f ns\n", go["BenchmarkLookup"], c["l"], rust["l"], go["BenchmarkLookup"] - c["l"]
        printf "lookup (batched, per query): Go LookupBatch %.1f ns, C ABI %.1f ns, Rust %.1f ns: Go adds %.1f ns\n", go["BenchmarkLookupBatch"], c["b"], rust["b"], go["BenchmarkLookupBatch"] - c["b"]
        printf "lookup (2 goroutines, per query): Go %.1f ns\n", go["BenchmarkLookupParallel"]
        printf "CNI ADD: Go %.2f us, C ABI %.2f us, Rust %.2f us: Go / C = %.2f\n", go["BenchmarkCNIAdd"] / 1000, c["a"], rust["a"], go["BenchmarkCNIAdd"] / 1000 / c["a"]
    }' quick="$quick" "$data/figures.json" "$data/go.txt"
