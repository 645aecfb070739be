"""neurodeid.convert on neurolabusc's dcm_qa suites: every series against dcm2niix's reference
outputs (Ref/), sanitised sidecars and headers, and the CT2 slice-gap series from pydicom."""

from __future__ import annotations

import json
import os
import re
import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from neurodeid.convert import ConversionError, GeometryError, convert_series

SHARED = Path(os.environ.get("NEURODEID_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DICOM = SHARED / "dicom"


def _suites_present():
    return all((DICOM / s / "In").is_dir() for s in ("dcm_qa_nih", "dcm_qa_ts", "dcm_qa_12bit"))


needs_suites = pytest.mark.skipif(
    not _suites_present(), reason=f"shared data not found: {DICOM}/dcm_qa_* (set NEURODEID_SHARED_DATA)"
)


def suite_cases():
    """(id, files, reference NIfTI) for every series of the three suites."""
    cases = []
    if not _suites_present():
        return cases
    nih = DICOM / "dcm_qa_nih"
    for d in sorted((nih / "In").glob("*/mr_*")):
        n = int(d.name.split("_")[1])
        if d.parent.name.endswith("GE"):
            ref = nih / "Ref" / f"DCM2NIIX_regression_test_{n}.nii"
        else:
            (ref,) = [p for p in (nih / "Ref").glob(f"EPI_PE=*_{n}.nii")]
        cases.append((f"nih-{d.parent.name}-{d.name}", sorted(d.glob("*.dcm")), ref))
    for suite in ("dcm_qa_ts", "dcm_qa_12bit"):
        for f in sorted((DICOM / suite / "In").glob("*.dcm")):
            sn = int(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SeriesNumber"]).SeriesNumber)
            cases.append((f"{suite}-{f.stem}", [f], DICOM / suite / "Ref" / f"{sn}.nii"))
    return cases


CASES = suite_cases()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("suites")
    return {cid: convert_series(files, root / cid) for cid, files, _ in CASES}


def _corners_mm(affine, shape):
    c = np.array([[i, j, k, 1] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)], float)
    return (affine @ c.T).T[:, :3]


@needs_suites
def test_suites_found():
    # 8 dcm_qa_nih series, 9 transfer syntaxes, 3 12-bit series
    assert len(CASES) == 20
    assert sum(c[0].startswith("dcm_qa_ts") for c in CASES) == 9


@needs_suites
@pytest.mark.parametrize("cid,files,ref", CASES, ids=[c[0] for c in CASES])
def test_matches_reference(converted, cid, files, ref):
    out = converted[cid]
    assert len(out) == 1, [o["nifti"].name for o in out]
    ours = nib.as_closest_canonical(nib.load(out[0]["nifti"]))
    theirs = nib.as_closest_canonical(nib.load(ref))
    assert ours.shape == theirs.shape
    # voxel data equal (stored values and scaling) in one orientation
    assert np.array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))
    err = np.abs(_corners_mm(ours.affine, ours.shape) - _corners_mm(theirs.affine, theirs.shape)).max()
    assert err < 1e-3, f"affine differs from Ref by {err} mm"
    assert any("geometry checked" in n for n in out[0]["notes"])


