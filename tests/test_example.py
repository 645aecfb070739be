"""Tests for the bundled example dataset under example/ (built by example/build_example.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example"
DICOM = EXAMPLE / "dicom"
BUILD = EXAMPLE / "build_example.py"
MR_DIR = DICOM / "DOE_JOHN" / "20200611_MR_BRAIN" / "t1_mprage"
NO_PREAMBLE = DICOM / "DOE_JOHN" / "2019-03-14_CT_HEAD" / "SE2" / "IM_0003.dcm"
NON_DICOM = {"DICOMDIR", "export_notes.txt"}


def shared_data() -> Path:
    env = os.environ.get("NEURODEID_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (path / "heads" / "colin27_ch2.nii.gz").is_file():
        pytest.skip(f"shared data not found: {path} (set NEURODEID_SHARED_DATA)")
    return path


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def image_files(root: Path) -> list[Path]:
    return [p for p in all_files(root) if p.name not in NON_DICOM]


def sha256_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in all_files(root)
    }


def load_builder():
    spec = importlib.util.spec_from_file_location("build_example", BUILD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_exists_and_is_small():
    assert DICOM.is_dir(), f"{DICOM} missing: run python example/build_example.py"
    total = sum(p.stat().st_size for p in all_files(EXAMPLE))
    assert total <= 25 * 1024**2, f"example/ is {total / 1024**2:.1f} MiB (> 25 MiB)"
    for name in ("LICENSES.md", "planted_identifiers.json", "build_example.py"):
        assert (EXAMPLE / name).is_file()
    assert (DICOM / "DICOMDIR").is_file()
    assert (DICOM / "DOE_JOHN" / "export_notes.txt").is_file()


def test_every_image_file_reads_with_pydicom():
    files = image_files(DICOM)
    assert len(files) == 5 + 177 + 1
    modalities = {}
    for f in files:
        ds = pydicom.dcmread(f, force=(f == NO_PREAMBLE))
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        modalities[ds.Modality] = modalities.get(ds.Modality, 0) + 1
    assert modalities == {"CT": 5, "MR": 177, "US": 1}
    # one CT file has no preamble and no 'DICM' prefix, so plain dcmread refuses it
    assert NO_PREAMBLE.read_bytes()[128:132] != b"DICM"
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(NO_PREAMBLE)
    # the DICOMDIR references every image file
    dd = pydicom.dcmread(DICOM / "DICOMDIR")
    refs = {
        Path(*rec.ReferencedFileID)
        for rec in dd.DirectoryRecordSequence
        if "ReferencedFileID" in rec
    }
    assert refs == {f.relative_to(DICOM) for f in files}


def test_us_file_is_rgb_with_region():
    ds = pydicom.dcmread(DICOM / "ROE_JANE" / "US_20210102" / "US1.dcm")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1"
    assert ds.PhotometricInterpretation == "RGB" and ds.PlanarConfiguration == 0
    assert ds.BurnedInAnnotation == "YES"
    assert ds.pixel_array.shape == (ds.Rows, ds.Columns, 3)
    (region,) = ds.SequenceOfUltrasoundRegions
    assert 0 < region.RegionLocationMinY0 < region.RegionLocationMaxY1 < ds.Rows
    assert 0 <= region.RegionLocationMinX0 < region.RegionLocationMaxX1 < ds.Columns


def test_planted_identifiers_are_in_their_subjects_files_only():
    planted = json.loads((EXAMPLE / "planted_identifiers.json").read_text())["subjects"]
    blobs = {
        label: b"".join(p.read_bytes() for p in image_files(DICOM / label))
        for label in planted
    }
    for label, entry in planted.items():
        for s in entry["strings"] + entry["dates"] + entry["uids"]:
            assert s.encode() in blobs[label], f"{label}: planted {s!r} not found"
            for other, blob in blobs.items():
                if other != label:
                    assert s.encode() not in blob, f"{label}'s {s!r} found in {other}"
        for part in entry["path_components"]:
            assert any(part in p.parts for p in all_files(DICOM / label)), part
    # a depth-2 person name and a private block inside a sequence item
    ds = pydicom.dcmread(MR_DIR / "DOE_JOHN_0001")
    item = ds.RequestAttributesSequence[0]
    name = item.ReasonForRequestedProcedureCodeSequence[0][0x0040A123].value
    assert name in planted["DOE_JOHN"]["strings"]
    assert item.private_block(0x0011, "ACME_PRIVATE 1.0")[0x10].value.startswith(
        "ACME-ORDER"
    )
    assert ds.private_block(0x0011, "ACME_PRIVATE 1.0")[0x01].value.startswith(
        "ACME-PT"
    )


def test_planted_json_matches_builder():
    builder = load_builder()
    assert json.loads((EXAMPLE / "planted_identifiers.json").read_text()) == json.loads(
        json.dumps(builder.planted_identifiers())
    )


def test_mr_geometry_matches_colin27():
    nib = pytest.importorskip("nibabel")
    img = nib.load(str(shared_data() / "heads" / "colin27_ch2.nii.gz"))
    data = np.asarray(img.dataobj)
    nz = np.argwhere(data > 0)
    lo, hi = nz.min(0), nz.max(0) + 1  # the builder crops only all-zero planes
    files = sorted(MR_DIR.iterdir())
    assert len(files) == hi[2] - lo[2]
    for n in (0, 88, len(files) - 1):
        ds = pydicom.dcmread(files[n])
        assert ds.InstanceNumber == n + 1
        # first pixel (row 0, col 0) of this slice is voxel (hi_i-1, hi_j-1, lo_k+n)
        ras = img.affine @ [hi[0] - 1, hi[1] - 1, lo[2] + n, 1]
        lps = [-ras[0], -ras[1], ras[2]]
        np.testing.assert_allclose(
            [float(v) for v in ds.ImagePositionPatient], lps, atol=1e-3
        )
        np.testing.assert_allclose(
            [float(v) for v in ds.ImageOrientationPatient],
            [1, 0, 0, 0, 1, 0],
            atol=1e-6,
        )
        assert [float(v) for v in ds.PixelSpacing] == [1.0, 1.0]
        assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == 1.0
        assert (ds.Rows, ds.Columns) == (hi[1] - lo[1], hi[0] - lo[0])
        expected = data[lo[0] : hi[0], lo[1] : hi[1], lo[2] + n][::-1, ::-1].T
        np.testing.assert_array_equal(ds.pixel_array, expected)


def test_mr_converts_with_dcm2niix(tmp_path):
    nib = pytest.importorskip("nibabel")
    exe = shutil.which("dcm2niix")
    if exe is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix)")
    img = nib.load(str(shared_data() / "heads" / "colin27_ch2.nii.gz"))
    data = np.asarray(img.dataobj)
    nz = np.argwhere(data > 0)
    lo, hi = nz.min(0), nz.max(0) + 1
    ref = nib.as_closest_canonical(
        img.slicer[tuple(slice(a, b) for a, b in zip(lo, hi))]
    )
    subprocess.run(
        [exe, "-z", "n", "-f", "t1", "-o", str(tmp_path), str(MR_DIR)],
        check=True,
        capture_output=True,
    )
    out = nib.as_closest_canonical(nib.load(str(tmp_path / "t1.nii")))
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(out.dataobj), np.asarray(ref.dataobj))


def test_rebuild_is_byte_identical(tmp_path):
    pytest.importorskip("nibabel")
    pytest.importorskip("SimpleITK")
    env = dict(os.environ, NEURODEID_SHARED_DATA=str(shared_data()))
    out = tmp_path / "dicom"
    subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out)],
        check=True,
        capture_output=True,
        env=env,
        cwd=REPO,
    )
    rebuilt, committed = sha256_tree(out), sha256_tree(DICOM)
    assert sorted(rebuilt) == sorted(committed)
    differ = [k for k in committed if rebuilt[k] != committed[k]]
    assert not differ, f"rebuilt files differ from committed ones: {differ[:5]}"
