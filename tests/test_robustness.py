"""Bad input never loses data: every messy case gets a reason, the rest completes."""

from __future__ import annotations

import csv

import pytest

from neurodeid import index
from neurodeid.inputs import dicom as dicom_input

from conftest import TEST_KEY, tree_sha256
from messy import build_messy_tree, make_read_only, make_writable
from test_workflow_e2e import run_snakemake


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    root = tmp_path_factory.mktemp("messy") / "in"
    cases = build_messy_tree(root)
    return root, cases


def _statuses(entries):
    return {e.path: e for e in entries}


def test_index_gives_every_bad_file_a_reason(messy):
    root, cases = messy
    entries = dicom_input.scan(root)
    dicom_input.mark_duplicates(entries)
    by = _statuses(entries)
    expect = {
        "truncated_header": ("quarantined", ""),
        "zero_bytes": ("quarantined", "empty file"),
        "random_bytes": ("quarantined", "not DICOM"),
        "random_no_ext": ("quarantined", "not DICOM"),
        "text_file": ("skipped", "not DICOM"),
        "dicomdir": ("skipped", "DICOMDIR"),
    }
    # the same image in two folders: the first in path order is kept, the other names it
    pair = [by[cases["duplicate_sop"]], by["good/CT/IM_0002.dcm"]]
    assert sorted(e.status for e in pair) == ["dicom", "skipped"]
    kept, dup = sorted(pair, key=lambda e: e.status)
    assert dup.reason == f"duplicate SOPInstanceUID: the same image as {kept.path} (kept)"
    for case, (status, reason) in expect.items():
        e = by[cases[case]]
        assert e.status == status, (case, e.status, e.reason)
        assert reason in e.reason and e.reason, (case, e.reason)
    for case in ("good", "no_preamble", "no_pixel_data", "odd_vr", "iso_ir_100", "iso_ir_192", "long_path",
                 "spread_1", "two_patients_twoA", "missing_slice", "mixed_orientation"):
        assert by[cases[case]].status == "dicom", (case, by[cases[case]].reason)


def test_grouping_of_messy_tree(messy, tmp_path):
    root, cases = messy
    idx = dicom_input.build_index(root, tmp_path / "private", TEST_KEY)
    by_pid: dict[str, set] = {}
    for s in idx.series:
        by_pid.setdefault(s.fields["PatientID"], set()).add((s.subject, s.session, s.series, len(s.files)))
    # one patient spread over five folders: one subject, one series of five files
    assert [x[3] for x in by_pid["MESSY-SPREAD"]] == [5]
    # two patients in one folder: two subjects
    (a,), (b,) = by_pid["MESSY-TWO-A"], by_pid["MESSY-TWO-B"]
    assert a[0] != b[0]
    # non-ASCII names were decoded with their character set (private index only)
    q = (tmp_path / "private" / "index" / "quarantine.tsv").read_text(encoding="utf-8")
    for case in ("truncated_header", "zero_bytes", "random_bytes", "dicomdir", "text_file"):
        assert cases[case] in q, case
    assert "duplicate SOPInstanceUID" in q


@pytest.fixture(scope="module")
def messy_run(messy, tmp_path_factory):
    root, cases = messy
    out = tmp_path_factory.mktemp("messy_out") / "results"
    make_read_only(root)
    try:
        before = tree_sha256(root)
        proc = run_snakemake(
            "--config", f"input_dir={root}", f"output_dir={out}", env_key="robustness-test-key-0123456789", check=False
        )
        after = tree_sha256(root)
    finally:
        make_writable(root)
    return {"out": out, "proc": proc, "before": before, "after": after, "cases": cases}


def test_messy_run_completes(messy_run):
    proc = messy_run["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert (messy_run["out"] / "private" / "audit.ok").is_file()


def test_messy_inputs_untouched(messy_run):
    assert messy_run["before"] == messy_run["after"]


def test_messy_quarantine_lists_file_and_reason(messy_run):
    with open(messy_run["out"] / "private" / "quarantine.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    by_file = {r["file"]: r for r in rows}
    for case in ("truncated_header", "zero_bytes", "random_bytes", "random_no_ext", "dicomdir"):
        rel = messy_run["cases"][case]
        assert any(f.endswith(rel) for f in by_file), case
        row = next(r for f, r in by_file.items() if f.endswith(rel))
        assert row["reason"].strip(), case
    assert "Traceback" not in (messy_run["out"] / "private" / "quarantine.tsv").read_text(encoding="utf-8")


def test_messy_release_has_no_non_ascii_names(messy_run):
    rel = messy_run["out"] / "release"
    for p in rel.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for s in ("Müller", "Jürgen", "Ødegård", "Åsgerd", "Ærø"):
                assert s.encode("utf-8") not in data and s.encode("latin-1") not in data, (p, s)


def test_objects_without_a_patient_are_skipped_by_name(tmp_path):
    """A colour palette (pydicom 2.4's palettes/*.dcm) or a hanging protocol holds no
    patient, series or study: skipped with what it is, not quarantined as unusable."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    for name, sop_class, what in (("palette.dcm", "1.2.840.10008.5.1.4.39.1", "a colour palette"),
                                  ("hp.dcm", "1.2.840.10008.5.1.4.38.1", "a hanging protocol")):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.ContentLabel = "HOT_IRON"
        pydicom.dcmwrite(tmp_path / name, ds, enforce_file_format=True)
    ds.StudyInstanceUID = ds.SeriesInstanceUID = generate_uid()  # a hanging protocol with UIDs
    pydicom.dcmwrite(tmp_path / "hp_uids.dcm", ds, enforce_file_format=True)
    by = {e.path: e for e in dicom_input.scan(tmp_path, write_cache=False)}
    assert {p: e.status for p, e in by.items()} == dict.fromkeys(("palette.dcm", "hp.dcm", "hp_uids.dcm"), "skipped")
    assert by["palette.dcm"].reason.startswith("a colour palette (SOP class 1.2.840.10008.5.1.4.39.1)")
    assert by["hp_uids.dcm"].reason.startswith("a hanging protocol")
