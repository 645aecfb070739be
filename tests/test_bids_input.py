"""BIDS input (input_bids): index, plan, import and audit needles on real NIfTI files."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neurodeid import audit, index
from neurodeid.convert import bids_import
from neurodeid.inputs import bids as bids_input
from neurodeid import plan as nd_plan
from neurodeid.convert import find_dcm2niix
from neurodeid.convert.sanitise import NIFTI_DESCRIP
from neurodeid.results import StageResult, StageStatus

from conftest import EXAMPLE_DICOM, TEST_KEY, tree_sha256

SUB1, SUB2 = "JohnDoe1975", "JaneRoe1980"
SES1, SES2 = "20200101", "20210315"
T1W = f"sub-{SUB1}/ses-{SES1}/anat/sub-{SUB1}_ses-{SES1}_T1w"
BOLD = f"sub-{SUB1}/ses-{SES1}/func/sub-{SUB1}_ses-{SES1}_task-rest_run-1_bold"
DWI = f"sub-{SUB1}/ses-{SES1}/dwi/sub-{SUB1}_ses-{SES1}_dwi"
T1W_2 = f"sub-{SUB1}/ses-{SES2}/anat/sub-{SUB1}_ses-{SES2}_T1w"
TRUNCATED = f"sub-{SUB1}/ses-{SES2}/anat/sub-{SUB1}_ses-{SES2}_run-2_T1w.nii.gz"
JANE_T1W = f"sub-{SUB2}/anat/sub-{SUB2}_T1w"
JANE_FLAIR = f"sub-{SUB2}/anat/sub-{SUB2}_FLAIR"  # NIfTI-2
MISNAMED = f"sub-{SUB2}/anat/JaneRoe_T1.nii.gz"
DATE_ENTITY = f"sub-{SUB2}/anat/sub-{SUB2}_acq-20200101_T2w.nii.gz"

#: Identifiers planted in the synthetic dataset, by image: every one must be a needle.
PLANTED_T1W = [
    SUB1, SES1, "2020-01-01", "St Elsewhere Hospital", "2020-01-01T09:20:31", "DOE^JOHN", "DOE", "JOHN",
    "patient JohnDoe anxious", "JohnDoe scan 2020-01-01", "Patient John Doe, MRN 7741-22",
    "John Doe", "1975-04-12", "19750412", "2020-01-01T09:20:00", "2020-01-01T09:15:00", "Clinic-Nord",
]
PLANTED_BOLD = [SUB1, SES1, "Inherited Clinic", "resting with eyes closed Doe", "2020-01-01T10:05:00"]


def _affine(zooms, origin):
    a = np.diag([*zooms, 1.0])
    a[:3, :3] = a[:3, :3] @ np.array([[0.98, -0.17, 0], [0.17, 0.98, 0], [0, 0, 1.0]])  # rotated, oblique
    a[:3, 3] = origin
    return a


def _save(path: Path, data, zooms=(1.0, 1.0, 1.2), descrip=b"", extension=None, version=1) -> None:
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    aff = _affine(zooms, (-90.5, 110.25, -60.0))
    img = cls(data, aff)
    img.set_qform(aff, 1)
    img.set_sform(aff, 2)
    img.header["descrip"] = descrip
    if extension:
        img.header.extensions.append(nib.nifti1.Nifti1Extension(6, extension))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def make_dataset(root: Path) -> Path:
    """A small BIDS dataset with identifying labels and planted identifiers (all fake)."""
    rng = np.random.default_rng(7)
    _json(root / "dataset_description.json", {"Name": "toy", "BIDSVersion": "1.10.0"})
    (root / "participants.tsv").write_text(
        "participant_id\tname\tbirth_date\tsex\tage\tsite\n"
        f"sub-{SUB1}\tJohn Doe\t1975-04-12\tM\t45\tClinic-Nord\n"
        f"sub-{SUB2}\tJane Roe\t1980-09-30\tF\t40\tn/a\n")
    (root / "README").write_text("toy dataset\n")
    (root / f"notes_{SUB1}.txt").write_text("call John back\n")
    _json(root / "task-rest_bold.json", {"RepetitionTime": 2.0, "TaskName": "rest",
                                         "InstitutionName": "Inherited Clinic"})
    deriv = root / "derivatives" / "fmriprep" / f"sub-{SUB1}" / "anat"
    _save(deriv / f"sub-{SUB1}_desc-preproc_T1w.nii.gz", np.zeros((4, 4, 4), np.int16))
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    s1 = root / f"sub-{SUB1}"
    (s1).mkdir()
    (s1 / f"sub-{SUB1}_sessions.tsv").write_text(
        f"session_id\tacq_time\nses-{SES1}\t2020-01-01T09:15:00\nses-{SES2}\t2021-03-15T08:00:00\n")
    ses = s1 / f"ses-{SES1}"
    _save(root / f"{T1W}.nii.gz", rng.integers(0, 3000, (24, 26, 22), dtype=np.int16),
          descrip=b"JohnDoe scan 2020-01-01", extension=b"Patient John Doe, MRN 7741-22")
    _json(root / f"{T1W}.json", {
        "RepetitionTime": 2.3, "EchoTime": 0.003, "FlipAngle": 9, "MagneticFieldStrength": 3,
        "InstitutionName": "St Elsewhere Hospital", "AcquisitionDateTime": "2020-01-01T09:20:31",
        "PatientName": "DOE^JOHN", "OperatorNotes": "patient JohnDoe anxious", "SeriesNumber": 3,
    })
    _save(root / f"{BOLD}.nii.gz", rng.normal(100, 10, (8, 8, 6, 5)).astype(np.float32), zooms=(3.0, 3.0, 3.5))
    _json(root / f"{BOLD}.json", {"EchoTime": 0.03, "TaskDescription": "resting with eyes closed Doe"})
    (ses / "func" / f"sub-{SUB1}_ses-{SES1}_task-rest_run-1_events.tsv").write_text("onset\tduration\n0\t1\n")
    _save(root / f"{DWI}.nii.gz", rng.integers(0, 500, (8, 8, 6, 4), dtype=np.uint16), zooms=(2.0, 2.0, 2.0))
    (root / f"{DWI}.bval").write_text("0 1000 1000 1000\n")
    (root / f"{DWI}.bvec").write_text("0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    _json(root / f"{DWI}.json", {"PhaseEncodingDirection": "j-", "DeviceSerialNumber": "SN-99812"})
    (ses / f"sub-{SUB1}_ses-{SES1}_scans.tsv").write_text(
        "filename\tacq_time\n"
        f"anat/sub-{SUB1}_ses-{SES1}_T1w.nii.gz\t2020-01-01T09:20:00\n"
        f"func/sub-{SUB1}_ses-{SES1}_task-rest_run-1_bold.nii.gz\t2020-01-01T10:05:00\n")
    _save(root / f"{T1W_2}.nii.gz", rng.integers(0, 3000, (20, 20, 20), dtype=np.int16))
    _json(root / f"{T1W_2}.json", {"RepetitionTime": 2.3})
    good = (root / f"{T1W_2}.nii.gz").read_bytes()
    (root / TRUNCATED).write_bytes(good[: len(good) // 2])
    _save(root / f"{JANE_T1W}.nii", rng.integers(0, 3000, (22, 25, 21), dtype=np.int16))
    _json(root / f"{JANE_T1W}.json", {"RepetitionTime": 1.9, "StationName": "MR-JANE-ROOM"})
    _save(root / f"{JANE_FLAIR}.nii.gz", rng.integers(0, 3000, (21, 21, 21), dtype=np.int16), version=2)
    _save(root / MISNAMED, np.zeros((4, 4, 4), np.int16))
    _save(root / DATE_ENTITY, np.zeros((4, 4, 4), np.int16))
    (root / f"sub-{SUB2}" / "beh").mkdir()
    (root / f"sub-{SUB2}" / "beh" / f"sub-{SUB2}_task-x_beh.tsv").write_text("a\n1\n")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("bids") / "input")
    before = tree_sha256(root)
    yield root
    assert tree_sha256(root) == before, "the input dataset was modified"


@pytest.fixture(scope="module")
def indexed(dataset, tmp_path_factory):
    private = tmp_path_factory.mktemp("private")
    return bids_input.build_bids_index(dataset, private, TEST_KEY), private


def _series(idx, rel_stem):
    (s,) = [s for s in idx.series if s.fields["BidsPath"].startswith(rel_stem + ".nii")]
    return s


def _files(idx, s):
    return [idx.input_dir / e.path for e in s.files]


def test_labels_sessions_and_series(indexed):
    idx, private = indexed
    assert isinstance(idx, index.DatasetIndex)
    sub1 = index.assign_subject_labels(TEST_KEY, [("bids", SUB1)])[("bids", SUB1)]
    assert idx.subjects[("bids", SUB1)] == sub1 and len(sub1) == 8
    got = [(s.subject, s.session, s.series, s.fields["BidsPath"]) for s in idx.series]
    sub2 = idx.subjects[("bids", SUB2)]
    assert sorted(got) == sorted([
        (sub1, "1", "s1", f"{T1W}.nii.gz"),
        (sub1, "1", "s2", f"{DWI}.nii.gz"),
        (sub1, "1", "s3", f"{BOLD}.nii.gz"),
        (sub1, "2", "s1", f"{T1W_2}.nii.gz"),
        (sub2, "1", "s1", f"{JANE_FLAIR}.nii.gz"),
        (sub2, "1", "s2", f"{JANE_T1W}.nii"),
    ])
    t1 = _series(idx, T1W)
    assert t1.fields["Modality"] == "MR" and t1.fields["BidsDatatype"] == "anat"
    assert t1.fields["BidsSuffix"] == "T1w" and t1.fields["BidsEntities"] == {}
    assert t1.fields["shape"] == [24, 26, 22] and t1.fields["n_slices"] == 22 and t1.fields["SeriesDescription"] == ""
    bold = _series(idx, BOLD)
    assert bold.fields["BidsEntities"] == {"task": "rest", "run": "1"} and bold.fields["n_volumes"] == 5
    # sidecars follow their image: inherited top-level JSON first, then the image's own
    assert [e.path for e in bold.files] == [f"{BOLD}.nii.gz", "task-rest_bold.json", f"{BOLD}.json"]
    assert [e.path for e in _series(idx, DWI).files] == [f"{DWI}.nii.gz", f"{DWI}.json", f"{DWI}.bval", f"{DWI}.bvec"]
    # the manifest lists them (private: input paths)
    man = index.read_manifest(index.manifest_path(private, bold.subject, bold.session, bold.series))
    assert [p.name for p in man] == [Path(e.path).name for e in bold.files]


def test_skip_and_quarantine_reasons(indexed):
    idx, private = indexed
    q = {e.path: e for e in idx.quarantined}
    assert q[TRUNCATED].status == "quarantined" and "truncated" in q[TRUNCATED].reason
    assert q[MISNAMED].status == "quarantined" and "not usable BIDS" in q[MISNAMED].reason
    assert q[DATE_ENTITY].status == "quarantined" and "looks like a date" in q[DATE_ENTITY].reason
    assert q["derivatives/"].status == "skipped" and "derivatives" in q["derivatives/"].reason
    assert not any(p.startswith("derivatives/f") for p in q)  # the folder is not read
    assert q[".git/"].status == "skipped"
    assert q[f"notes_{SUB1}.txt"].status == "skipped" and "top-level" in q[f"notes_{SUB1}.txt"].reason
    assert q["participants.tsv"].status == "skipped"
    assert q[f"sub-{SUB2}/beh/"].status == "skipped" and "datatype" in q[f"sub-{SUB2}/beh/"].reason
    events = f"sub-{SUB1}/ses-{SES1}/func/sub-{SUB1}_ses-{SES1}_task-rest_run-1_events.tsv"
    assert q[events].status == "skipped"
    assert "task-rest_bold.json" not in q  # inherited by the bold image: indexed
    rows = (private / "index" / "quarantine.tsv").read_text().splitlines()
    assert any(r.startswith(TRUNCATED + "\tquarantined\t") for r in rows)
    assert not any(r.startswith(f"{T1W}.nii.gz\t") for r in rows)


def test_input_labels_stay_private(indexed):
    idx, private = indexed
    labels = (SUB1, SUB2, SES1, SES2, "JohnDoe", "JaneRoe")
    for p in private.rglob("*"):
        rel = p.relative_to(private).as_posix()
        assert not any(lab.lower() in rel.lower() for lab in labels), rel
    for s in idx.series:
        assert not any(lab in f"{s.subject}{s.session}{s.series}" for lab in labels)
    for p in nd_plan.plan_bids(idx):
        assert not any(lab in json.dumps(p.target) for lab in labels)
    subjects = (private / "index" / "subjects.tsv").read_text()
    assert not any(lab in subjects for lab in labels)
    # the private crosswalk is where the input label is written, with issuer "bids"
    cw = (private / "crosswalk.tsv").read_text()
    assert f"{SUB1}\tbids\tsub-{idx.subjects[('bids', SUB1)]}" in cw


def test_write_false_and_rerun_write_nothing(dataset, indexed, tmp_path):
    idx, private = indexed
    fresh = tmp_path / "fresh"
    again = bids_input.build_bids_index(dataset, fresh, TEST_KEY, write=False)
    assert not fresh.exists()
    assert [(s.subject, s.session, s.series) for s in again.series] == [(s.subject, s.session, s.series)
                                                                       for s in idx.series]
    mtimes = {p: p.stat().st_mtime_ns for p in private.rglob("*") if p.is_file()}
    bids_input.build_bids_index(dataset, private, TEST_KEY)
    assert {p: p.stat().st_mtime_ns for p in private.rglob("*") if p.is_file()} == mtimes


def test_crosswalk_labels(dataset, tmp_path):
    cw = tmp_path / "cw.tsv"
    cw.write_text(f"patient_id\tlabel\n{SUB1}\tP01\n")
    idx = bids_input.build_bids_index(dataset, tmp_path / "p", TEST_KEY, crosswalk=cw)
    assert idx.subjects[("bids", SUB1)] == "P01"
    assert {s.subject for s in idx.series} == {"P01", idx.subjects[("bids", SUB2)]}


def test_plan(indexed):
    idx, _ = indexed
    plan = {(p.subject, p.session, p.series): p for p in nd_plan.plan_bids(idx)}

    def key(stem):
        s = _series(idx, stem)
        return s.subject, s.session, s.series

    t1 = plan[key(T1W)]
    assert t1.deface and t1.target == {"datatype": "anat", "suffix": "T1w", "entities": {}}
    assert not t1.release_dicom and t1.reason == "input is BIDS: no DICOM" and not t1.redact and not t1.defaced_dicom
    bold = plan[key(BOLD)]
    assert not bold.deface and bold.target == {"datatype": "func", "suffix": "bold",
                                               "entities": {"task": "rest", "run": "1"}}
    assert plan[key(T1W_2)].deface  # 20 x 20 x 20
    assert all(p.convert for p in plan.values())


def _load(path):
    img = nib.load(str(path))
    return img, np.asanyarray(img.dataobj.get_unscaled())


@pytest.mark.parametrize("stem", [T1W, BOLD, DWI, JANE_T1W, JANE_FLAIR])
def test_import_keeps_voxels_and_affine(indexed, tmp_path, stem):
    idx, _ = indexed
    s = _series(idx, stem)
    res = bids_import.import_series(_files(idx, s), tmp_path / "out", tmp_path / "out.json")
    assert res.status == "ok", res.reason
    assert json.loads((tmp_path / "out.json").read_text()) == res.to_dict()
    (im,) = res.images
    assert im["nifti"] == "image.nii.gz" and im["suffix_hint"] == ""
    assert im["bids"] == {"datatype": s.fields["BidsDatatype"], "suffix": s.fields["BidsSuffix"],
                          "entities": s.fields["BidsEntities"]}
    src_img, src = _load(idx.input_dir / s.fields["BidsPath"])
    out_img, out = _load(tmp_path / "out" / im["nifti"])
    assert isinstance(out_img, nib.Nifti1Image)
    assert out.dtype == src.dtype and np.array_equal(out, src)
    for which in ("get_qform", "get_sform"):
        a, ca = getattr(src_img.header, which)(coded=True)
        b, cb = getattr(out_img.header, which)(coded=True)
        assert int(ca) == int(cb) and np.allclose(a, b, atol=1e-6)
    assert bytes(out_img.header["descrip"]).rstrip(b"\0") == NIFTI_DESCRIP
    for field in ("aux_file", "intent_name", "db_name"):
        assert bytes(out_img.header[field]).strip(b"\0") == b""
    assert len(out_img.header.extensions) == 0
    raw = gzip.decompress((tmp_path / "out" / "image.nii.gz").read_bytes())
    assert raw[348:352] == b"\0\0\0\0"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["image.nii.gz", "image.json"] + (["image.bval", "image.bvec"] if stem == DWI else []))


def test_import_sidecars(indexed, tmp_path):
    idx, _ = indexed
    t1 = bids_import.import_series(_files(idx, _series(idx, T1W)), tmp_path / "t1", tmp_path / "t1.json")
    side = json.loads((tmp_path / "t1" / t1.images[0]["json"]).read_text())
    assert side == {"RepetitionTime": 2.3, "EchoTime": 0.003, "FlipAngle": 9, "MagneticFieldStrength": 3}
    bold = bids_import.import_series(_files(idx, _series(idx, BOLD)), tmp_path / "b", tmp_path / "b.json")
    side = json.loads((tmp_path / "b" / "image.json").read_text())
    # RepetitionTime inherited from the top-level task-rest_bold.json; TaskName from the name
    assert side == {"RepetitionTime": 2.0, "EchoTime": 0.03, "TaskName": "rest"}
    assert bold.status == "ok"
    dwi = _series(idx, DWI)
    bids_import.import_series(_files(idx, dwi), tmp_path / "d", tmp_path / "d.json")
    for ext in ("bval", "bvec"):
        assert (tmp_path / "d" / f"image.{ext}").read_bytes() == (idx.input_dir / f"{DWI}.{ext}").read_bytes()
    assert json.loads((tmp_path / "d" / "image.json").read_text()) == {"PhaseEncodingDirection": "j-"}


def test_import_failure_is_a_result_not_an_exception(dataset, tmp_path):
    res = bids_import.import_series([dataset / TRUNCATED], tmp_path / "out", tmp_path / "out.json")
    assert res.status == "failed" and res.images == []
    assert Path(TRUNCATED).name in res.reason and "truncated" in res.reason
    assert json.loads((tmp_path / "out.json").read_text())["status"] == "failed"
    assert (tmp_path / "out").is_dir() and not list((tmp_path / "out").iterdir())
    bad = tmp_path / "in" / "sub-X" / "anat"
    bad.mkdir(parents=True)
    shutil.copy(dataset / f"{T1W_2}.nii.gz", bad / "sub-X_T1w.nii.gz")
    (bad / "sub-X_T1w.json").write_text("{not json")
    res = bids_import.import_series([bad / "sub-X_T1w.nii.gz", bad / "sub-X_T1w.json"], tmp_path / "o2",
                                   tmp_path / "o2.json")
    assert res.status == "failed" and "sub-X_T1w.json" in res.reason


def _needle_texts(idx, stem, s=None):
    s = s or _series(idx, stem)
    return bids_input.bids_needles(_files(idx, s), s.fields["BidsInputSubject"], s.fields["BidsInputSession"],
                                   idx.input_dir)


def test_needles_hold_every_planted_identifier(indexed, tmp_path):
    idx, _ = indexed
    t1 = {n.text for n in _needle_texts(idx, T1W)}
    missing = [p for p in PLANTED_T1W if p not in t1]
    assert not missing, missing
    bold = _needle_texts(idx, BOLD)
    texts = {n.text for n in bold}
    assert not [p for p in PLANTED_BOLD if p not in texts]
    # 'rest' (the dropped TaskName) is released by design in task-rest: not a needle
    assert "rest" not in texts
    assert {n.source for n in bold if n.text == "Inherited Clinic"} == {"sidecar InstitutionName"}
    assert all(n.text not in n.source for n in bold)  # a source never spells the value
    jane = {n.text for n in _needle_texts(idx, JANE_T1W)}
    assert {SUB2, "Jane Roe", "1980-09-30", "MR-JANE-ROOM"} <= jane and "n/a" not in jane and "F" not in jane
    out = tmp_path / "n.json"
    s = _series(idx, T1W)
    n = bids_input.write_bids_needles(out, _files(idx, s), SUB1, SES1, idx.input_dir)
    assert n == len(audit.load_needles([out])) > 10
    # labels taken from the image path when not given: the same needles
    assert bids_input.bids_needles(_files(idx, s), None, None, idx.input_dir) == set(audit.load_needles([out]))
    assert bids_input.input_labels(idx.input_dir / f"{JANE_T1W}.nii", idx.input_dir) == (SUB2, "")


def test_imported_files_hold_no_needle(indexed, tmp_path):
    idx, _ = indexed
    for i, s in enumerate(idx.series):
        out = tmp_path / f"r{i}"
        res = bids_import.import_series(_files(idx, s), out / "conv", tmp_path / f"r{i}.json")
        assert res.status == "ok"
        needles = bids_input.bids_needles(_files(idx, s), s.fields["BidsInputSubject"],
                                          s.fields["BidsInputSession"], idx.input_dir)
        hits, n_files = audit.scan_release(out, audit.Matcher(sorted(needles, key=lambda n: n.text)))
        assert n_files >= 2 and hits == [], [(h.file, h.source) for h in hits]
        text = (tmp_path / f"r{i}.json").read_text()
        assert not any(lab in text for lab in (SUB1, SUB2, SES1, SES2))
    # the matcher does find them in the input files themselves
    s = _series(idx, T1W)
    needles = _needle_texts(idx, T1W, s)
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    for f in _files(idx, s):
        shutil.copy(f, raw_dir / f.name)
    hits, _ = audit.scan_release(raw_dir, audit.Matcher(list(needles)))
    assert {h.source for h in hits} >= {"sidecar PatientName", "NIfTI descrip", "NIfTI extension (ecode 6)"}


def test_example_mr_series_through_dcm2niix(tmp_path):
    """The bundled example's MR series, converted by dcm2niix keeping names and dates (-ba n)."""
    mr = EXAMPLE_DICOM / "DOE_JOHN" / "20200611_MR_BRAIN" / "t1_mprage"
    if not mr.is_dir():
        pytest.skip(f"example MR series not found: {mr}")
    planted = json.loads((EXAMPLE_DICOM.parent / "planted_identifiers.json").read_text())["subjects"]["DOE_JOHN"]
    before = tree_sha256(mr)
    root = tmp_path / "bids"
    anat = root / "sub-DOEJOHN19610723" / "ses-20200611" / "anat"
    anat.mkdir(parents=True)
    _json(root / "dataset_description.json", {"Name": "example", "BIDSVersion": "1.10.0"})
    stem = "sub-DOEJOHN19610723_ses-20200611_T1w"
    subprocess.run([find_dcm2niix(), "-b", "y", "-ba", "n", "-z", "y", "-f", stem, "-o", str(anat), str(mr)],
                   check=True, capture_output=True)
    raw_side = (anat / f"{stem}.json").read_text()
    assert "DOE^JOHN" in raw_side  # -ba n kept the identifiers: the test means something
    idx = bids_input.build_bids_index(root, tmp_path / "private", TEST_KEY)
    (s,) = idx.series
    (p,) = nd_plan.plan_bids(idx)
    assert p.deface and p.target == {"datatype": "anat", "suffix": "T1w", "entities": {}}
    res = bids_import.import_series(_files(idx, s), tmp_path / "rel" / "conv", tmp_path / "conv.json")
    assert res.status == "ok", res.reason
    needles = bids_input.bids_needles(_files(idx, s), "DOEJOHN19610723", "20200611", root)
    texts = {n.text for n in needles}
    assert {"DOE^JOHN", "DOEJOHN19610723", "20200611", "2020-06-11"} <= texts
    in_sidecar = [x for x in planted["strings"] if x in raw_side]
    assert len(in_sidecar) >= 8 and not [x for x in in_sidecar if x not in texts]
    assert "1961-07-23" in texts  # PatientBirthDate
    hits, n_files = audit.scan_release(tmp_path / "rel", audit.Matcher(list(needles)))
    assert n_files == 2 and hits == [], [(h.file, h.source) for h in hits]
    src_img, src = _load(anat / f"{stem}.nii.gz")
    out_img, out = _load(tmp_path / "rel" / "conv" / "image.nii.gz")
    assert np.array_equal(src, out) and np.allclose(src_img.affine, out_img.affine)
    assert bytes(src_img.header["descrip"]).rstrip(b"\0") != NIFTI_DESCRIP  # dcm2niix wrote TE/time there
    assert tree_sha256(mr) == before


