"""BIDS naming rules, sidecar allow-list, NIfTI header sanitising and NRRD export of neurodeid.convert."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from neurodeid.convert import (
    assign_bids_names,
    bids_name,
    classify_series,
    convert_series,
    load_allowlist,
    load_heuristics,
    sanitise_nifti_header,
    sanitise_sidecar,
    write_nrrd,
)

RULES = load_heuristics()


def row(desc, itype="ORIGINAL\\PRIMARY\\M\\ND", modality="MR", n=176, sn=1, label=None, protocol=None, outputs=None):
    r = {
        "series_label": label or f"s{sn}",
        "SeriesDescription": desc,
        "ProtocolName": protocol if protocol is not None else desc,
        "ImageType": itype,
        "Modality": modality,
        "SeriesNumber": sn,
        "n_images": n,
    }
    if outputs is not None:
        r["outputs"] = outputs
    return r


@pytest.mark.parametrize(
    "desc,itype,modality,n,expected",
    [
        ("t1_mprage_sag_p2_iso", "ORIGINAL\\PRIMARY\\M\\ND\\NORM", "MR", 176, ("anat", "T1w")),
        ("Sag CUBE T2", "ORIGINAL\\PRIMARY\\OTHER", "MR", 200, ("anat", "T2w")),
        ("t2_flair_tra", "ORIGINAL\\PRIMARY\\M\\ND", "MR", 30, ("anat", "FLAIR")),
        ("Axial EPI-FMRI (Interleaved I to S)", "ORIGINAL\\PRIMARY\\EPI\\NONE", "MR", 150, ("func", "bold")),
        ("ep2d_diff_mddw_30", "ORIGINAL\\PRIMARY\\DIFFUSION\\NONE", "MR", 31, ("dwi", "dwi")),
        ("Routine Brain", "ORIGINAL\\PRIMARY\\AXIAL", "CT", 28, ("ct", "ct")),
        ("gre_field_mapping", "ORIGINAL\\PRIMARY\\P\\ND", "MR", 40, ("fmap", "phasediff")),
        ("gre_field_mapping", "ORIGINAL\\PRIMARY\\M\\ND", "MR", 80, ("fmap", "magnitude")),
    ],
)
def test_classify(desc, itype, modality, n, expected):
    c = classify_series(row(desc, itype, modality, n), RULES)
    assert (c.get("datatype"), c.get("suffix")) == expected, c


def test_classify_task_and_skips():
    c = classify_series(row("fMRI task-nback run1", n=200), RULES)
    assert c["entities"] == {"task": "nback"}
    assert classify_series(row("rs_fMRI_bold", n=200), RULES)["entities"] == {"task": "rest"}
    assert classify_series(row("AAHead_Scout_64ch", n=128), RULES)["skip"].startswith("localizer")
    assert classify_series(row("t1 whatever", itype="ORIGINAL\\PRIMARY\\LOCALIZER"), RULES)["skip"] == "localizer"
    assert "derived" in classify_series(row("t1_mprage_MPR_cor", itype="DERIVED\\SECONDARY\\MPR"), RULES)["skip"]
    assert classify_series(row("Routine Brain", modality="CT", n=1, itype="ORIGINAL\\PRIMARY\\AXIAL"), RULES).get(
        "unmatched"
    )


def test_unmatched_says_which_rules_missed_and_why():
    c = classify_series(row("Mystery Series 42"), RULES)
    msg = c["unmatched"]
    assert "t1w: Description 'Mystery Series 42 | Mystery Series 42' !~" in msg
    assert "ct-head: Modality 'MR' !~ /^CT$/" in msg
    assert msg.count(";") == len(RULES) - 1


def test_assign_names_runs_echoes_parts():
    session = [
        row("t1_mprage", sn=2, label="a"),
        row("t1_mprage", sn=9, label="b"),
        row("t2_tse_tra", sn=3, label="c"),
        row("me_gre_t2star", sn=4, label="d", outputs=["e1", "e2", "e3"]),
        row("swi_combined mag", sn=5, label="e", protocol="swi_combined", outputs=["e1", "e2", "e1_ph", "e2_ph"]),
        row("gre_field_mapping", sn=6, label="f", outputs=["e1", "e2"]),
        row("gre_field_mapping", sn=7, label="g", itype="ORIGINAL\\PRIMARY\\P\\ND", outputs=["e2_ph"]),
        row("localizer", sn=1, label="loc"),
        row("Mystery", sn=8, label="m"),
    ]
    names = assign_bids_names(session, RULES)
    assert [bids_name("X", "Y", n) for n in names["a"]] == ["sub-X/ses-Y/anat/sub-X_ses-Y_run-1_T1w"]
    assert [bids_name("X", "Y", n) for n in names["b"]] == ["sub-X/ses-Y/anat/sub-X_ses-Y_run-2_T1w"]
    assert bids_name("X", None, names["c"][0]) == "sub-X/anat/sub-X_run-1_T2w"
    assert [n["entities"].get("echo") for n in names["d"]] == ["1", "2", "3"]
    assert all(n["entities"]["run"] == "1" for n in names["d"])
    e = [(n["entities"].get("echo"), n["entities"].get("part")) for n in names["e"]]
    assert e == [("1", "mag"), ("2", "mag"), ("1", "phase"), ("2", "phase")]
    assert [n["suffix"] for n in names["f"]] == ["magnitude1", "magnitude2"]
    assert [n["suffix"] for n in names["g"]] == ["phasediff"]
    assert names["loc"][0]["skip"].startswith("localizer")
    assert "unmatched" in names["m"][0]


def test_allowlist_has_reasons_and_drops_identifiers():
    allow = load_allowlist()
    for banned in (
        "InstitutionName",
        "StationName",
        "DeviceSerialNumber",
        "AcquisitionTime",
        "AcquisitionDateTime",
        "SeriesDescription",
        "ProtocolName",
        "ImageComments",
        "StudyDescription",
        "PatientName",
    ):
        assert banned not in allow
    raw = {
        "EchoTime": 0.03,
        "RepetitionTime": 2.0,
        "SliceTiming": [0, 0.5, 1.0],
        "InstitutionName": "Hospital",
        "AcquisitionTime": "12:24:58.102500",
        "ReceiveCoilName": "Coil 2019-05-02",
        "FlipAngle": "90",
        "ImageType": ["ORIGINAL", "PRIMARY"],
        "SoftwareVersions": "x" * 100,
    }
    clean, dropped = sanitise_sidecar(raw)
    assert clean == {
        "EchoTime": 0.03,
        "RepetitionTime": 2.0,
        "SliceTiming": [0, 0.5, 1.0],
        "ImageType": ["ORIGINAL", "PRIMARY"],
    }
    # a date inside an allowed string, a wrongly typed value, an over-long string: all dropped
    assert set(dropped) == {"InstitutionName", "AcquisitionTime", "ReceiveCoilName", "FlipAngle", "SoftwareVersions"}


def test_sanitise_header_removes_text_and_extensions(tmp_path):
    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.diag([2.0, 2.0, 3.0, 1.0]))
    img.header["descrip"] = b"TE=30;Time=114815.000"
    img.header["aux_file"] = b"Doe^John"
    img.header["intent_name"] = b"20180918"
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"PatientName=Doe^John"))
    p = tmp_path / "x.nii"
    nib.save(img, p)
    assert b"Doe^John" in p.read_bytes()
    sanitise_nifti_header(p)
    raw = p.read_bytes()
    assert b"Doe^John" not in raw and b"114815" not in raw and b"20180918" not in raw
    back = nib.load(p)
    assert back.header["descrip"][()] == b"neurodeid" and len(back.header.extensions) == 0
    assert np.array_equal(back.get_fdata(), img.get_fdata()) and np.allclose(back.affine, img.affine)
    # uncompressed, extension-free: patched in place
    p2 = tmp_path / "y.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4)), p2)
    before = p2.read_bytes()
    sanitise_nifti_header(p2)
    after = p2.read_bytes()
    assert len(before) == len(after) and after[352:] == before[352:]


def test_write_nrrd_lps_geometry(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    ct2 = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "77654033" / "CT2"
    out = convert_series(sorted(ct2.iterdir()), tmp_path / "c")
    nii = out[-1]["nifti"]
    nrrd = write_nrrd(nii, tmp_path / "d" / "x.nrrd")
    with open(nrrd, "rb") as fp:
        head = fp.read(2000).split(b"\n\n")[0].decode()
    assert "space: left-posterior-superior" in head
    img = nib.load(nii)
    r = sitk.ReadImage(str(nrrd))
    # NRRD voxel (i, j, k) -> LPS must equal NIfTI affine (RAS) flipped to LPS
    a_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine
    direction = np.array(r.GetDirection()).reshape(3, 3) * np.array(r.GetSpacing())
    assert np.allclose(direction, a_lps[:3, :3], atol=1e-5)
    assert np.allclose(r.GetOrigin(), a_lps[:3, 3], atol=1e-4)
    assert np.array_equal(sitk.GetArrayFromImage(r).transpose(2, 1, 0), np.asanyarray(img.dataobj))
    with gzip.open(nii) as fp:
        assert b"neurodeid" in fp.read(352)


@pytest.mark.parametrize("outputs,n_images", [
    (["part1", "part2"], 4),  # a series split at a slice gap
    (["", "a"], 2),  # dcm2niix's image, imagea: two slices at one position, no single volume
])
def test_pieces_of_one_series_are_chunks(outputs, n_images):
    """Several images of one series get the chunk entity: two names, never a collision."""
    row = {"series_label": "s002", "SeriesDescription": "Routine Brain", "ProtocolName": "", "ImageType":
           "ORIGINAL\\PRIMARY\\AXIAL", "Modality": "CT", "SeriesNumber": "2", "n_images": n_images,
           "outputs": outputs}
    names = assign_bids_names([row], load_heuristics())
    paths = [bids_name("a1", "1", n) for n in names["s002"]]
    assert paths == ["sub-a1/ses-1/ct/sub-a1_ses-1_run-1_chunk-1_ct", "sub-a1/ses-1/ct/sub-a1_ses-1_run-1_chunk-2_ct"]


def test_pilot_series_are_localizers():
    from neurodeid.convert import classify_series, load_heuristics

    row = {"SeriesDescription": "T/S/C RF FAST PILOT", "ProtocolName": "", "ImageType": "ORIGINAL\\PRIMARY\\OTHER",
           "Modality": "MR", "SeriesNumber": "1", "n_images": 3}
    assert classify_series(row, load_heuristics())["skip"] == "localizer or calibration scan"


def test_echoes_numbered_from_one_in_echo_order():
    """dcm2niix names some enhanced fieldmap echoes by echo time (``e10``, ``e12.46``, seen on
    Siemens XA30): they are magnitude1 and magnitude2, never magnitude10."""
    from neurodeid.convert.naming import assign_bids_names, load_heuristics

    row = {"series_label": "s008", "SeriesDescription": "gre_field_mapping", "ProtocolName": "gre_field_mapping",
           "ImageType": "ORIGINAL\\PRIMARY\\M\\NONE", "Modality": "MR", "SeriesNumber": "8", "n_images": 2,
           "outputs": ["e10", "e12.46"]}
    names = assign_bids_names([row], load_heuristics())
    assert [n["suffix"] for n in names["s008"]] == ["magnitude1", "magnitude2"]


def test_rest_is_a_word_not_a_substring():
    """Issue #18: "T1 MPRAGE POSTOP RESTAGING" was filed as func/bold and never defaced."""
    c = classify_series(row("T1 MPRAGE POSTOP RESTAGING", n=176), RULES)
    assert (c.get("datatype"), c.get("suffix")) == ("anat", "T1w"), c
    for desc in ("rest_bold", "Resting State fMRI", "RestingState", "ep2d_REST"):
        assert classify_series(row(desc, n=200), RULES)["entities"] == {"task": "rest"}, desc
