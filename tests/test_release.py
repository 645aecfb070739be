"""Release assembly: skeleton, atomic folder copies, the release plan and the quarantine list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurodeid import index, plan, quarantine, release
from neurodeid.inputs import dicom as dicom_input

from conftest import EXAMPLE_DICOM, TEST_KEY


def test_skeleton_holds_pseudonyms_only(tmp_path):
    subjects = tmp_path / "subjects.tsv"
    subjects.write_text("participant_id\nsub-ab12cd34\nsub-0f0f0f0f\n")
    paths = release.write_skeleton(tmp_path / "rel", subjects, "My study", "CC0", ["retain_uids"], "2024b")
    assert {p.name for p in paths} == {"dataset_description.json", "participants.tsv", "README", ".bidsignore"}
    desc = json.loads((tmp_path / "rel" / "dataset_description.json").read_text())
    assert desc["Name"] == "My study" and desc["License"] == "CC0" and desc["DatasetType"] == "raw"
    assert (tmp_path / "rel" / "participants.tsv").read_text() == "participant_id\nsub-0f0f0f0f\nsub-ab12cd34\n"
    assert "retain_uids" in (tmp_path / "rel" / "README").read_text()


def test_skeleton_rejects_non_bids_labels(tmp_path):
    subjects = tmp_path / "subjects.tsv"
    subjects.write_text("participant_id\nsub-DOE_JOHN\n")
    with pytest.raises(ValueError, match="not a BIDS participant label"):
        release.write_skeleton(tmp_path / "rel", subjects, "x", "", [], "e")


def test_copy_dir_atomic_replaces_and_never_leaves_partials(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"{i:05d}.dcm").write_bytes(b"x" * (i + 1))
    (src / ".snakemake_timestamp").write_text("")
    dst = tmp_path / "release" / "sourcedata" / "s001"
    dst.mkdir(parents=True)
    (dst / "stale.dcm").write_text("old")
    files = release.copy_dir_atomic(src, dst, tmp_path / "work" / "tmp")
    assert sorted(p.name for p in dst.iterdir()) == ["00000.dcm", "00001.dcm", "00002.dcm"]
    assert [p.name for p in files] == ["00000.dcm", "00001.dcm", "00002.dcm"]
    assert list((tmp_path / "work" / "tmp").iterdir()) == []  # no temporary left behind
    assert not any(p.name.startswith(".") for p in (tmp_path / "release").rglob("*"))
    listing = tmp_path / "listing.tsv"
    release.write_listing(listing, files, tmp_path / "release")
    assert listing.read_text().splitlines()[1].startswith("sourcedata/s001/00000.dcm\t")


def test_copy_of_empty_folder_releases_nothing(tmp_path):
    (tmp_path / "src").mkdir()
    dst = tmp_path / "release" / "s001"
    assert release.copy_dir_atomic(tmp_path / "src", dst, tmp_path / "tmp") == []
    assert not dst.exists()


def test_plan_withholds_pixels_that_may_identify(tmp_path):
    idx = dicom_input.build_index(EXAMPLE_DICOM, tmp_path / "private", TEST_KEY)
    p = {x.modality: x for x in plan.make_plan(idx)}
    assert p["CT"].release_dicom and p["CT"].reason == ""  # 5 slices of 16x16: no face
    # not converted (no heuristics): released only if the face screen of its pixels finds no face
    assert p["MR"].release_dicom and p["MR"].face_screen and p["MR"].reason == ""
    assert p["US"].release_dicom and p["US"].redact  # released image by image after OCR-verified redaction
    us_off = {x.modality: x for x in plan.make_plan(idx, redact=False)}["US"]
    assert not us_off.release_dicom and "burned-in text" in us_off.reason
    assert not any(x.release_dicom for x in plan.make_plan(idx, release_dicom=False))
    out = plan.write_plan(plan.make_plan(idx), tmp_path / "private")
    text = out.read_text()
    assert "DOE" not in text and "PID-" not in text  # labels only


def test_a_volume_that_may_show_a_face_is_judged_by_pixels_unless_converted_undefaced(tmp_path):
    """An MR volume (10 or more slices) that is converted but not defaced has its DICOM
    withheld; one that is not converted (unmatched, skipped) is not withheld by its slice
    count: the text stage's face screen judges its pixels."""
    from neurodeid.convert import load_heuristics

    idx = dicom_input.build_index(EXAMPLE_DICOM, tmp_path / "private", TEST_KEY)
    mr = next(s for s in idx.series if s.fields.get("Modality") == "MR")
    func = [{"match": {}, "datatype": "func", "suffix": "bold"}]
    converted = plan.plan_series(mr, rules=func)
    assert converted.convert and not converted.release_dicom and "may show a face" in converted.reason
    unmatched = plan.plan_series(mr, rules=[])
    assert not unmatched.convert and unmatched.release_dicom and unmatched.face_screen
    defaced = plan.plan_series(mr, rules=load_heuristics())
    assert defaced.deface and defaced.defaced_dicom and defaced.release_dicom


def test_quarantine_gathers_index_and_deid(tmp_path):
    iq = tmp_path / "iq.tsv"
    iq.write_text("file\tstatus\treason\na/DICOMDIR\tskipped\tDICOMDIR (a media directory)\n")
    dq = tmp_path / "dq.tsv"
    dq.write_text("source\toutput\tstatus\treason\n/in/x.dcm\t00001.dcm\tok\t\n/in/y.dcm\t\tquarantined\ttruncated\n")
    rows = quarantine.gather(iq, [dq])
    assert [(r["file"], r["stage"]) for r in rows] == [("/in/y.dcm", "deid"), ("a/DICOMDIR", "index")]
    out = tmp_path / "q.tsv"
    quarantine.write_quarantine(out, rows)
    assert out.read_text().splitlines()[0] == "file\tstatus\tstage\treason"