def test_session_names_and_entity_order(indexed, tmp_path):
    idx, _ = indexed
    bold = _series(idx, BOLD)
    res = bids_import.import_series(_files(idx, bold), tmp_path / "b", tmp_path / "b.json")
    failed = StageResult("convert", StageStatus.FAILED, "import failed: x")
    names = bids_import.session_names(bold.subject, bold.session, {bold.series: res, "s9": failed})
    p = bold.subject
    assert names == {bold.series: [{"image": "image.nii.gz", "datatype": "func",
                                    "bids": f"sub-{p}/ses-1/func/sub-{p}_ses-1_task-rest_run-1_bold"}],
                     "s9": {"failed": "import failed: x"}}
    ents, suffix = bids_input.parse_bids_name("sub-A_ses-B_rec-ac_trc-FDG_run-2_pet.nii.gz", "pet")
    assert list(ents) == ["sub", "ses", "trc", "rec", "run"] and suffix == "pet"
    target = {"datatype": "pet", "suffix": "pet", "entities": {k: v for k, v in ents.items() if k not in ("sub", "ses")}}
    assert bids_import.bids_release_name("p1", "1", target) == "sub-p1/ses-1/pet/sub-p1_ses-1_trc-FDG_rec-ac_run-2_pet"


@pytest.mark.parametrize("name, datatype, why", [
    ("sub-A_T1.nii.gz", "anat", "suffix 'T1'"),
    ("sub-A_bold.nii.gz", "dwi", "suffix 'bold'"),
    ("sub-A_desc-brain_T1w.nii.gz", "anat", "entity 'desc' is not allowed"),
    ("sub-A_run-one_T1w.nii.gz", "anat", "must be a number"),
    ("sub-A_acq-fast.x_T1w.nii.gz", "anat", "letters and digits"),
    ("sub-A_part-foo_T1w.nii.gz", "anat", "must be one of"),
    ("sub-A_run-1_run-2_T1w.nii.gz", "anat", "given twice"),
    ("ses-1_sub-A_T1w.nii.gz", "anat", "start with sub-"),
    ("sub-A_T1w.mgz", "anat", "extension"),
])
def test_parse_bids_name_rejects(name, datatype, why):
    with pytest.raises(ValueError, match=why):
        bids_input.parse_bids_name(name, datatype)


