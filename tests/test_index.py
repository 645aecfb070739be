"""The DICOM index: scanning, skipping, caching, grouping and labels."""

from __future__ import annotations

import os
import shutil
import time

import pydicom
import pytest

from neurodeid import index, keys
from neurodeid.inputs import dicom as dicom_input

from conftest import REPO, TEST_KEY, pydicom_testdir


@pytest.fixture
def tree(tmp_path):
    """A small real tree: pydicom's dicomdirtests (4 patients, DICOMDIR, README) plus junk."""
    src = pydicom_testdir("dicomdirtests")
    root = tmp_path / "in"
    shutil.copytree(src, root)
    (root / "junk").mkdir()
    (root / "junk" / "random.dcm").write_bytes(os.urandom(3000))
    (root / "junk" / "empty.dcm").write_bytes(b"")
    (root / "junk" / "notes.txt").write_text("scanned on tuesday\n")
    (root / "junk" / "IM0001").write_bytes(b"\x00\x01\x02garbage" * 50)
    return root


def test_scan_skips_and_quarantines_with_reasons(tree, tmp_path):
    entries = dicom_input.scan(tree, tmp_path / "cache.json")
    by_path = {e.path: e for e in entries}
    assert by_path["junk/random.dcm"].status == "quarantined"
    assert "not DICOM" in by_path["junk/random.dcm"].reason
    assert by_path["junk/empty.dcm"].status == "quarantined"
    assert "empty file" in by_path["junk/empty.dcm"].reason
    assert by_path["junk/notes.txt"].status == "skipped"
    assert by_path["junk/IM0001"].status == "quarantined"  # binary, no extension: expected DICOM
    assert by_path["TINY_ALPHA/README"].status == "skipped"  # text, no extension
    dicomdirs = [e for e in entries if e.path.endswith("DICOMDIR")]
    assert dicomdirs and all(e.status == "skipped" and "DICOMDIR" in e.reason for e in dicomdirs)
    good = [e for e in entries if e.status == "dicom"]
    assert len(good) >= 30
    assert all(e.fields["SeriesInstanceUID"] for e in good)


def test_file_without_preamble_is_indexed(tmp_path):
    ds = pydicom.dcmread(pydicom_testdir("dicomdirtests", "98892001", "CT5N", "2062"))
    root = tmp_path / "in"
    root.mkdir()
    ds.preamble = None
    # write without the 128-byte preamble and 'DICM' prefix, as old exports do
    ds.save_as(root / "noext", enforce_file_format=False)
    assert (root / "noext").read_bytes()[128:132] != b"DICM"
    (entry,) = dicom_input.scan(root)
    assert entry.status == "dicom", entry.reason
    assert entry.fields["_preamble"] == "no"
    assert entry.fields["SOPInstanceUID"] == ds.SOPInstanceUID


def test_header_only_read_never_touches_pixels(tmp_path):
    """A file truncated inside its pixel data still indexes: the index reads headers only."""
    src = pydicom_testdir("dicomdirtests", "98892001", "CT5N", "2062")
    data = src.read_bytes()
    root = tmp_path / "in"
    root.mkdir()
    (root / "cut.dcm").write_bytes(data[: len(data) - 100])
    (entry,) = dicom_input.scan(root)
    assert entry.status == "dicom"


def test_cache_skips_unchanged_files_and_rereads_changed(tree, tmp_path, monkeypatch):
    cache = tmp_path / "cache.json"
    first = dicom_input.scan(tree, cache)
    calls = []
    real = dicom_input.read_header
    monkeypatch.setattr(dicom_input, "read_header", lambda p: calls.append(p) or real(p))
    second = dicom_input.scan(tree, cache)
    assert calls == []  # nothing re-read
    assert [(e.path, e.status, e.fields) for e in first] == [(e.path, e.status, e.fields) for e in second]
    # touch one file: only that one is re-read
    target = next(tree.rglob("2062"))
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    dicom_input.scan(tree, cache)
    assert [os.fspath(p) for p in calls] == [os.fspath(target)]


