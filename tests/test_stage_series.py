"""Per-series orchestration of the stages, called directly (issue 20): each job's function
records a failure with its reason, leaves no partial output and never raises for one item."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from neurodeid.deface.dicom import deface_dicom_series
from neurodeid.deface.series import deface_series
from neurodeid.morphometry import morphometry_series, morphometry_summary

PNG = b"\x89PNG\r\n\x1a\n"


def _nifti(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def test_deface_series_records_a_failed_image_and_draws_placeholders(tmp_path):
    conv = tmp_path / "convert"
    _nifti(conv / "flat.nii.gz", np.zeros((12, 12, 12), np.int16))  # no head to find
    (conv / "broken.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "deface"
    record = deface_series(conv, out, tmp_path / "r.json", tmp_path / "qc", tmp_path / "tri.png",
                           tmp_path / "render.png", "template", {}, faces=tmp_path / "faces.png")
    assert [r["image"] for r in record.images] == ["broken.nii.gz", "flat.nii.gz"]
    assert all(r["qc"] == [] for r in record.images)  # no picture was drawn, none is named
    assert all(r["status"] == "failed" and r["reason"] for r in record.images)
    assert "broken.nii.gz" in record.images[0]["reason"]
    assert not list(out.iterdir())  # no partial image or mask left
    assert json.loads((tmp_path / "r.json").read_text()) == record.to_dict()
    for png in ("tri.png", "render.png", "faces.png"):
        assert (tmp_path / png).read_bytes().startswith(PNG)


def test_morphometry_series_measures_only_defaced_images(tmp_path):
    result = tmp_path / "deface.json"
    result.write_text(json.dumps({"method": "template", "images": [
        {"image": "a.nii.gz", "status": "failed", "reason": "no head", "summary": {}}]}))
    verdicts = morphometry_series(tmp_path, tmp_path, result, tmp_path / "m", tmp_path / "m.tsv", "sub-x")
    assert verdicts == [] and (tmp_path / "m.tsv").read_text() == "image\tverdict\n"


def test_morphometry_series_fails_an_image_it_cannot_measure(tmp_path):
    result = tmp_path / "deface.json"
    result.write_text(json.dumps({"method": "template", "images": [
        {"image": "a.nii.gz", "status": "ok", "reason": "", "summary": {}}]}))
    verdicts = morphometry_series(tmp_path / "missing", tmp_path / "missing", result, tmp_path / "m",
                                  tmp_path / "m.tsv", "sub-x_ses-1_s001")
    assert verdicts[0]["verdict"] == "FAIL"
    assert verdicts[0]["reasons"][0].startswith("morphometry could not run:")
    assert "sub-x_ses-1_s001/a.nii.gz" in (tmp_path / "m" / "a.tsv").read_text()


def test_morphometry_summary_without_tables(tmp_path):
    counts = morphometry_summary([], tmp_path / "s.tsv", tmp_path / "s.png", tmp_path / "f.tsv")
    assert counts == {"PASS": 0, "WARN": 0, "FAIL": 0}
    assert (tmp_path / "f.tsv").read_text() == "image\tverdict\n"
    assert (tmp_path / "s.png").read_bytes().startswith(PNG)


def test_defaced_dicom_is_withheld_without_images_masks_or_on_a_morphometry_fail(tmp_path):
    conv, deface, morph, out = (tmp_path / d for d in ("convert", "deface", "morph", "out"))
    for d in (conv, deface, morph):
        d.mkdir()
    (out / "stale").mkdir(parents=True)
    (out / "00001.dcm").write_bytes(b"left by an earlier run")
    key = b"k" * 32
    r = deface_dicom_series(tmp_path, conv, deface, morph, out, tmp_path / "r.json", key)
    assert r.to_dict() == {"status": "failed", "reason": "no converted image"} and not list(out.glob("*.dcm"))
    assert json.loads((tmp_path / "r.json").read_text()) == r.to_dict()
    _nifti(conv / "image.nii.gz", np.ones((4, 4, 4), np.int16))
    r = deface_dicom_series(tmp_path, conv, deface, morph, out, tmp_path / "r.json", key)
    assert r.status == "failed" and "defacing failed" in r.reason
    _nifti(deface / "image_removal.nii.gz", np.zeros((4, 4, 4), np.uint8))
    (morph / "image.tsv").write_text("image\tverdict\nsub-x/image.nii.gz\tFAIL\n")
    r = deface_dicom_series(tmp_path, conv, deface, morph, out, tmp_path / "r.json", key)
    assert r.to_dict() == {"status": "failed", "reason": "morphometry FAIL for image: the defaced DICOM is withheld"}


def test_series_job_runs_deid_then_conversion_or_records_that_none_was_planned(tmp_path):
    """The series' one job (rule deid_series): de-identified, converted and face-checked in
    turn; a series the plan does not convert gets an empty folder and a ``skipped`` record."""
    from conftest import EXAMPLE_DICOM, TEST_KEY

    from neurodeid import keys
    from neurodeid.deid import DeidConfig
    from neurodeid.deid.profile import DEFAULT_OPTIONS
    from neurodeid.jobs import ConvertStage, series_job
    from neurodeid.results import StageStatus, read_stage_result

    files = sorted((EXAMPLE_DICOM / "DOE_JOHN" / "2019-03-14_CT_HEAD" / "SE2").glob("*.dcm"))
    cfg = DeidConfig(key=TEST_KEY, subject_label="a1", date_shift_days=keys.date_shift_days(TEST_KEY, "a1"),
                     options=frozenset(DEFAULT_OPTIONS))
    for planned in (True, False):
        d = tmp_path / str(planned)
        stage = ConvertStage(d / "convert", d / "convert.json", d / "face.json", planned=planned,
                             why_not="" if planned else "not planned for conversion: see the release plan")
        out = series_job(files, d / "deid", d / "deid.tsv", cfg, needles_out=d / "needles.json", convert=stage)
        assert all(r["status"] == StageStatus.OK for r in out.deid.deid)
        conv, face = read_stage_result(d / "convert.json", "convert"), read_stage_result(d / "face.json", "face")
        niftis = sorted(p.name for p in (d / "convert").glob("*.nii.gz"))
        if planned:
            assert conv.status == StageStatus.OK and niftis and out.n_converted_files == len(files)
            assert [r["image"] for r in face.images] == niftis
            assert all(r["status"] in (StageStatus.OK, StageStatus.FACE) for r in face.images)
        else:
            assert conv.status == StageStatus.SKIPPED and "not planned" in conv.reason
            assert niftis == [] and face.images == [] and (d / "convert").is_dir()
