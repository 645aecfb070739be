"""Fail-safe stages: a real failure of one item withholds that item with its reason, and the
run goes on to the audit; every other item is released unchanged.

The dataset is the bundled example (a CT head, a T1 MR, an ultrasound) plus pydicom's small
real CT series (two more patients). Each fault is a real input, not a mock of a stage:

- de-identification: a CT file overwritten with other bytes after the index read it (same
  size and time stamp, as a disk or a copy going wrong mid-run would leave it);
- redaction: the ultrasound's Pixel Data cut to half its length (the header is intact);
- conversion: one slice of a 4-slice CT with its Pixel Data cut short (dcm2niix refuses it);
- defacing: the T1's pixels replaced by a smooth ellipsoid phantom (no head to register);
- morphometry and defaced DICOM: a second copy of the T1 (as another patient) is defaced for
  real, then judged against a brain-Dice threshold no image can meet
  (``fail_brain_dice: 1.01``), so its FAIL must keep the image and its defaced DICOM out.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import EXAMPLE_DICOM, REPO, pydicom_testdir

pytestmark = pytest.mark.e2e

KEY = "failsafe-test-key-0123456789abcdef0123"


def _snakemake(out: Path, input_dir: Path, *config: str, dry: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, NEURODEID_KEY=KEY)
    args = [sys.executable, "-m", "snakemake", "--cores", "2"] + (["-n"] if dry else [])
    args += ["--config", f"input_dir={input_dir}", f"output_dir={out}", *config]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


def _cut_pixel_data(path: Path) -> None:
    ds = pydicom.dcmread(path)
    data = ds.PixelData
    ds.PixelData = data[: (len(data) // 4) * 2]
    ds.save_as(path)


def _phantom(folder: Path) -> None:
    """Every slice of the series becomes a cross-section of one smooth ellipsoid."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    n = len(files)
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        rows, cols = int(ds.Rows), int(ds.Columns)
        y, x = np.mgrid[:rows, :cols]
        z = (k - n / 2) / (n / 2)
        r2 = ((x - cols / 2) / (cols / 3)) ** 2 + ((y - rows / 2) / (rows / 3)) ** 2 + z**2
        img = np.where(r2 < 1, 800, 0).astype(ds.pixel_array.dtype)
        ds.PixelData = img.tobytes()
        ds.save_as(f)


def _copy_as_new_patient(src: Path, dst: Path) -> None:
    """The series again as another patient's (new IDs and UIDs, derived from the old ones)."""
    from pydicom.uid import generate_uid

    dst.mkdir(parents=True)
    for f in sorted(p for p in src.iterdir() if p.is_file()):
        ds = pydicom.dcmread(f)
        ds.PatientID, ds.PatientName = "QX93571", "QXZWV^VKTRJ"
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            if kw in ds:
                setattr(ds, kw, generate_uid(entropy_srcs=["failsafe", str(ds.data_element(kw).value)]))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(dst / f.name)