def _session_fixture(tmp_path, verdict: str):
    """One subject with one defaced T1w series (work and private folders as the workflow
    lays them out) and a morphometry verdict; returns the `neurodeid release-subject` call."""
    import nibabel as nib
    import numpy as np

    from neurodeid import morphometry as mm
    from neurodeid.layout import Layout

    work, private = tmp_path / "work", tmp_path / "private"
    lay = Layout(private=str(private), work=str(work))
    ids = {"subject": "ab12", "session": "1", "series": "s003"}
    src = Path(lay.work_dir("deface", **ids))
    src.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), dtype=np.int16), np.eye(4)), src / "image.nii.gz")
    conv = Path(lay.work_dir("convert", **ids))
    conv.mkdir(parents=True)
    (conv / "image.json").write_text('{"RepetitionTime": 2.3}')
    Path(lay.convert_result(**ids)).write_text(json.dumps(
        {"status": "ok", "reason": "", "images": [{"nifti": "image.nii.gz", "suffix_hint": ""}]}))
    morph = Path(lay.work_dir("morphometry", **ids))
    morph.mkdir(parents=True)
    reasons = ["FAIL brain_voxels_changed = 812 (> 0)"] if verdict == "FAIL" else []
    mm.write_image_tsv(morph / "image.tsv", {"brain_voxels_changed": 812 if reasons else 0},
                       {"verdict": verdict, "reasons": reasons}, image="s003/image.nii.gz")
    deface = Path(lay.result("deface", **ids))
    deface.parent.mkdir(parents=True)
    deface.write_text(json.dumps({"images": [{"image": "image.nii.gz", "status": "ok", "reason": ""}]}))
    row = {"SeriesDescription": "t1_mprage", "ProtocolName": "t1_mprage", "ImageType": "ORIGINAL\\PRIMARY\\M",
           "Modality": "MR", "SeriesNumber": "3", "n_images": 176, "series_label": "s003"}
    plan_json = tmp_path / "plan.json"
    plan_json.write_text(json.dumps({"subject": "ab12", "deface_enabled": True, "sessions": {"1": {
        "classification": [row], "series": {"s003": {"convert": True, "deface": True, "dicom_stage": ""}}}}}))
    return ["release-subject", str(plan_json), "--work-dir", str(work), "--private-dir", str(private),
            "--release-dir", str(tmp_path / "release"), "--tmp-dir", str(tmp_path / "tmp"),
            "--names", str(tmp_path / "names.json"), "--listing", str(tmp_path / "listing.tsv"),
            "--applied", str(tmp_path / "applied.json"), "--no-nrrd"]


def test_morphometry_fail_keeps_the_image_out_of_the_release(tmp_path):
    from neurodeid.cli import main

    assert main(_session_fixture(tmp_path, "FAIL")) == 0
    assert not list((tmp_path / "release").rglob("*.nii.gz"))
    listing = (tmp_path / "listing.tsv").read_text()
    assert "morphometry FAIL" in listing and "brain_voxels_changed" in listing


def test_morphometry_pass_releases_image_and_its_table(tmp_path):
    from neurodeid.cli import main

    assert main(_session_fixture(tmp_path, "PASS")) == 0
    rel = tmp_path / "release"
    assert (rel / "sub-ab12/ses-1/anat/sub-ab12_ses-1_run-1_T1w.nii.gz").is_file()
    assert (rel / "sub-ab12/ses-1/anat/sub-ab12_ses-1_run-1_T1w.json").read_text() == '{"RepetitionTime": 2.3}'
    table = rel / "derivatives/neurodeid/morphometry/sub-ab12/ses-1/anat/sub-ab12_ses-1_run-1_T1w_morphometry.tsv"
    assert "PASS" in table.read_text()


def test_bold_sidecar_gets_task_name_and_readme_counts_what_was_released(tmp_path):
    """A BOLD image named task-unknown gets ``TaskName`` (REQUIRED by BIDS); the README counts
    what the listings hold and never claims the audit's result."""
    import json

    from neurodeid.release.session import release_session
    from neurodeid.release.dataset import readme_text, release_counts, write_listing

    conv = tmp_path / "conv"
    conv.mkdir()
    (conv / "image.nii.gz").write_bytes(b"not read")
    (conv / "image.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    names = {"s004": [{"image": "image.nii.gz", "datatype": "func",
                       "bids": "sub-ab/ses-1/func/sub-ab_ses-1_task-unknown_run-1_bold"}]}
    files, notes = release_session(names, {"s004": conv}, tmp_path / "rel", tmp_path / "tmp", "ab", "1", nrrd=False)
    side = json.loads((tmp_path / "rel" / "sub-ab/ses-1/func/sub-ab_ses-1_task-unknown_run-1_bold.json").read_text())
    assert side == {"RepetitionTime": 2.0, "TaskName": "unknown"}
    assert json.loads((conv / "image.json").read_text()) == {"RepetitionTime": 2.0}  # the work copy untouched
    listing = tmp_path / "sub-ab.tsv"
    write_listing(listing, files, tmp_path / "rel", [{"series": "ses-1/s009", "status": "withheld", "reason": "x"}])
    counts = release_counts([listing])
    assert counts["images"] == 1 and counts["withheld"] == 1 and counts["dicom_series"] == 0
    text = readme_text("Study", "2024b", [], counts)
    assert "1 image(s) converted" in text and "1 series or image(s) withheld" in text
    assert "found none" not in text and "cannot state its result" in text
    assert "sourcedata/dicom" not in text and "derivatives" not in text  # only what is there
