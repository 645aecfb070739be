"""The whole workflow on files nobody here chose: pydicom's bundled test files.

They come from many toolkits and scanners (dcmtk, GDCM, GE, Siemens, Philips test and
service exports) and include what real exports hold besides images: structured reports,
RT structure sets, plans and doses, a waveform, secondary captures, files already
anonymised by another tool (ANONYMIZED in kept attributes), form-template names ("Last
Name^First Name"), vendor values in the wrong attribute (the manufacturer as
InstitutionName). A release of them must finish audited with no alarm on a harmless value,
withhold only what cannot be checked (with the reason), and leave the input untouched.
"""

from __future__ import annotations

import csv
import shutil

import pydicom
import pytest

from conftest import pydicom_testdir, run_workflow, tree_sha256
from messy import make_read_only, make_writable

_SKIP_SUFFIXES = (".py", ".json", ".txt", ".gz", ".bz2", ".xz", ".zip", ".dump")


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    src = tmp_path_factory.mktemp("pydicom_files") / "in"
    src.mkdir()
    for f in sorted(pydicom_testdir().iterdir()):
        if f.is_file() and not f.name.endswith(_SKIP_SUFFIXES):
            shutil.copy(f, src / f.name)
    out = tmp_path_factory.mktemp("pydicom_out") / "results"
    make_read_only(src)
    try:
        before = tree_sha256(src)
        proc = run_workflow(src, out, "unseen-exports-test-key-0123456789")
        after = tree_sha256(src)
    finally:
        make_writable(src)
    return {"out": out, "proc": proc, "before": before, "after": after}


def test_release_is_audited_with_no_alarm(unseen):
    proc, out = unseen["proc"], unseen["out"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert (out / "private" / "audit.ok").is_file()
    rows = [r for r in (out / "private" / "audit.tsv").read_text(encoding="utf-8").splitlines()
            if r and not r.startswith(("#", "file\t"))]
    assert rows == []


def test_input_untouched(unseen):
    assert unseen["before"] == unseen["after"]


def test_objects_without_an_image_are_released(unseen):
    """RT structure sets and plans and structured reports hold no pixels: no burned-in text
    to read, so they are released (their headers de-identified and audited)."""
    modalities = set()
    for f in (unseen["out"] / "release" / "sourcedata" / "dicom").rglob("*.dcm"):
        modalities.add(str(pydicom.dcmread(f, stop_before_pixels=True).get("Modality", "")))
    assert {"RTSTRUCT", "RTPLAN", "SR"} <= modalities, modalities


def test_every_withheld_item_has_a_reason(unseen):
    with open(unseen["out"] / "private" / "review.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert rows
    for r in rows:
        if r["verdict"] != "PASS":
            assert r["reasons"].strip(), r
