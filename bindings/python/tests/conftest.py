"""Shared fixtures: where the repository, the shared examples and egressctl are."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
EXAMPLES = pathlib.Path(os.environ.get("EGRESS_EXAMPLES", REPO / "examples" / "snapshots"))


@pytest.fixture(scope="session")
def examples() -> pathlib.Path:
    assert EXAMPLES.is_dir(), f"{EXAMPLES}: the shared examples are missing"
    return EXAMPLES


@pytest.fixture(scope="session")
def repo() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def egressctl() -> pathlib.Path:
    """The egressctl binary scripts/test-python.sh builds (EGRESSCTL overrides)."""
    path = pathlib.Path(os.environ.get("EGRESSCTL", REPO / "target" / "release" / "egressctl"))
    assert path.is_file(), f"{path}: build it with cargo build --release -p egressctl"
    return path