def _build_tree(root: Path) -> dict:
    shutil.copytree(EXAMPLE_DICOM, root / "x1")
    src = pydicom_testdir("dicomdirtests")
    shutil.copytree(src / "98892001", root / "pat1")  # CT5N (5 slices) and CT2N (2 slices)
    shutil.copytree(src / "77654033" / "CT2", root / "pat2" / "CT2")  # 4 slices
    t1 = root / "x1" / "DOE_JOHN" / "20200611_MR_BRAIN" / "t1_mprage"
    _copy_as_new_patient(t1, root / "x2" / "t1")  # defaced for real, then judged by morphometry
    _phantom(t1)
    _cut_pixel_data(root / "x1" / "ROE_JANE" / "US_20210102" / "US1.dcm")
    _cut_pixel_data(sorted((root / "pat2" / "CT2").iterdir())[1])
    return {"garble": sorted((root / "pat1" / "CT2N").iterdir())[1]}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _released(out: Path, prefix: str) -> dict[str, str]:
    """{file: sha256} of the released files under ``prefix`` (from the private listings)."""
    got = {}
    for listing in (out / "private" / "released").glob("*.tsv"):
        for line in listing.read_text(encoding="utf-8").splitlines()[1:]:
            if line and not line.startswith("#"):
                f, _, sha = line.partition("\t")
                if f.startswith(prefix):
                    got[f] = sha
    return got


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("failsafe")
    tree = base / "in"
    faults = _build_tree(tree)
    out = base / "out"
    # the index reads every header (dry run), then one file changes under it, size and time kept
    proc = _snakemake(out, tree, dry=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    g = faults["garble"]
    st = g.stat()
    g.write_bytes(bytes((b * 7 + 3) & 0xFF for b in g.read_bytes()))
    os.utime(g, ns=(st.st_atime_ns, st.st_mtime_ns))
    proc = _snakemake(out, tree, "morphometry={thresholds: {fail_brain_dice: 1.01}}")
    # a clean run of the untouched patient folder: the control
    clean_tree = base / "clean"
    shutil.copytree(pydicom_testdir("dicomdirtests") / "98892001", clean_tree / "pat1")
    clean = _snakemake(base / "clean_out", clean_tree)
    return {"out": out, "proc": proc, "clean_out": base / "clean_out", "clean": clean, "garbled": g}


def test_run_finishes_through_the_audit(runs):
    proc = runs["proc"]
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert "MissingOutputException" not in proc.stderr
    assert (runs["out"] / "private" / "audit.ok").is_file()
    assert (runs["out"] / "private" / "review.tsv").is_file()


def _review(runs) -> list[dict]:
    return _rows(runs["out"] / "private" / "review.tsv")


def test_failed_defacing_withholds_the_image_and_its_dicom(runs):
    mr = [r for r in _review(runs) if "defacing failed" in r["reasons"]]
    assert len(mr) == 2 and {r["verdict"] for r in mr} == {"FAIL", "WITHHELD"}, mr  # the image, its DICOM
    image = next(r["item"] for r in mr if r["verdict"] == "FAIL")
    assert not _released(runs["out"], image)
    assert not _released(runs["out"], next(r["item"] for r in mr if r["verdict"] == "WITHHELD"))


def test_failed_redaction_withholds_the_ultrasound(runs):
    us = [r for r in _review(runs) if r["item"].startswith("sourcedata/dicom/") and r["verdict"] in ("FAIL", "WITHHELD")
          and "redact" in (r["reasons"] + r["qc"]).lower()]
    assert us, _review(runs)
    assert all(r["reasons"] for r in us)


def test_failed_conversion_is_listed_with_its_reason(runs):
    results = list((runs["out"] / "work" / "convert").rglob("*.json"))
    failed = [p for p in results if '"status": "failed"' in p.read_text()]
    assert len(failed) == 1, [p.read_text()[:300] for p in results]
    reason = json.loads(failed[0].read_text())["reason"]
    if "reached conversion" in reason:  # the text stage withheld the series first: its result names the slice
        rel = failed[0].relative_to(runs["out"] / "work" / "convert")
        text = json.loads((runs["out"] / "private" / "redact" / rel).read_text())
        assert text["status"] == "FAIL" and text["reason"], text
    else:
        assert "dcm2niix" in reason
    rows = [r for r in _review(runs) if r["verdict"] in ("FAIL", "WITHHELD") and "convers" in r["reasons"].lower()]
    assert rows, _review(runs)


def test_morphometry_fail_withholds_the_image_and_its_defaced_dicom(runs):
    private = runs["out"] / "private"
    defaced = [r for r in _review(runs) if (private / "deface" / r["subject"] / r["session"] / f"{r['series']}.json").is_file()]
    ct = [r for r in defaced if r["item"].endswith("_T1w") and r["verdict"] != "FAIL" or "morphometry" in r["reasons"]]
    ct = [r for r in ct if not r["item"].startswith("sourcedata/")]
    assert len(ct) == 1 and ct[0]["verdict"] == "FAIL" and "morphometry FAIL" in ct[0]["reasons"], defaced
    assert not [f for f in _released(runs["out"], "sub-") if f.startswith(ct[0]["item"])]
    dicom = [r for r in defaced if r["item"].startswith("sourcedata/dicom/") and r["series"] == ct[0]["series"]
             and r["subject"] == ct[0]["subject"]]
    assert dicom and all(r["verdict"] == "WITHHELD" and "morphometry FAIL" in r["reasons"] for r in dicom), dicom
    assert not _released(runs["out"], dicom[0]["item"])


def test_garbled_file_is_quarantined_by_name_and_the_rest_goes_on(runs):
    q = _rows(runs["out"] / "private" / "quarantine.tsv")
    hit = [r for r in q if runs["garbled"].name in " ".join(r.values())]
    assert hit, q
    assert all(r.get("reason") for r in hit)


def test_untouched_series_are_released_unchanged(runs):
    assert runs["clean"].returncode == 0, runs["clean"].stderr[-3000:]
    got = _released(runs["out"], "")
    want = _released(runs["clean_out"], "")
    ct5n = {f: s for f, s in want.items() if "/s005" in f or "run-1_ct" in f}
    assert ct5n, want
    # the 5-slice CT's files (DICOM and BIDS image) are byte-identical to a clean run's
    for f, sha in ct5n.items():
        if f.startswith("sourcedata/dicom/") and "/s005/" in f:
            assert got.get(f) == sha, f
