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


# --------------------------------------------------------------------------- pytest-xdist
#: test modules that share the example's one run (``report_helpers.example_report``): kept
#: on one worker, so the example runs once per session
EXAMPLE_RUN_MODULES = {"test_report", "test_report_browser", "test_bids_validator", "test_workflow_e2e",
                       "test_readme_commands"}
#: modules with a long module fixture (a whole workflow run, the head corpus), started first
#: so that no worker is left with one of them at the end
LONG_MODULES = ("test_head_corpus", "test_real_data", "test_unseen_exports", "test_failsafe",
                "test_incremental", "test_workflow_e2e", "test_review_workflow", "test_readme_commands")


def pytest_collection_modifyitems(config, items):
    """Under ``pytest -n N --dist loadgroup`` (the README's test command) every module is one
    group, so its module fixtures run once, on one worker; the example's run is one group of
    its own (:data:`EXAMPLE_RUN_MODULES`); the long modules come first. Without pytest-xdist
    the markers do nothing and the order only moves those modules to the front."""
    def module(item) -> str:
        return item.module.__name__.rsplit(".", 1)[-1]

    def rank(item) -> int:
        name = module(item)
        if name in EXAMPLE_RUN_MODULES:
            name = "test_workflow_e2e"
        return LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES)

    for item in items:
        name = module(item)
        item.add_marker(pytest.mark.xdist_group("example_run" if name in EXAMPLE_RUN_MODULES else name))
    items.sort(key=rank)  # stable: the order within a module and among the rest is kept
