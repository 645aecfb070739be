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


def image_dataset(sop_class: str, frames, modality: str, **attrs):
    """A pydicom dataset written here, independently of the library, holding ``frames``
    (n, rows, cols) as 12-bit MONOCHROME2 uint16 or (n, rows, cols, 3) as 8-bit RGB; one
    frame is stored single-frame. New study, series and instance UIDs, a made-up patient;
    ``attrs`` set (or override) any attribute by keyword."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = modality, "ZORVAK^TELMINA", "SCREEN1"
    for k, v in attrs.items():
        setattr(ds, k, v)
    if frames.ndim == 4:
        ds.set_pixel_data(frames[0] if len(frames) == 1 else frames, "RGB", 8)
    else:
        f = np.clip(frames, 0, 4095).astype(np.uint16)
        ds.set_pixel_data(f[0] if len(f) == 1 else f, "MONOCHROME2", 12)
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    return ds


def run_workflow(input_dir: Path, output_dir: Path, key: str, cores: int = 2):
    """The whole workflow on ``input_dir`` into ``output_dir`` with the secret ``key``
    (``NEURODEID_KEY``), as a user runs it from the repository; the finished process."""
    import subprocess
    import sys

    env = dict(os.environ, NEURODEID_KEY=key)
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--config",
                           f"input_dir={input_dir}", f"output_dir={output_dir}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


# --------------------------------------------------------------------------- test order
#: modules with a long module fixture (a whole workflow run, the head corpus), started first:
#: under the README's ``pytest -n auto --dist loadfile --no-loadscope-reorder`` (modules handed
#: out in this order, not by their number of tests) no worker is then left with one at the end
LONG_MODULES = ("test_head_corpus", "test_real_data", "test_unseen_exports", "test_failsafe",
                "test_incremental", "test_workflow_e2e", "test_review_workflow")


def pytest_collection_modifyitems(config, items):
    """The long modules first; the order within a module and among the rest is kept."""
    def rank(item) -> int:
        name = item.module.__name__.rsplit(".", 1)[-1]
        return LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES)

    items.sort(key=rank)