def _needles(files):
    """Identifying values of the raw DICOM: names, IDs, places, devices, dates, times."""
    kws = [
        "PatientName",
        "PatientID",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "StationName",
        "DeviceSerialNumber",
        "ReferringPhysicianName",
        "OperatorsName",
        "PerformingPhysicianName",
        "AccessionNumber",
        "StudyID",
        "PatientBirthDate",
    ]
    dates = ["StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "PerformedProcedureStepStartDate"]
    times = ["StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime", "PerformedProcedureStepStartTime"]
    out = set()
    for f in files[:1] + files[-1:]:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        for kw in kws + dates + times:
            v = str(ds.get(kw) or "").strip()
            if len(v) >= 3:
                out.add(v)
                out.update(p for p in re.split(r"[\^ ]", v) if len(p) >= 3)
        for kw in dates:
            v = str(ds.get(kw) or "")
            if len(v) == 8:
                out.add(f"{v[:4]}-{v[4:6]}-{v[6:]}")
        for kw in times:
            v = str(ds.get(kw) or "").split(".")[0]
            if len(v) >= 6:
                out.add(f"{v[:2]}:{v[2:4]}:{v[4:6]}")
    return out


_DATE_TIME = re.compile(r"\b(19|20)\d\d-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])\b|\b\d\d:\d\d:\d\d\b")


@needs_suites
@pytest.mark.parametrize("cid,files,ref", CASES, ids=[c[0] for c in CASES])
def test_no_identifiers(converted, cid, files, ref):
    needles = _needles(files)
    assert needles, "raw DICOM should carry identifiers to look for"
    for o in converted[cid]:
        text = o["json"].read_text()
        sidecar = json.loads(text)
        assert sidecar.get("RepetitionTime") or sidecar.get("Modality")  # still useful
        for key in (
            "InstitutionName",
            "StationName",
            "DeviceSerialNumber",
            "AcquisitionTime",
            "SeriesDescription",
            "ProtocolName",
            "ImageComments",
            "StudyDescription",
        ):
            assert key not in sidecar
        for n in needles:
            assert n not in text, f"{n!r} in {o['json'].name}"
        assert not _DATE_TIME.search(text), _DATE_TIME.search(text).group(0)
        img = nib.load(o["nifti"])
        hdr = img.header
        assert hdr["descrip"][()] == b"neurodeid"
        assert hdr["aux_file"][()] == b"" and hdr["intent_name"][()] == b"" and hdr["db_name"][()] == b""
        assert len(hdr.extensions) == 0
        with gzip.open(o["nifti"], "rb") as fp:
            head = fp.read(int(hdr["vox_offset"]))
        for n in needles:
            assert n.encode() not in head, f"{n!r} in NIfTI header of {o['nifti'].name}"
        assert not _DATE_TIME.search(head.decode("latin-1"))


def _ct2():
    pydicom_data = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "77654033" / "CT2"
    if not pydicom_data.is_dir():
        pytest.skip(f"pydicom test file folder not found: {pydicom_data}")
    return sorted(pydicom_data.iterdir())


def test_ct2_slice_gap_is_split_with_message(tmp_path):
    files = _ct2()
    out = convert_series(files, tmp_path)
    # slices at z = -99.48 and 103.02, 104.27, 105.52 mm: a 202.5 mm gap, never one volume
    assert [o["suffix_hint"] for o in out] == ["part1", "part2"]
    shapes = [nib.load(o["nifti"]).shape for o in out]
    assert shapes == [(16, 16, 1), (16, 16, 3)]
    for o in out:
        assert any(n.startswith("split:") and "202.5 mm" in n for n in o["notes"]), o["notes"]
        aff = nib.load(o["nifti"]).affine
        assert np.allclose(np.diag(aff)[:3], [-0.488281, 0.488281, 1.25], atol=1e-5)  # true spacing, not an average
    z0 = [nib.load(o["nifti"]).affine[2, 3] for o in out]
    assert np.allclose(z0, [-99.48, 103.02], atol=1e-3)


def test_missing_geometry_fails_loudly(tmp_path):
    f = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    ds = pydicom.dcmread(f)
    del ds.ImagePositionPatient
    p = tmp_path / "in" / "x.dcm"
    p.parent.mkdir()
    ds.save_as(p)
    with pytest.raises(GeometryError, match="ImagePositionPatient"):
        convert_series([p], tmp_path / "out")


def test_bad_engine_path(tmp_path):
    with pytest.raises(ConversionError, match="not found"):
        convert_series(_ct2(), tmp_path, dcm2niix=str(tmp_path / "no-such-dcm2niix"))


def _pydicom_file(*parts):
    p = Path(pydicom.__file__).parent / "data" / "test_files" / Path(*parts)
    if not p.exists():
        pytest.skip(f"pydicom test file not found: {p}")
    return p


def test_three_plane_localizer_and_repeats_each_checked(tmp_path):
    # MR2: sagittal, coronal and axial slices in one series; dcm2niix writes 7 images
    out = convert_series(sorted(_pydicom_file("dicomdirtests", "98892003", "MR2").iterdir()), tmp_path / "mr2")
    assert len(out) == 7
    # MR1: three images at one position with different pixels, written as three images
    out1 = convert_series(sorted(_pydicom_file("dicomdirtests", "98892003", "MR1").iterdir()), tmp_path / "mr1")
    assert len(out1) == 3
    for o in out + out1:
        assert any(n.startswith("geometry checked") for n in o["notes"])
        assert "voxel check passed: first DICOM slice found at the mapped voxels" in o["notes"]


def test_engine_error_caught_rt_dose(tmp_path):
    """dcm2niix ignores GridFrameOffsetVector (5 mm frames written 1 mm apart): the check refuses it."""
    src = _pydicom_file("rtdose.dcm")
    (tmp_path / "in").mkdir()
    f = tmp_path / "in" / src.name
    f.write_bytes(src.read_bytes())
    with pytest.raises(
        GeometryError, match=r"disagrees with the DICOM geometry .* by 56\.000 mm"
    ):  # last frame at +70 mm, written at +14 mm
        convert_series([f], tmp_path / "out")