def test_edge_cases(tmp_path):
    with pytest.raises(bids_input.BidsInputError, match="does not look like a BIDS dataset"):
        (tmp_path / "notbids").mkdir()
        (tmp_path / "notbids" / "scan.nii.gz").write_bytes(b"")
        bids_input.build_bids_index(tmp_path / "notbids", tmp_path / "p0", TEST_KEY)
    root = tmp_path / "in"
    vol = np.arange(8 * 8 * 8, dtype=np.int16).reshape(8, 8, 8)
    _json(root / "dataset_description.json", {"Name": "edge"})
    _save(root / "sub-A" / "ses-1" / "anat" / "sub-A_ses-1_T1w.nii.gz", vol)
    _save(root / "sub-A" / "ses-1" / "anat" / "sub-A_ses-1_T1w.nii", vol)  # same name, uncompressed
    _save(root / "sub-A" / "anat" / "sub-A_T2w.nii.gz", vol)  # outside the subject's sessions
    _save(root / "sub-A" / "ses-1" / "anat" / "sub-B_ses-1_T2w.nii.gz", vol)  # wrong subject
    _save(root / "sub-A" / "ses-1" / "anat" / "sub-A_T2w.nii.gz", vol)  # ses missing
    _save(root / "sub-A" / "ses-1" / "anat" / "sub-A_ses-1_acq-xsubAx_FLAIR.nii.gz", vol)
    _save(root / "sub-Smith77" / "ses-10" / "anat" / "sub-Smith77_ses-10_acq-smith77_T1w.nii.gz", vol)
    _save(root / "sub-Smith77" / "ses-2" / "func" / "sub-Smith77_ses-2_task-x_bold.nii.gz", vol)
    _save(root / "sub-Smith77" / "ses-10" / "func" / "sub-Smith77_ses-10_task-x_bold.nii.gz", vol)
    (root / "sub-Smith77" / "ses-2" / "func" / "sub-Smith77_ses-2_task-y_bold.nii.gz").symlink_to(root / "gone")
    (root / "sub-A" / "ses-1" / "anat" / "sub-A_ses-1_PDw.NII").write_bytes(b"")
    (root / "sub-Smith77" / "ses-2" / "func" / "sub-Smith77_ses-2_task-z_bold.nii").write_bytes(b"\0" * 100)
    idx = bids_input.build_bids_index(root, tmp_path / "p", TEST_KEY)
    q = {e.path: e.reason for e in idx.quarantined}
    assert "same BIDS name as sub-A/ses-1/anat/sub-A_ses-1_T1w.nii.gz" in q["sub-A/ses-1/anat/sub-A_ses-1_T1w.nii"]
    assert "outside a session" in q["sub-A/anat/sub-A_T2w.nii.gz"]
    assert "sub entity does not match" in q["sub-A/ses-1/anat/sub-B_ses-1_T2w.nii.gz"]
    assert "ses entity does not match" in q["sub-A/ses-1/anat/sub-A_T2w.nii.gz"]
    assert "repeats the input subject label" in q["sub-Smith77/ses-10/anat/sub-Smith77_ses-10_acq-smith77_T1w.nii.gz"]
    assert "broken symbolic link" in q["sub-Smith77/ses-2/func/sub-Smith77_ses-2_task-y_bold.nii.gz"]
    assert "lowercase" in q["sub-A/ses-1/anat/sub-A_ses-1_PDw.NII"]
    assert "NIfTI unreadable" in q["sub-Smith77/ses-2/func/sub-Smith77_ses-2_task-z_bold.nii"]
    got = {(s.fields["BidsInputSubject"], s.fields["BidsInputSession"], s.session, s.series, s.fields["BidsSuffix"])
           for s in idx.series}
    # sessions in natural order of the input labels: ses-2 before ses-10
    # series in sorted order of the input paths ("..._T1w" < "..._acq-...": byte order);
    # a one-letter subject label inside an entity value is no identifier
    assert got == {("A", "1", "1", "s1", "T1w"), ("A", "1", "1", "s2", "FLAIR"),
                   ("Smith77", "2", "1", "s1", "bold"), ("Smith77", "10", "2", "s1", "bold")}
    # 8 voxels per axis: no face
    assert not any(p.deface for p in nd_plan.plan_bids(idx))
