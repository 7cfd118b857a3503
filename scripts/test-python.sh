#!/usr/bin/env bash
# The Python module, as CI runs it: a fresh virtual environment (target/py-venv) with
# maturin, pytest, mypy, PyYAML and NumPy from the package index; the abi3 wheel built with
# the kernel calls (--features bpf); pytest over bindings/python/tests (every shared example,
# every input form, every exception, threads, mypy's stubtest, the README's quick start);
# then `pip install ./bindings/python` into a second clean venv, as a user would.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf '==> %s\n' "$*" >&2; }
python="${PYTHON:-python3}"
venv=target/py-venv
rm -rf "$venv" target/py-venv-user target/wheels
log "virtual environment ($("$python" --version))"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "maturin>=1.9,<2" "pytest>=8" "mypy>=1.11" pyyaml numpy

log "the wheel (abi3, with the kernel calls)"
# Stripped (no debug info in the installed extension), tagged manylinux by maturin's check
# of the glibc symbols it needs.
"$venv/bin/maturin" build --release --strip --locked --features bpf \
    -m bindings/python/Cargo.toml -o target/wheels
wheel="$(ls target/wheels/egress_gateway-*-manylinux_*.whl 2>/dev/null | head -1)"
[ -n "$wheel" ] || { echo "error: no manylinux wheel in target/wheels" >&2; ls target/wheels >&2; exit 1; }
"$venv/bin/python" -m pip install -q "$wheel"
# explain is compared with egressctl's output.
cargo build --release --locked -q -p egressctl

log "pytest"
EGRESSCTL="$root/target/release/egressctl" "$venv/bin/python" -m pytest -q bindings/python/tests

log "benchmark: Python lookup_many beside Rust's (quick; the answers must agree)"
cargo build --release --locked -q -p egress-benches --bin lookup_file
"$venv/bin/python" benches/python/lookup_many.py --quick --lookup-file target/release/lookup_file >/dev/null

log "the wheel in a fresh venv: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KiB"
rm -rf target/py-venv-wheel
"$python" -m venv target/py-venv-wheel
target/py-venv-wheel/bin/python -m pip install -q "$wheel"
target/py-venv-wheel/bin/python -c '
import pathlib, egress_gateway as egw
e = egw.Engine.from_snapshot(pathlib.Path("examples/snapshots/seed-gateway-group.yaml"), cilium_version="1.20")
assert e.layout == "dual" and e.diagnostics()["invalidPolicies"] == []
'
so="$(find target/py-venv-wheel -name 'egress_gateway*.so' | head -1)"
if readelf -S "$so" | grep -q '\.debug_info'; then
    echo "error: the wheel's extension $so carries debug info" >&2; exit 1
fi
echo "installed extension: $(du -k "$so" | cut -f1) KiB"

log "pip install ./bindings/python in a clean venv"
"$python" -m venv target/py-venv-user
target/py-venv-user/bin/python -m pip install -q ./bindings/python
target/py-venv-user/bin/python -c '
import pathlib, egress_gateway as egw
e = egw.Engine.from_snapshot(pathlib.Path("examples/snapshots/seed-gateway-group.yaml"))
assert e.lookup("172.22.48.4", "8.8.8.8").kind == "masquerade"
print("installed", egw.__version__)'
log "Python checks passed"
