"""The package itself: its stubs match the module (mypy's stubtest), it is typed, and the
README's Python quick start runs."""

import pathlib
import re
import subprocess
import sys

import egress_gateway as egw


def test_the_package_exports_its_version_and_public_names():
    cargo = (pathlib.Path(__file__).resolve().parents[3] / "Cargo.toml").read_text()
    version = re.search(r'\[workspace\.package\][^\[]*?version = "([^"]+)"', cargo, re.S)
    assert version and egw.__version__ == version.group(1)
    for name in egw.__all__:
        assert hasattr(egw, name), name
    assert {"Engine", "Verdict", "PolicyError", "VERDICT_KINDS"} <= set(egw.__all__)


def test_the_stubs_match_the_module():
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "egress_gateway", "--ignore-missing-stub"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_is_typed():
    import importlib.util

    origin = pathlib.Path(importlib.util.find_spec("egress_gateway").origin)
    where = origin.parent
    assert (where / "egress_gateway" / "py.typed").exists() or (where / "py.typed").exists() or any(
        where.glob("**/py.typed")
    ), where


def test_everything_public_is_documented():
    for name in dir(egw):
        item = getattr(egw, name)
        if name.startswith("_") or not callable(item):
            continue
        assert item.__doc__, name
        exception = isinstance(item, type) and issubclass(item, BaseException)
        inherited = set(dir(BaseException)) if exception else set()
        for attr in dir(item):
            # An exception's data attributes (path, errors, ...) are documented in the stubs.
            if attr.startswith("_") or attr in inherited or (exception and not callable(getattr(item, attr))):
                continue
            assert getattr(item, attr).__doc__, f"{name}.{attr}"


def test_the_readme_quick_start_runs(repo):
    readme = (repo / "README.md").read_text()
    match = re.search(r"<!-- python-quickstart -->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README.md has no Python quick start"
    result = subprocess.run([sys.executable, "-c", match.group(1)], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "masquerade" in result.stdout
