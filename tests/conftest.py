"""Shared fixtures and paths for the neurodeid tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NEURODEID_SHARED_DATA", REPO.parent / "shared" / "data"))
EXAMPLE_DICOM = REPO / "example" / "dicom"
TEST_KEY = b"neurodeid-test-key-0123456789abcdef"


def pydicom_testdir(*parts: str) -> Path:
    """A folder of pydicom's bundled test files (installed with pydicom)."""
    import pydicom.data

    return Path(pydicom.data.__file__).parent.joinpath("test_files", *parts)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found: {SHARED_DATA} (set NEURODEID_SHARED_DATA)")
    return SHARED_DATA


def tree_sha256(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root``, keyed by relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