def test_cache_of_another_tree_is_ignored(tree, tmp_path):
    cache = tmp_path / "cache.json"
    dicom_input.scan(tree, cache)
    other = tmp_path / "other"
    shutil.copytree(tree / "98892001", other)
    entries = dicom_input.scan(other, cache)
    assert all(e.status == "dicom" for e in entries)
    assert len(entries) == len(list(other.rglob("*")) ) - len([p for p in other.rglob("*") if p.is_dir()])


def test_grouping_labels_and_sessions(tree, tmp_path):
    idx = dicom_input.build_index(tree, tmp_path / "private", TEST_KEY)
    # subjects: labels are 8 hex digits, keyed, never the PatientID
    pids = {s.fields["PatientID"] for s in idx.series}
    labels = idx.subject_labels()
    assert len(labels) == len(pids) >= 3
    for lab in labels:
        assert len(lab) == 8 and all(c in "0123456789abcdef" for c in lab)
        assert lab not in pids
    # sessions are 1..n in study-date order within a subject
    for sub in labels:
        sessions = {}
        for s in idx.series:
            if s.subject == sub:
                sessions.setdefault(s.session, set()).add(s.fields["StudyDate"])
        ordered = [min(sessions[k]) for k in sorted(sessions, key=int)]
        assert ordered == sorted(ordered)
        assert sorted(sessions, key=int) == [str(i) for i in range(1, len(sessions) + 1)]
    # series labels carry the series number only
    for s in idx.series:
        assert s.series.startswith("s") and s.series[1:4].isdigit()
    # the same key gives the same labels; another key other labels
    again = dicom_input.group(idx.entries, TEST_KEY)[1]
    assert again == idx.subjects
    other = dicom_input.group(idx.entries, b"another-key-0123456789abcdef")[1]
    assert set(other.values()).isdisjoint(idx.subjects.values())


def test_private_outputs_and_manifests(tree, tmp_path):
    private = tmp_path / "private"
    idx = dicom_input.build_index(tree, private, TEST_KEY)
    for name in ("index.tsv", "crosswalk.tsv", "index/quarantine.tsv", "index/subjects.tsv", "index/paths.tsv"):
        assert (private / name).is_file(), name
    q = (private / "index" / "quarantine.tsv").read_text()
    assert "junk/random.dcm\tquarantined\t" in q
    s = idx.series[0]
    man = index.manifest_path(private, s.subject, s.session, s.series)
    assert [p.name for p in index.read_manifest(man)] == [e.path.rsplit("/", 1)[-1] for e in s.files]
    # unchanged tree -> files not rewritten (mtime kept, so Snakemake reruns nothing)
    before = {p: p.stat().st_mtime_ns for p in private.rglob("*.tsv")}
    time.sleep(0.01)
    dicom_input.build_index(tree, private, TEST_KEY)
    assert {p: p.stat().st_mtime_ns for p in private.rglob("*.tsv")} == before


def test_crosswalk_labels(tree, tmp_path):
    entries = dicom_input.scan(tree)
    pid = next(e.fields["PatientID"] for e in entries if e.status == "dicom")
    cw = tmp_path / "cw.tsv"
    cw.write_text(f"patient_id\tlabel\n{pid}\tpilot01\n")
    series, subjects = dicom_input.group(entries, TEST_KEY, index.read_crosswalk(cw))
    assert {s.subject for s in series if s.fields["PatientID"] == pid} == {"pilot01"}
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"patient_id\tlabel\n{pid}\tpilot_01\n")
    with pytest.raises(index.IndexError_, match="line 2.*not a BIDS label"):
        index.read_crosswalk(bad)


