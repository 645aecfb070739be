"""Tests of neurodeid.deid on real DICOM (pydicom's test files, dcm_qa_nih)."""

from __future__ import annotations

import copy
import os
import re
from datetime import date
from pathlib import Path

import deid_corpus as dc
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from neurodeid.deid import (
    DeidConfig,
    DeidError,
    deidentify_dataset,
    deidentify_series,
    resolve_action,
    shift_date,
    shift_datetime,
)
from neurodeid.deid.rules import load_private_allowlist, load_safe_attributes
from neurodeid.keys import remap_uid
from neurodeid.deid.profile import DEFAULT_OPTIONS, ProfileError, load_table

KEY = b"neurodeid-test-key-0123456789"
OTHER_KEY = b"neurodeid-other-key-9876543210"
SHIFT = -123


def _shared_data() -> Path:
    root = os.environ.get("NEURODEID_SHARED_DATA")
    path = Path(root) if root else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found: {path} (set NEURODEID_SHARED_DATA)")
    return path


def _cfg(options=DEFAULT_OPTIONS, key=KEY, **kw) -> DeidConfig:
    return DeidConfig(
        key=key, subject_label="ab12cd34", session_label="1", date_shift_days=SHIFT, options=frozenset(options), **kw
    )


# ---------------------------------------------------------------- the planted corpus

