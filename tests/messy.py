"""A messy input tree like real exports: every case of the robustness issue.

``build_messy_tree(root)`` writes the tree and returns a dict of case name →
relative path, so tests can check what happened to each file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from conftest import EXAMPLE_DICOM, pydicom_testdir

CT_DIR = EXAMPLE_DICOM / "DOE_JOHN" / "2019-03-14_CT_HEAD" / "SE2"


def _ct(i: int = 1) -> pydicom.FileDataset:
    return pydicom.dcmread(CT_DIR / f"IM_000{i}.dcm", force=True)


def _new_uids(ds: Dataset, tag: str) -> None:
    """Give a dataset new study/series/instance UIDs derived from ``tag`` (deterministic)."""
    base = "2.25." + str(int.from_bytes(tag.encode()[:12].ljust(12, b"0"), "big"))
    ds.StudyInstanceUID = base + ".1"
    ds.SeriesInstanceUID = base + ".2"
    ds.SOPInstanceUID = base + f".3.{int(ds.get('InstanceNumber', 1) or 1)}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def build_messy_tree(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    cases: dict[str, str] = {}

    def put(case: str, rel: str, data: bytes | None = None, ds: Dataset | None = None, **save) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if ds is not None:
            ds.save_as(p, **save)
        else:
            p.write_bytes(data or b"")
        cases[case] = rel

    # a good series (the example's CT), as the baseline that must complete
    shutil.copytree(CT_DIR, root / "good" / "CT")
    cases["good"] = "good/CT/IM_0001.dcm"

    good_bytes = (CT_DIR / "IM_0002.dcm").read_bytes()
    put("truncated_header", "bad/truncated.dcm", good_bytes[:300])
    put("zero_bytes", "bad/zero.dcm", b"")
    put("random_bytes", "bad/random.dcm", os.urandom(4096))
    put("random_no_ext", "bad/IM9999", bytes(range(256)) * 16)
    put("text_file", "bad/notes.txt", b"exported by the PACS\n")

    ds = _ct(1)
    _new_uids(ds, "nopreamble")
    ds.PatientID = "MESSY-NOPRE"
    ds.preamble = None
    put("no_preamble", "weird/nopreamble", ds=ds, enforce_file_format=False)

    shutil.copy(EXAMPLE_DICOM / "DICOMDIR", root / "DICOMDIR")
    cases["dicomdir"] = "DICOMDIR"

    ds = _ct(1)
    _new_uids(ds, "nopixels")
    ds.PatientID = "MESSY-NOPIX"
    del ds.PixelData
    put("no_pixel_data", "weird/nopixels.dcm", ds=ds)

    ds = _ct(1)
    _new_uids(ds, "oddvr")
    ds.PatientID = "MESSY-ODDVR"
    ds.add_new(0x00101010, "LO", "forty-one years")  # PatientAge with a wrong VR
    ds.add_new(0x00091001, "UN", b"\x01\x02Quibbleton Ward\x00")  # private, UN
    put("odd_vr", "weird/oddvr.dcm", ds=ds)

    ds = _ct(1)
    _new_uids(ds, "latin1")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientID = "MESSY-LATIN1"
    ds.PatientName = "Müller^Jürgen"
    put("iso_ir_100", "names/Müller_Jürgen/latin1.dcm", ds=ds)

    ds = _ct(1)
    _new_uids(ds, "utf8")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientID = "MESSY-UTF8"
    ds.PatientName = "Ødegård^Åsgerd"
    ds.InstitutionName = "Sjukhuset Ærø"
    put("iso_ir_192", "names/Ødegård/utf8.dcm", ds=ds)

    # the same image twice, in two folders
    put("duplicate_sop", "dup/copy_of_IM_0002.dcm", good_bytes)

    # two patients in one folder
    for pid, tag in (("MESSY-TWO-A", "twoA"), ("MESSY-TWO-B", "twoB")):
        ds = _ct(1)
        _new_uids(ds, tag)
        ds.PatientID = pid
        put(f"two_patients_{tag}", f"shared_folder/{tag}.dcm", ds=ds)

    # one patient spread over many folders (one series, slices in 5 folders)
    for i in range(1, 6):
        ds = _ct(i)
        _new_uids(ds, "spread")
        ds.PatientID = "MESSY-SPREAD"
        put(f"spread_{i}", f"spread/part{i}/slice.dcm", ds=ds)

    # a very long path (> 300 characters)
    long_dir = "/".join(["very_long_folder_name_for_a_deep_export_tree_" + str(i) for i in range(7)])
    ds = _ct(1)
    _new_uids(ds, "longpath")
    ds.PatientID = "MESSY-LONG"
    put("long_path", f"{long_dir}/longpath.dcm", ds=ds)
    assert len(str(root / long_dir)) > 300

    # pydicom's series with a slice gap (missing slice) and its 3-plane localizer (mixed orientations)
    for case, src in (("missing_slice", ("77654033", "CT2")), ("mixed_orientation", ("98892003", "MR2"))):
        dst = root / "pydicom" / src[1]
        shutil.copytree(pydicom_testdir("dicomdirtests", *src), dst)
        cases[case] = (dst.relative_to(root) / sorted(os.listdir(dst))[0]).as_posix()
    return cases


def make_read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o444)
        os.chmod(dirpath, 0o555)


def make_writable(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