def test_subject_label_collisions_are_lengthened():
    idents = [("", f"P{i}") for i in range(3000)]
    labels = index.assign_subject_labels(TEST_KEY, idents)
    assert len(set(labels.values())) == len(idents)
    # each label is a prefix of its keyed hash
    for ident, lab in labels.items():
        assert keys.subject_hash(TEST_KEY, ident[1], ident[0]).startswith(lab)


def test_pixel_cleaning_flags():
    assert dicom_input.pixel_cleaning_reason({"Modality": "US"}) == "modality US"
    assert dicom_input.pixel_cleaning_reason({"Modality": "MR", "BurnedInAnnotation": "YES"}) == "BurnedInAnnotation YES"
    assert dicom_input.pixel_cleaning_reason({"Modality": "CT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}) == "secondary capture"
    assert dicom_input.pixel_cleaning_reason({"Modality": "MR", "ImageType": "ORIGINAL\\PRIMARY"}) == ""


def test_missing_input_dir_message(tmp_path):
    with pytest.raises(index.IndexError_, match="is not a folder"):
        dicom_input.scan(tmp_path / "nope")


def test_unknown_vr_in_file_meta_is_a_reason_not_a_crash(tmp_path):
    """Found by the fuzz test: a damaged VR is decoded lazily, after dcmread returned."""
    from conftest import EXAMPLE_DICOM

    base = (EXAMPLE_DICOM / "DOE_JOHN" / "2019-03-14_CT_HEAD" / "SE2" / "IM_0001.dcm").read_bytes()
    i = base.find(b"\x02\x00\x02\x00UI")
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(base[: i + 4] + b"TI" + base[i + 6 :])
    with pytest.raises(dicom_input.NotDicomError, match="header cannot be decoded.*Unknown Value Representation"):
        dicom_input.read_header(bad)


def _all_test_files():
    """Every file of pydicom's bundled test data (never its download-on-demand files, which
    a machine without network lacks), of the bundled example and, where present, of the
    shared real exports."""
    from pydicom.data.data_manager import DATA_ROOT

    roots = [os.path.join(DATA_ROOT, "test_files"), os.path.join(REPO, "example", "dicom")]
    shared = os.environ.get("NEURODEID_SHARED_DATA")
    if shared and os.path.isdir(os.path.join(shared, "dicom")):
        roots.append(os.path.join(shared, "dicom"))
    return [os.path.join(dirpath, n) for root in roots for dirpath, _, names in os.walk(root)
            for n in names]


def test_fast_header_read_equals_pydicom_on_every_file():
    """The byte-level reader gives exactly pydicom's fields wherever it answers, and it
    answers for most real files (issue 21: the cold index reads headers without pydicom)."""
    answered = 0
    for path in _all_test_files():
        fast = dicom_input._fast_fields(path)
        if fast is None:
            continue
        answered += 1
        assert fast == dicom_input._pydicom_fields(path), path
    assert answered >= 250


def test_fast_header_read_leaves_non_ascii_to_pydicom(tmp_path):
    """A value whose bytes depend on the character set is decoded by pydicom."""
    ds = pydicom.dcmread(pydicom_testdir("dicomdirtests", "98892001", "CT5N", "2062"))
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    path = tmp_path / "latin1.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert dicom_input._fast_fields(path) is None
    assert dicom_input.read_header(path)["PatientName"] == "Müller^Jürgen"


def test_parallel_scan_equals_serial_scan(tree, tmp_path, monkeypatch):
    """Header reads in a process pool give the same entries, statuses and reasons."""
    serial = dicom_input.scan(tree, None, workers=1)
    monkeypatch.setattr(dicom_input, "PARALLEL_MIN_FILES", 1)
    parallel = dicom_input.scan(tree, tmp_path / "cache.json", workers=2)
    assert [(e.path, e.status, e.reason, e.fields) for e in serial] == \
        [(e.path, e.status, e.reason, e.fields) for e in parallel]
    assert {e.status for e in parallel} == {"dicom", "quarantined", "skipped"}