OPTION_SETS = {
    "default": (DEFAULT_OPTIONS, True),
    "basic-no-times": ((), False),
    "cleaning-and-device": (
        (
            "clean_descriptors",
            "clean_structured_content",
            "clean_graphics",
            "retain_device_identity",
            "retain_institution_identity",
            "retain_long_modified_dates",
        ),
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_planted_corpus_leaves_no_marker_and_no_unchanged_value(tmp_path, name):
    options, keep_time = OPTION_SETS[name]
    corpus = dc.build_corpus(tmp_path / "in", options)
    # the corpus really carries its markers (in the bytes) before de-identification
    planted_markers = set().union(*(dc.find_markers(f.read_bytes()) for f in corpus.files))
    assert len(planted_markers) > 2000
    results = deidentify_series(corpus.files, tmp_path / "out", _cfg(options, keep_time_of_day=keep_time))
    assert [r["status"] for r in results] == ["ok"] * len(corpus.files), [r["reason"] for r in results]
    leaked = {}
    for r in results:
        found = dc.find_markers(Path(r["output"]).read_bytes())
        if found:
            leaked[r["source"]] = sorted(found)[:10]
    assert leaked == {}
    outputs = {r["source"]: r["output"] for r in results}
    left = dc.unchanged_values(corpus, outputs, keep_time_of_day=keep_time)
    assert [(f"{p.tag:08X}", p.vr, p.path) for p in left] == []
    # unlisted text attributes were removed and reported by tag number only
    report = results[0]["report"]
    assert report["counts"]["N"] > 500
    assert all(len(t) == 8 for t in report["removed_unlisted"])


def test_planted_corpus_markers_survive_without_deid(tmp_path):
    """Guard: the scan and the comparison would see a leak if there were one."""
    corpus = dc.build_corpus(tmp_path / "in", DEFAULT_OPTIONS)
    outputs = {str(f): str(f) for f in corpus.files}
    assert len(dc.unchanged_values(corpus, outputs)) > 1000


# ---------------------------------------------------------------- pydicom's whole corpus


def test_pydicom_test_corpus_deidentified_or_quarantined(tmp_path):
    files = [Path(f) for f in get_testdata_files()]
    assert len(files) > 100
    results = deidentify_series(files, tmp_path / "out", _cfg())
    assert len(results) == len(files)
    ok = [r for r in results if r["status"] == "ok"]
    quarantined = [r for r in results if r["status"] == "quarantined"]
    assert len(ok) > 80
    for r in quarantined:
        assert r["output"] is None
        assert r["source"] in r["reason"] and len(r["reason"]) > len(r["source"]) + 5
    names = sorted(Path(r["output"]).name for r in ok)
    assert names == [f"{n:05d}.dcm" for n in range(1, len(ok) + 1)]
    for r in ok:
        src = pydicom.dcmread(r["source"], force=True)
        out = pydicom.dcmread(r["output"])
        assert out.PatientIdentityRemoved == "YES"
        assert out.PatientName == "sub-ab12cd34"
        assert out.SOPClassUID == src.SOPClassUID
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        if "TransferSyntaxUID" in getattr(src, "file_meta", {}):
            assert out.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
        if "PixelData" in src:
            assert out.PixelData == src.PixelData, r["source"]


def test_quarantine_bad_files_and_raise_when_nothing_written(tmp_path):
    good = Path(get_testdata_file("CT_small.dcm"))
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file at all" * 10)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(good.read_bytes()[:1500])
    results = deidentify_series([junk, good, truncated], tmp_path / "out", _cfg())
    assert [r["status"] for r in results] == ["quarantined", "ok", "quarantined"]
    assert str(junk) in results[0]["reason"] and str(truncated) in results[2]["reason"]
    assert results[1]["output"] == str(tmp_path / "out" / "00001.dcm")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00001.dcm"]  # no temp files left
    # a rerun with fewer files leaves no stale output behind
    (tmp_path / "out" / "00002.dcm").write_bytes(b"stale")
    deidentify_series([good], tmp_path / "out", _cfg())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00001.dcm"]
    with pytest.raises(DeidError, match="no file of the series"):
        deidentify_series([junk], tmp_path / "out2", _cfg())


# ---------------------------------------------------------------- referential integrity


def _build_study(folder: Path) -> dict[str, Path]:
    """CT + MR (MR references the CT) + SR (evidence references both), one study."""
    folder.mkdir(parents=True)
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    sr = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    study = "1.2.826.0.1.3680043.10.555.1"
    for ds in (ct, mr, sr):
        ds.StudyInstanceUID = study
        ds.PatientID = "PID-12345"
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.10.555.2"
    ct.StudyDate, mr.StudyDate, sr.StudyDate = "20200110", "20200110", "20200110"
    ct.AcquisitionDateTime, mr.AcquisitionDateTime = "20200110083000", "20200215093000.5"
    ref = Dataset()
    ref.ReferencedSOPClassUID = ct.SOPClassUID
    ref.ReferencedSOPInstanceUID = ct.SOPInstanceUID
    mr.ReferencedImageSequence = Sequence([ref])
    mr.SourceImageSequence = Sequence([copy.deepcopy(ref)])
    series_items = []
    for ds in (ct, mr):
        inst = Dataset()
        inst.ReferencedSOPClassUID = ds.SOPClassUID
        inst.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        ser = Dataset()
        ser.SeriesInstanceUID = ds.SeriesInstanceUID
        ser.ReferencedSOPSequence = Sequence([inst])
        series_items.append(ser)
    ev = Dataset()
    ev.StudyInstanceUID = study
    ev.ReferencedSeriesSequence = Sequence(series_items)
    sr.CurrentRequestedProcedureEvidenceSequence = Sequence([ev])
    paths = {}
    for name, ds in (("ct", ct), ("mr", mr), ("sr", sr)):
        paths[name] = folder / f"{name}.dcm"
        ds.save_as(paths[name], enforce_file_format=True)
    return paths


def _run_study(paths, out: Path, cfg) -> dict[str, pydicom.Dataset]:
    got = {}
    for name, p in paths.items():
        (r,) = deidentify_series([p], out / name, cfg)
        assert r["status"] == "ok", r["reason"]
        got[name] = pydicom.dcmread(r["output"])
    return got


def test_references_resolve_after_remapping_and_runs_are_deterministic(tmp_path):
    paths = _build_study(tmp_path / "raw")
    orig = {k: pydicom.dcmread(p) for k, p in paths.items()}
    a = _run_study(paths, tmp_path / "a", _cfg())
    ct, mr, sr = a["ct"], a["mr"], a["sr"]
    assert ct.SOPInstanceUID == remap_uid(KEY, orig["ct"].SOPInstanceUID)
    assert ct.SOPInstanceUID.startswith("2.25.") and ct.SOPInstanceUID != orig["ct"].SOPInstanceUID
    assert ct.StudyInstanceUID == mr.StudyInstanceUID == sr.StudyInstanceUID != orig["ct"].StudyInstanceUID
    assert ct.FrameOfReferenceUID == mr.FrameOfReferenceUID
    # MR -> CT links (X/Z/U* sequences kept with remapped UIDs)
    assert mr.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID
    assert mr.SourceImageSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID
    assert mr.ReferencedImageSequence[0].ReferencedSOPClassUID == orig["ct"].SOPClassUID  # well-known: kept
    # SR evidence -> CT and MR series and instances
    ev = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert ev.StudyInstanceUID == ct.StudyInstanceUID
    refs = {
        (s.SeriesInstanceUID, s.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) for s in ev.ReferencedSeriesSequence
    }
    assert refs == {(ct.SeriesInstanceUID, ct.SOPInstanceUID), (mr.SeriesInstanceUID, mr.SOPInstanceUID)}
    for ds in a.values():
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    # same key: byte-identical; another key: other UIDs, no overlap
    _run_study(paths, tmp_path / "b", _cfg())
    for name in paths:
        assert (tmp_path / "a" / name / "00001.dcm").read_bytes() == (tmp_path / "b" / name / "00001.dcm").read_bytes()
    c = _run_study(paths, tmp_path / "c", _cfg(key=OTHER_KEY))
    uids_a = {str(d.SOPInstanceUID) for d in a.values()} | {str(ct.StudyInstanceUID)}
    uids_c = {str(d.SOPInstanceUID) for d in c.values()} | {str(c["ct"].StudyInstanceUID)}
    assert not uids_a & uids_c
    assert c["mr"].ReferencedImageSequence[0].ReferencedSOPInstanceUID == c["ct"].SOPInstanceUID


def test_date_shift_preserves_intervals(tmp_path):
    paths = _build_study(tmp_path / "raw")
    out = _run_study(paths, tmp_path / "out", _cfg())

    def d(s):
        return date(int(s[:4]), int(s[4:6]), int(s[6:8]))

    ct, mr = out["ct"], out["mr"]
    assert d(ct.StudyDate) == d("20200110").fromordinal(d("20200110").toordinal() + SHIFT)
    assert (d(mr.AcquisitionDateTime) - d(ct.AcquisitionDateTime)).days == 36  # 2020-01-10 -> 2020-02-15
    assert ct.AcquisitionDateTime[8:] == "083000" and mr.AcquisitionDateTime[8:] == "093000.5"
    assert ct.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "PatientBirthDate" not in ct or ct.PatientBirthDate == ""


# ---------------------------------------------------------------- single pieces


def test_shift_date_and_datetime():
    assert shift_date("20200301", -1) == "20200229"
    assert shift_date("2020.03.01", -1) == "20200229"
    assert shift_date("2020", -1) == "" and shift_date("20201301", -1) == ""
    assert shift_datetime("20200301101112.5+0100", -2) == "20200228101112.5+0100"
    assert shift_datetime("20200301101112", -2, keep_time=False) == "20200228"
    assert shift_datetime("2020", -2) == ""


def test_resolve_compound_actions_by_type():
    assert resolve_action("X/Z", 0x00080022) == "X"  # Acquisition Date: type 3
    assert resolve_action("Z/D", 0x00080023) == "D"  # Content Date: type 1 in SR
    assert resolve_action("X/Z/D", 0x00180010) == "Z"  # Contrast/Bolus Agent: type 2
    assert resolve_action("X/D", 0x300A0006) == "D"  # RT Plan Date: type 2, no Z offered
    assert resolve_action("X/Z/U*", 0x00081140) == "U"  # Referenced Image Sequence: kept, remapped
    assert resolve_action("X/Z/D", 0x00081070) == "X"  # Operators' Name: type 3


def test_markers_and_options(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    rep = deidentify_dataset(ds, _cfg(()))
    assert ds.PatientIdentityRemoved == "YES"
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert "StudyDate" not in ds or ds.StudyDate in ("", "19000101")
    assert rep.counts["U"] >= 3
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    opts = tuple(DEFAULT_OPTIONS) + ("clean_descriptors",)
    deidentify_dataset(ds, _cfg(opts))
    codes = {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113111", "113107", "113108", "113105"}
    assert all(i.CodingSchemeDesignator == "DCM" for i in ds.DeidentificationMethodCodeSequence)
    assert all(len(v) <= 64 for v in ds.DeidentificationMethod)
    assert (
        "neurodeid" in ds.DeidentificationMethod[0] and load_table().edition.split()[0] in ds.DeidentificationMethod[0]
    )
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PatientAge, ds.PatientWeight = "042Y", "71.5"
    deidentify_dataset(ds, _cfg(DEFAULT_OPTIONS))
    assert (ds.PatientAge, ds.PatientWeight) == ("042Y", 71.5)  # Retain Patient Characteristics
    deidentify_dataset(ds, _cfg(()))
    assert "PatientAge" not in ds and "PatientWeight" not in ds


def test_config_validation():
    with pytest.raises(ProfileError):
        _cfg(("retain_long_full_dates", "retain_long_modified_dates"))
    with pytest.raises(DeidError, match="subject_label"):
        DeidConfig(key=KEY, subject_label="sub-01")
    with pytest.raises(DeidError, match="key"):
        DeidConfig(key=b"", subject_label="01")


def test_data_files_have_reasons():
    for tag, (kw, reason) in load_safe_attributes().items():
        assert kw and len(reason) > 10, f"{tag:08X}"
        assert load_table().row(tag) is None, f"{tag:08X} is a table row: the table decides it"
    for k, (kw, reason) in load_private_allowlist().items():
        assert kw and len(reason) > 10, k


def test_safe_private_allowlist_on_real_siemens_and_ge(tmp_path):
    root = _shared_data() / "dicom" / "dcm_qa_nih" / "In"
    si = sorted((root / "20180918Si" / "mr_0003").glob("*.dcm"))[:1]
    ge = sorted((root / "20180918GE" / "mr_0004").glob("*.dcm"))[:1]
    if not si or not ge:
        pytest.skip(f"dcm_qa_nih series not found under {root}")
    (rs, rg) = deidentify_series(si + ge, tmp_path / "on", _cfg())
    s_out = pydicom.dcmread(rs["output"])
    assert s_out.get_private_item(0x0029, 0x10, "SIEMENS CSA HEADER").value[:4] == b"SV10"
    assert s_out.get_private_item(0x0019, 0x0A, "SIEMENS MR HEADER").value == 5
    g_out = pydicom.dcmread(rg["output"])
    assert g_out.get_private_item(0x0043, 0x39, "GEMS_PARM_01").value is not None
    kept = {
        (e.tag.group, e.tag.element & 0xFF)
        for d in (s_out, g_out)
        for e in d
        if e.tag.is_private and e.tag.element >= 0x1000
    }
    allowed = {(g, b) for (_c, g, b) in load_private_allowlist()}
    assert kept and kept <= allowed
    assert 0x00090010 not in g_out and 0x00510010 not in s_out  # unlisted creators gone
    off = tuple(o for o in DEFAULT_OPTIONS if o != "retain_safe_private")
    (r_off,) = deidentify_series(si, tmp_path / "off", _cfg(off))
    assert not [e for e in pydicom.dcmread(r_off["output"]) if e.tag.is_private]


def test_ge_protocol_block_is_sanitized(tmp_path):
    import gzip
    import struct

    root = _shared_data() / "dicom" / "dcm_qa_nih" / "In" / "20180918GE" / "mr_0005"
    src = sorted(root.glob("*.dcm"))[:1]
    if not src:
        pytest.skip(f"dcm_qa_nih GE series not found under {root}")
    raw = pydicom.dcmread(src[0])[0x0025101B].value
    assert b"SEDESC" in gzip.decompress(raw[4:])  # the original holds free text
    (r,) = deidentify_series(src, tmp_path, _cfg())
    value = pydicom.dcmread(r["output"]).get_private_item(0x0025, 0x1B, "GEMS_SERS_01").value
    (n,) = struct.unpack("<I", value[:4])
    assert n == len(value) - 4 and len(value) % 2 == 0
    text = gzip.decompress(value[4:])
    keys = {line.split(b" ")[0].decode() for line in text.splitlines() if line}
    assert keys == {"SLICEORDER", "VIEWORDER", "NOSLC"}
    assert b'SLICEORDER "0"' in text  # a sequential acquisition
    assert value[4:14] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # no file name, no time stamp


@pytest.mark.parametrize("vendor,series", [("GE", 5), ("Si", 3)])
def test_dcm2niix_reads_deidentified_series_like_the_original(tmp_path, vendor, series):
    """The allow-list keeps what dcm2niix needs: the BIDS timing and encoding fields and
    the voxels of the de-identified series equal dcm2niix's reference for the raw series."""
    import json
    import shutil
    import subprocess

    nib = pytest.importorskip("nibabel")
    exe = shutil.which("dcm2niix")
    if exe is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix)")
    base = _shared_data() / "dicom" / "dcm_qa_nih"
    src = sorted((base / "In" / f"20180918{vendor}" / f"mr_{series:04d}").glob("*.dcm"))
    refs = [
        p
        for p in (base / "Ref").glob("*.json")
        if json.loads(p.read_text()).get("SeriesNumber") == series
        and json.loads(p.read_text())["Manufacturer"].startswith(vendor[:2])
    ]
    if not src or len(refs) != 1:
        pytest.skip(f"dcm_qa_nih {vendor} series {series} or its reference not found under {base}")
    results = deidentify_series(src, tmp_path / "dcm", _cfg())
    assert all(r["status"] == "ok" for r in results)
    (tmp_path / "nii").mkdir()
    subprocess.run(
        [exe, "-f", "out", "-o", str(tmp_path / "nii"), str(tmp_path / "dcm")], check=True, capture_output=True
    )
    got = json.loads((tmp_path / "nii" / "out.json").read_text())
    ref = json.loads(refs[0].read_text())
    for key in (
        "SliceTiming",
        "PhaseEncodingDirection",
        "EffectiveEchoSpacing",
        "TotalReadoutTime",
        "RepetitionTime",
        "EchoTime",
        "FlipAngle",
        "ImageOrientationPatientDICOM",
        "ImageType",
    ):
        assert got.get(key) == ref.get(key), key
    raw = pydicom.dcmread(src[0], stop_before_pixels=True)
    secrets = [
        str(raw.get(k, ""))
        for k in (
            "InstitutionName",
            "StationName",
            "DeviceSerialNumber",
            "SeriesDescription",
            "ProtocolName",
            "InstitutionAddress",
        )
    ]
    secrets = [s for s in secrets if len(s) >= 5]
    assert len(secrets) >= 4
    sidecar = json.dumps(got)
    assert [s for s in secrets if s in sidecar] == []
    for r in results:  # the kept private elements (CSA, GE protocol) no longer carry them either
        data = Path(r["output"]).read_bytes()
        assert [s for s in secrets if s.encode() in data] == [], r["output"]
    a = nib.load(tmp_path / "nii" / "out.nii").get_fdata()
    b = nib.load(refs[0].with_suffix(".nii")).get_fdata()
    assert a.shape == b.shape and (a == b).all()


def test_siemens_csa_sanitizer_keeps_structure_and_drops_planted_text():
    import struct

    from neurodeid.deid.private_transforms import sanitize_siemens_csa

    root = _shared_data() / "dicom" / "dcm_qa_nih" / "In" / "20180918Si" / "mr_0003"
    src = sorted(root.glob("*.dcm"))[:1]
    if not src:
        pytest.skip(f"dcm_qa_nih Siemens series not found under {root}")
    ds = pydicom.dcmread(src[0])
    series = bytearray(ds.get_private_item(0x0029, 0x20, "SIEMENS CSA HEADER").value)
    # plant a marker in the slack of the first 64-byte tag name and in the protocol name
    name_end = series.index(b"\x00", 16)
    series[name_end + 1 : name_end + 11] = b"NDMK99999Q"
    i = series.index(b"tProtocolName")
    j = series.index(b'""', i) + 2
    k = series.index(b'""', j)
    series[j:k] = b"NDMK99998Q".ljust(k - j, b"_")[: k - j]
    assert b"NDMK99999Q" in series and b"NDMK9999" in series
    clean = sanitize_siemens_csa(bytes(series))
    assert clean is not None and len(clean) == len(series)
    assert b"NDMK9999" not in clean
    assert clean[:4] == b"SV10" and struct.unpack_from("<I", clean, 8) == struct.unpack_from("<I", series, 8)
    assert b"sKSpace.ucPhasePartialFourier" in clean and b"tCoilID" in clean  # the numeric protocol is kept
    assert re.search(rb"1\.3\.12\.2\.1107\.[0-9.]{10,}", clean) is None  # reference-image UIDs zeroed
    assert sanitize_siemens_csa(b"not a CSA2 header at all, just text") is None


def test_transfer_syntaxes_and_pixels_preserved(tmp_path):
    """dcm_qa_ts: one image in 9 transfer syntaxes (JPEG, JPEG-LS, JPEG 2000, RLE, big endian ...)."""
    src = sorted((_shared_data() / "dicom" / "dcm_qa_ts" / "In").glob("*.dcm"))
    if len(src) < 9:
        pytest.skip("dcm_qa_ts not found in the shared data")
    results = deidentify_series(src, tmp_path, _cfg())
    syntaxes = set()
    for r in results:
        assert r["status"] == "ok", r["reason"]
        a, b = pydicom.dcmread(r["source"]), pydicom.dcmread(r["output"])
        assert b.file_meta.TransferSyntaxUID == a.file_meta.TransferSyntaxUID
        assert b.PixelData == a.PixelData
        syntaxes.add(str(a.file_meta.TransferSyntaxUID))
    assert len(syntaxes) >= 7


def test_ge_user_define_data_text_is_blanked(tmp_path):
    """GE (0043,xx2A) is kept for dcm2niix, but the text inside it (the raw acquisition date
    as 09/18/118, times, station 'CT01', product name) must not survive."""
    from pydicom.data import get_testdata_file

    cfg = DeidConfig(key=b"k" * 20, subject_label="ab12", date_shift_days=-3)
    (r,) = deidentify_series([Path(get_testdata_file("CT_small.dcm"))], tmp_path / "ct", cfg)
    data = Path(r["output"]).read_bytes()
    assert b"CT01" not in data and b"HiSpeed" not in data
    ds = pydicom.dcmread(r["output"])
    blob = next(e for e in ds if e.tag.group == 0x0043 and (e.tag.element & 0xFF) == 0x2A)
    assert len(blob.value) == 40  # length (and so every offset dcm2niix reads) unchanged


# ---------------------------------------------------------------- corruption judged by structure

US_EXAMPLE = Path(__file__).resolve().parents[1] / "example" / "dicom" / "ROE_JANE" / "US_20210102" / "US1.dcm"
RIS_TEXT = "CHRONIC HEADACHE, R/O MASS\rRIS COMMENTS- PT STATES PAIN SINCE 2019. CALL DR BEFORE EXAM\r\n\tEND"


def _with_raw_element(tmp_path, raw: bytes, name: str) -> Path:
    """The example US with ``raw`` (explicit VR little endian element bytes) spliced in
    before PatientName's group: what a RIS or a corrupt length writes, byte for byte."""
    data = US_EXAMPLE.read_bytes()
    ds = pydicom.dcmread(US_EXAMPLE)
    at = ds._dict[0x00100010].value_tell - 8  # PatientName's header starts 8 bytes before its value
    out = tmp_path / name
    out.write_bytes(data[:at] + raw + data[at:])
    return out


def _lo(tag: tuple[int, int], text: bytes) -> bytes:
    import struct

    if len(text) % 2:
        text += b" "
    return struct.pack("<HH", *tag) + b"LO" + struct.pack("<H", len(text)) + text


def test_ris_free_text_with_cr_is_not_corruption(tmp_path):
    """A ReasonForStudy (LO, removed by the profile) holding CR/LF/TAB and over 64 characters, as
    RIS systems write it, is removed and the file goes on (it was quarantined as corrupt)."""
    assert len(RIS_TEXT) > 64
    # (0008,1030) StudyDescription is kept (cleaned) by the default options; (0032,1030) removed
    src = _with_raw_element(tmp_path, _lo((0x0008, 0x1030), RIS_TEXT.encode()[:60]), "a.dcm")
    src2 = tmp_path / "b.dcm"
    ds = pydicom.dcmread(src)
    ds.ReasonForStudy = RIS_TEXT
    ds.save_as(src2)
    results = deidentify_series([src, src2], tmp_path / "out", _cfg())
    assert [r["status"] for r in results] == ["ok", "ok"], [r["reason"] for r in results]
    back = pydicom.dcmread(results[1]["output"])
    assert "ReasonForStudy" not in back


def test_kept_value_that_swallowed_elements_is_quarantined(tmp_path):
    """A kept short text whose length field is too long holds the headers of the elements it
    swallowed: the file is quarantined, naming the element, whatever bytes the text holds."""
    swallowed = _lo((0x0010, 0x1040), b"12 MAIN STREET SPRINGFIELD")  # PatientAddress, removed
    # PixelPresentation (CS, kept by the profile) whose length covers the address element
    body = b"COLOR " + swallowed
    import struct

    raw = struct.pack("<HH", 0x0008, 0x9205) + b"CS" + struct.pack("<H", len(body)) + body
    src = _with_raw_element(tmp_path, raw, "c.dcm")
    (r,) = deidentify_series([src, US_EXAMPLE], tmp_path / "out", _cfg())[:1]
    assert r["status"] == "quarantined"
    assert "(0008,9205)" in r["reason"] and "following data element" in r["reason"]
    assert "c.dcm" in r["reason"]


def test_embedded_element_offset_ignores_text():
    from neurodeid.deid.series import embedded_element_offset

    assert embedded_element_offset(RIS_TEXT.encode()) is None
    assert embedded_element_offset("山田^太郎\r\n".encode("utf-8")) is None
    assert embedded_element_offset(b"AB" + _lo((0x0010, 0x1040), b"X STREET")) == 2


def test_palette_and_radiograph_display_attributes_are_kept():
    """A PALETTE COLOR image stored with a segmented palette (Aloka ultrasound) cannot be shown
    without its segmented lookup tables, a radiograph not without its intensity relationship:
    unlisted by Table E.1-1, they are in the safe list and kept; the colours decode."""
    import numpy as np
    from pydicom.pixels import apply_color_lut

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.PatientName, ds.Modality = "ZEBEDEE^QUORNA", "US"
    ds.set_pixel_data(np.arange(64, dtype=np.uint8).reshape(8, 8), "MONOCHROME2", 8)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    segment = np.array([0, 1, 0, 1, 255, 65535], np.uint16).tobytes()  # one discrete entry, then a ramp
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        ds.add_new(f"Segmented{colour}PaletteColorLookupTableData", "OW", segment)
    ds.PixelIntensityRelationship, ds.PixelIntensityRelationshipSign = "LOG", -1
    deidentify_dataset(ds, _cfg())
    for colour in ("Red", "Green", "Blue"):
        assert f"Segmented{colour}PaletteColorLookupTableData" in ds, colour
    assert ds.PixelIntensityRelationship == "LOG" and ds.PixelIntensityRelationshipSign == -1
    rgb = apply_color_lut(ds.pixel_array, ds)
    assert rgb.shape == (8, 8, 3) and rgb[7, 7, 0] > rgb[0, 1, 0]


def test_file_meta_and_preamble_are_written_by_neurodeid(tmp_path):
    """The file meta names the implementation that wrote the file (PS3.10): neurodeid, not
    the site's export tool ("GLENMOOR_PACS"); the input's preamble and sending AE titles
    are not carried over."""
    from neurodeid.deid.series import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.ImplementationClassUID = "1.2.3.4.99.1"
    ds.file_meta.ImplementationVersionName = "GLENMOOR_PACS"
    ds.file_meta.SourceApplicationEntityTitle = "GLENMOOR_MR3"
    ds.preamble = b"GLENMOOR" + b"\x00" * 120
    ds.save_as(tmp_path / "in.dcm", enforce_file_format=True)
    deidentify_series([tmp_path / "in.dcm"], tmp_path / "out", _cfg())
    out = next((tmp_path / "out").glob("*.dcm"))
    data = out.read_bytes()
    assert b"GLENMOOR" not in data and data[:128] == b"\x00" * 128
    meta = pydicom.dcmread(out, stop_before_pixels=True).file_meta
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
