#!/usr/bin/env bash
# The C side of the C ABI, as CI runs it:
#   1. cargo build --release -p egress-ffi (target/release/libegress_ffi.{a,so});
#   2. include/egress_gateway.h compiles alone as C11 and as C++17, with and without
#      EGRESS_FEATURE_BPF, warnings as errors;
#   3. the example (examples/c) and the C tests (egress-ffi/tests/c), linked statically, run
#      under AddressSanitizer (leak checker on) and UndefinedBehaviorSanitizer;
#   3b. the cross-binding table (tests/cross-binding) through C, under the sanitizers, its
#      transcript compared with the one every binding must write;
#   4. the same without sanitizers, run under valgrind (no errors, no definite or indirect
#      leaks), and the tests under helgrind (no data race in the concurrent lookups);
#   4b. issue 21's amplifying input (32.8 M entries from 0.56 MB): the size queries count, the
#      plan is refused for capacity before it is built, the peak memory stays within 10 x
#      the input + 64 MiB;
#   5. the example linked dynamically against libegress_ffi.so, run;
#   6. the README's C quick start, extracted from README.md, linked as ARCHITECTURE.md says
#      (-Ltarget/release -l:libegress_ffi.a), run;
#   7. the library rebuilt with --features bpf: the kernel calls (egress_maps_*) on a private
#      bpffs, under the sanitizers and valgrind. Needs root; skipped with a message when the
#      kernel refuses the mount, a failure instead under EGRESS_REQUIRE_BPF=1 (CI).
# Every compile and link line is printed (`+ ...`) exactly as run. Outputs go to target/c/.
# The tests read the example snapshots: examples/snapshots, or
# $EGRESS_EXAMPLES.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# EGRESS_EXAMPLES may be relative to the caller's directory; the default is relative to the root.
if [ -n "${EGRESS_EXAMPLES:-}" ]; then
    examples="$(cd "$EGRESS_EXAMPLES" && pwd)"
fi
cd "$root"
examples="${examples:-examples/snapshots}"
if [ ! -d "$examples" ]; then
    echo "error: $examples not found (the shared example snapshots); set EGRESS_EXAMPLES" >&2
    exit 1
fi
for tool in cargo valgrind readelf; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found" >&2; exit 1; }
done
CC="${CC:-cc}"
CXX="${CXX:-c++}"
out=target/c
mkdir -p "$out"

