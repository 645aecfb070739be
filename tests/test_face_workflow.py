"""A real head, as an MR DICOM series, through the whole workflow (issue #18, item 5: the
release path end to end).

colin27 (``../shared/data/heads``; skipped without it) is written here with plain pydicom as
two axial MR series of 3 mm slices with their plane geometry, under two descriptions:

- ``T1 MPRAGE POSTOP RESTAGING``: a T1 (the word "rest" inside RESTAGING once filed it as
  bold, never defaced): planned for defacing, it is released only defaced, with no face left
  on its renders;
- ``rs_fMRI rest``: filed as bold, not planned for defacing: the face check in its series job
  sees the face and it is withheld, with the reason on the review sheet.

Whatever the plan says, no released image shows a face to the detector, and the DICOM
released for the T1 (rewritten with the defaced pixels) shows none either.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pytest.importorskip("dlib")
from pydicom.uid import generate_uid

from conftest import SHARED_DATA, image_dataset, run_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MR = "1.2.840.10008.5.1.4.1.1.4"


def _write_axial_series(vol: np.ndarray, folder: Path, description: str, number: int, study: str) -> None:
    """``vol`` (RAS voxel grid, 1 mm) as axial MR slices every 3 mm: rows anterior to
    posterior, columns the patient's right to left, positions in LPS mm."""
    folder.mkdir(parents=True)
    series = generate_uid()
    nx, ny, _ = vol.shape
    for n, k in enumerate(range(0, vol.shape[2], 3)):
        ds = image_dataset(
            MR, vol[::-1, ::-1, k].T[None], "MR", StudyInstanceUID=study, SeriesInstanceUID=series,
            PatientName="ORLANDE^BRISK", PatientID="HEADWF1", PatientBirthDate="19700304", StudyDate="20240105",
            SeriesNumber=number, InstanceNumber=n + 1, SeriesDescription=description, ProtocolName=description,
            ImageType=["ORIGINAL", "PRIMARY", "M", "ND"], MagneticFieldStrength=3, Manufacturer="Siemens",
            PixelSpacing=[1.0, 1.0], SliceThickness=3.0,
            # LPS: along a row to the patient's left (+x), down a column to posterior (+y)
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            # the first pixel is the grid's right-anterior corner; the head centred on the origin
            ImagePositionPatient=[-(nx - 1) / 2, -(ny - 1) / 2, float(k - vol.shape[2] / 2)])
        ds.save_as(folder / f"{n:03d}.dcm", enforce_file_format=True)


def test_a_head_is_released_only_defaced_whatever_its_description(tmp_path):
    p = SHARED_DATA / "heads" / "colin27_ch2.nii.gz"
    if not p.is_file():
        pytest.skip(f"{p} not found (set NEURODEID_SHARED_DATA)")
    from neurodeid.deface import face

    vol = np.asarray(nib.as_closest_canonical(nib.load(str(p))).dataobj, np.float32)
    raw, study = tmp_path / "raw", generate_uid()
    _write_axial_series(vol, raw / "t1", "T1 MPRAGE POSTOP RESTAGING", 2, study)
    _write_axial_series(vol, raw / "rest", "rs_fMRI rest", 3, study)
    out = tmp_path / "out"
    r = run_workflow(raw, out, "face-workflow-test-key-0123456789abcdef")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "private" / "audit.ok").is_file()

    with open(out / "private" / "review.tsv", newline="") as fh:
        rows = [row for row in csv.DictReader(fh, delimiter="\t") if not row["item"].startswith("sourcedata/")]
    bold = [row for row in rows if row["item"].endswith("_bold")]
    t1 = [row for row in rows if row["item"].endswith("_T1w")]
    assert len(bold) == 1 and bold[0]["verdict"] in ("FAIL", "WITHHELD"), rows
    assert "face is detected" in bold[0]["reasons"], rows
    # the reviewer sees what the detector saw: the renders with the box, named by the face record
    pictures = bold[0]["qc"].split()
    assert len(pictures) == 1 and pictures[0].startswith("qc/face/"), rows
    assert (out / "private" / pictures[0]).read_bytes().startswith(b"\x89PNG")
    assert t1[0]["qc"].split()[-1].endswith("deface_faces.png"), rows  # the defaced T1's before/after
    assert len(t1) == 1 and t1[0]["verdict"] not in ("FAIL", "WITHHELD"), rows

    released = sorted((out / "release").rglob("*.nii.gz"))
    assert [q.name for q in released] == [Path(t1[0]["item"]).name + ".nii.gz"], released
    for q in released:
        img = nib.load(str(q))
        chk = face.check_volume(np.asarray(img.dataobj, np.float32), img.affine)
        assert not chk.face, (q.name, chk.summary())
    assert not list((out / "release").rglob("*_bold*"))
    # the DICOM released for the T1 is the defaced one: stacked by its geometry, no face
    from neurodeid.deface.screen import screen_files

    dicom = sorted((out / "release" / "sourcedata" / "dicom").rglob("*.dcm"))
    assert len(dicom) == 61
    s = screen_files(dicom)
    assert s.stacks == 1 and not s.face and not s.errors, s.summary()