log() { printf '==> %s\n' "$*"; }
# Prints a command as a shell would take it (single quotes only where needed), then runs it.
run() {
    local arg line="+"
    for arg in "$@"; do
        if [[ "$arg" =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then
            line+=" $arg"
        else
            line+=" '${arg//\'/\'\\\'\'}'"
        fi
    done
    printf '%s\n' "$line" >&2
    "$@"
}
# Records that a kernel test skipped, and why: one line `c TEST: WHY` appended to the file
# EGRESS_SKIP_LOG names, when it is set (scripts/test-all.sh counts the lines).
record_skip() {
    if [ -n "${EGRESS_SKIP_LOG:-}" ]; then
        printf 'c %s: %s\n' "$1" "$(tr -s '[:space:]' ' ' <<<"$2" | sed 's/ $//')" >>"$EGRESS_SKIP_LOG"
    fi
}

# The system libraries libegress_ffi.a needs, printed (once, here hard-coded) by
#   cargo rustc --release -p egress-ffi --crate-type staticlib -- --print native-static-libs
# on x86_64-unknown-linux-gnu. Rerun it after a toolchain or dependency change.
native_libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc)

warnings=(-Wall -Wextra -Werror -pedantic)
cflags=(-std=c11 "${warnings[@]}" -g)
sanitizers=(-fsanitize=address,undefined -fno-omit-frame-pointer)
static_lib=(-Iinclude target/release/libegress_ffi.a "${native_libs[@]}")
# The tests use pthreads.
test_src=(-pthread egress-ffi/tests/c/test_errors.c)
example_src=(examples/c/seed_gateway_group.c)
seed="$examples/seed-gateway-group.yaml"

start=$SECONDS

log "building the library"
run cargo build --release --locked -p egress-ffi
# The shared library's SONAME is libegress_ffi.so.0: the name a dynamic program looks for.
ln -sf libegress_ffi.so target/release/libegress_ffi.so.0

log "the header alone: C11 and C++17, with and without EGRESS_FEATURE_BPF"
for feature in "" -DEGRESS_FEATURE_BPF; do
    run "$CC" -std=c11 "${warnings[@]}" ${feature:+"$feature"} -Iinclude -fsyntax-only \
        -x c include/egress_gateway.h
    run "$CXX" -std=c++17 "${warnings[@]}" ${feature:+"$feature"} -Iinclude -fsyntax-only \
        -x c++ include/egress_gateway.h
done

log "static, AddressSanitizer + UndefinedBehaviorSanitizer"
run "$CC" "${cflags[@]}" "${sanitizers[@]}" "${example_src[@]}" "${static_lib[@]}" \
    -o "$out/seed_gateway_group.asan"
run "$CC" "${cflags[@]}" "${sanitizers[@]}" "${test_src[@]}" "${static_lib[@]}" \
    -o "$out/test_errors.asan"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
# The leak check runs after main returned, when every live object hangs off a global: not
# scanning stacks and registers keeps stale pointers left there from hiding a leak.
export LSAN_OPTIONS=use_stacks=0:use_registers=0
run "$out/seed_gateway_group.asan" "$seed" >"$out/seed_gateway_group.asan.out"
run "$out/test_errors.asan" "$examples"

log "the cross-binding table: the C transcript equals tests/cross-binding/expected.txt"
run "$CC" "${cflags[@]}" -D_POSIX_C_SOURCE=200809L "${sanitizers[@]}" \
    egress-ffi/tests/c/cross_binding.c "${static_lib[@]}" -o "$out/cross_binding.asan"
run "$out/cross_binding.asan" tests/cross-binding/table.txt "$seed" >"$out/cross_binding.txt"
if ! diff -u tests/cross-binding/expected.txt "$out/cross_binding.txt"; then
    echo "error: the C transcript of the cross-binding table differs (above)" >&2
    exit 1
fi

log "static, no sanitizers, under valgrind"
run "$CC" "${cflags[@]}" "${example_src[@]}" "${static_lib[@]}" -o "$out/seed_gateway_group"
run "$CC" "${cflags[@]}" "${test_src[@]}" "${static_lib[@]}" -o "$out/test_errors"
valgrind=(valgrind -q --error-exitcode=1 --leak-check=full
    --errors-for-leak-kinds=definite,indirect)
run "${valgrind[@]}" "$out/seed_gateway_group" "$seed" >"$out/seed_gateway_group.valgrind.out"
run "${valgrind[@]}" "$out/test_errors" "$examples"
# The concurrent lookups on one const engine: no data race either.
run valgrind -q --tool=helgrind --error-exitcode=1 "$out/test_errors" "$examples" >/dev/null

log "the amplifying input (0.56 MB, 32.8 M entries): counted, refused, in proportion to the input"
run "$CC" "${cflags[@]}" egress-ffi/tests/c/amplification.c "${static_lib[@]}" \
    -o "$out/amplification"
run "$out/amplification"

log "dynamic: the example against libegress_ffi.so"
# $ORIGIN: the binary finds target/release/libegress_ffi.so from wherever it is run.
run "$CC" "${cflags[@]}" "${example_src[@]}" -Iinclude -Ltarget/release -legress_ffi \
    '-Wl,-rpath,$ORIGIN/../release' -o "$out/seed_gateway_group.dynamic"
if ! readelf -d "$out/seed_gateway_group.dynamic" | grep -q 'NEEDED.*\[libegress_ffi\.so\.0\]'; then
    echo "error: $out/seed_gateway_group.dynamic does not load libegress_ffi.so" >&2
    exit 1
fi
run "$out/seed_gateway_group.dynamic" "$seed" | tee "$out/seed_gateway_group.dynamic.out"

log "the README's C quick start"
# The first ```c block after the <!-- c-quickstart --> marker.
awk '/<!-- c-quickstart -->/ {marked = 1; next}
     marked && /^```c$/ {inside = 1; next}
     inside && /^```$/ {exit}
     inside {print}' README.md >"$out/quickstart.c"
[ -s "$out/quickstart.c" ] || { echo "error: no C quick start in README.md" >&2; exit 1; }
run "$CC" "${cflags[@]}" "${sanitizers[@]}" "$out/quickstart.c" -Iinclude -Ltarget/release \
    -l:libegress_ffi.a "${native_libs[@]}" -o "$out/quickstart"
run "$out/quickstart" "$seed" >"$out/quickstart.out"
# It prints the maps (the example's expected JSON) and the first pod's verdict: masquerade.
grep -q '"sourceIP": "172.22.48.4"' "$out/quickstart.out"
grep -q '172.22.48.4 -> 8.8.8.8: verdict kind 5' "$out/quickstart.out"

log "installed: scripts/install-c.sh, then a program outside the repository via pkg-config"
prefix="$(mktemp -d)"
consumer="$(mktemp -d)"
seed_abs="$(cd "$(dirname "$seed")" && pwd)/$(basename "$seed")"
run ./scripts/install-c.sh "$prefix" >/dev/null
readelf -d "$prefix/lib/libegress_ffi.so.0" | grep -q 'SONAME.*\[libegress_ffi\.so\.0\]' || {
    echo "error: the installed library has no SONAME libegress_ffi.so.0" >&2; exit 1; }
cp examples/c/seed_gateway_group.c "$consumer/"
(
    cd "$consumer"
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    # shellcheck disable=SC2046 # pkg-config's words are separate arguments
    "$CC" "${cflags[@]}" seed_gateway_group.c $(pkg-config --cflags --libs egress_gateway) \
        -o dynamic
    readelf -d dynamic | grep -q 'NEEDED.*\[libegress_ffi\.so\.0\]' || {
        echo "error: the pkg-config build does not load libegress_ffi.so.0" >&2; exit 1; }
    LD_LIBRARY_PATH="$prefix/lib" ./dynamic "$seed_abs" >dynamic.out
    # Fully static: the archive and libgcc_eh (no libgcc_s); glibc warns about NSS.
    # shellcheck disable=SC2046
    "$CC" "${cflags[@]}" -static seed_gateway_group.c \
        $(pkg-config --static --cflags --libs egress_gateway) -o static 2>static.warnings
    if readelf -d static | grep -q NEEDED; then
        echo "error: the --static build needs shared libraries" >&2; exit 1
    fi
    ./static "$seed_abs" >static.out
)
run cmp "$out/seed_gateway_group.asan.out" "$consumer/dynamic.out"
run cmp "$out/seed_gateway_group.asan.out" "$consumer/static.out"
rm -rf "$prefix" "$consumer"

# Every build of the example printed the same thing.
run cmp "$out/seed_gateway_group.asan.out" "$out/seed_gateway_group.valgrind.out"
run cmp "$out/seed_gateway_group.asan.out" "$out/seed_gateway_group.dynamic.out"

log "kernel calls: the library with --features bpf, on a private bpffs"
bpffs="$(mktemp -d)"
if mount -t bpf bpf "$bpffs" 2>"$out/mount.err"; then
    trap 'umount -l "$bpffs" 2>/dev/null; rmdir "$bpffs" 2>/dev/null' EXIT
    run cargo build --release --locked -p egress-ffi --features bpf
    kernel_src=(-DEGRESS_FEATURE_BPF egress-ffi/tests/c/test_kernel.c)
    run "$CC" "${cflags[@]}" "${sanitizers[@]}" "${kernel_src[@]}" "${static_lib[@]}" -lelf -lz \
        -o "$out/test_kernel.asan"
    run "$CC" "${cflags[@]}" "${kernel_src[@]}" "${static_lib[@]}" -lelf -lz \
        -o "$out/test_kernel"
    mkdir "$bpffs/asan" "$bpffs/valgrind"
    run "$out/test_kernel.asan" "$bpffs/asan" "$examples"
    # valgrind's bpf(2) wrapper misreads libbpf's GET_NEXT_KEY calls: suppressed, by name.
    run "${valgrind[@]}" --suppressions=egress-ffi/tests/c/libbpf.supp "$out/test_kernel" \
        "$bpffs/valgrind" "$examples" 2> >(grep -v 'WARNING: unhandled eBPF command' >&2)
else
    why="$(cat "$out/mount.err")"
    rmdir "$bpffs"
    if [ "${EGRESS_REQUIRE_BPF:-}" = 1 ]; then
        echo "error: BPF is required (EGRESS_REQUIRE_BPF=1) but mount -t bpf failed: $why" >&2
        exit 1
    fi
    echo "skipped the kernel calls: mount -t bpf failed: $why" >&2
    record_skip test_kernel "mount -t bpf failed: $why"
fi

log "C ABI checks passed in $((SECONDS - start)) s"
