"""End-to-end: the Snakemake workflow on the bundled example, through its CLI.

These runs use the repository as the working directory, as a user does
(`snakemake --cores 2`), with the output in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import EXAMPLE_DICOM, REPO, tree_sha256
from report_helpers import example_report

pytestmark = pytest.mark.e2e

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run_snakemake(*args, env_key: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("NEURODEID_KEY", None)
    if env_key:
        env["NEURODEID_KEY"] = env_key
    proc = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def planted() -> dict:
    return json.loads((REPO / "example" / "planted_identifiers.json").read_text())


def planted_strings() -> set[str]:
    out = set()
    for subj, info in planted()["subjects"].items():
        out.update(info.get("strings", []))
        out.update(info.get("dates", []))
        out.update(info.get("uids", []))
        out.add(subj)
    return {s for s in out if len(s) >= 4}


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """The example's one run of this test session, shared with the report tests
    (``report_helpers.example_report``: ``snakemake --cores 2``, the repository as working
    directory, the demo key)."""
    return example_report(tmp_path_factory)


def test_run_warns_about_demo_key(example_run):
    assert "DEMO KEY" in example_run["stderr"]


def test_inputs_are_byte_identical_after_run(example_run):
    assert example_run["before"] == example_run["after"]
    assert len(example_run["before"]) > 100


def test_release_skeleton(example_run):
    rel = example_run["out"] / "release"
    desc = json.loads((rel / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] and desc["GeneratedBy"][0]["Name"] == "neurodeid"
    participants = (rel / "participants.tsv").read_text().splitlines()
    assert participants[0] == "participant_id"
    assert len(participants) == 1 + len(planted()["subjects"])
    assert all(p.startswith("sub-") and p[4:].isalnum() for p in participants[1:])
    assert (rel / "README").read_text().strip()


def test_private_index_and_quarantine(example_run):
    private = example_run["out"] / "private"
    q = (private / "quarantine.tsv").read_text()
    assert "DICOMDIR\tskipped\t" in q
    assert "export_notes.txt\tskipped\t" in q
    index = (private / "index.tsv").read_text().splitlines()
    assert len(index) - 1 >= 3  # CT, MR, US series
    cw = (private / "crosswalk.tsv").read_text()
    assert "PID-4417-DOE" in cw  # the crosswalk is private and names the real ID


def test_audit_passes_and_release_holds_no_planted_value(example_run):
    private = example_run["out"] / "private"
    rows = [ln for ln in (private / "audit.tsv").read_text().splitlines() if not ln.startswith("#")]
    from neurodeid.audit import AUDIT_COLUMNS

    assert rows == ["\t".join(AUDIT_COLUMNS)]
    assert (private / "audit.ok").is_file()
    # independent of the audit's own needles: no planted string anywhere in the release
    rel = example_run["out"] / "release"
    strings = planted_strings()
    for p in rel.rglob("*"):
        low_name = p.relative_to(rel).as_posix().lower()
        assert not any(s.lower() in low_name for s in strings), p
        if p.is_file():
            data = p.read_bytes().lower()
            leaked = [s for s in strings if s.lower().encode() in data]
            assert not leaked, (p, len(leaked))


def test_nothing_to_do_on_second_run(example_run):
    proc = run_snakemake("--config", f"output_dir={example_run['out']}", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_planted_identifier_fails_the_audit(example_run, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(example_run["out"], out)
    readme = out / "release" / "README"
    readme.write_text(readme.read_text() + "\nscanned at St Marys Teaching Hospital\n")
    proc = run_snakemake("--config", f"output_dir={out}", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "RELEASE AUDIT FAILED" in text
    assert "README" in text and "InstitutionName" in text
    assert "St Marys Teaching Hospital" not in text.replace("scanned at St Marys Teaching Hospital", "")
    assert not (out / "private" / "audit.ok").exists()
    audit_rows = (out / "private" / "audit.tsv").read_text()
    assert "St Marys Teaching Hospital" in audit_rows  # the private table names it for the user


def test_user_data_without_key_stops_with_message(tmp_path):
    src = tmp_path / "in"
    shutil.copytree(EXAMPLE_DICOM / "ROE_JANE", src)
    proc = run_snakemake("--config", f"input_dir={src}", f"output_dir={tmp_path / 'out'}", "-n", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "no secret key" in text and "NEURODEID_KEY" in text
    assert "Traceback" not in text


def test_config_errors_name_the_key(tmp_path):
    proc = run_snakemake("--config", "input_dirr=x", "-n", check=False)
    assert proc.returncode != 0 and "'input_dirr' was unexpected" in proc.stdout + proc.stderr
    proc = run_snakemake("--config", "audit={min_needle_length: many}", "-n", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "min_needle_length" in text and "integer" in text


def test_lint_is_clean():
    proc = run_snakemake("--lint", "--config", "output_dir=/tmp/neurodeid-lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_released_dicom_is_deidentified_and_faces_removed(example_run):
    import pydicom

    rel = example_run["out"] / "release"
    plan_rows = (example_run["out"] / "private" / "release_plan.tsv").read_text().splitlines()[1:]
    released = [r.split("\t") for r in plan_rows if r.split("\t")[4] == "yes"]
    withheld = [r.split("\t") for r in plan_rows if r.split("\t")[4] == "no"]
    assert {r[3] for r in released} == {"CT", "US", "MR"} and not withheld
    # the head's DICOM is the defaced rewrite: derived, new UIDs, 113102 recorded
    sub, ses, series, *_ = next(r for r in released if r[3] == "MR")
    mr = sorted((rel / "sourcedata" / "dicom" / sub / ses / series).iterdir())
    assert len(mr) == 177
    ds = pydicom.dcmread(mr[0])
    assert ds.ImageType[0] == "DERIVED"
    assert "113102" in {c.CodeValue for c in ds.DeidentificationMethodCodeSequence}
    sub, ses, series, *_ = next(r for r in released if r[3] == "CT")
    files = sorted((rel / "sourcedata" / "dicom" / sub / ses / series).iterdir())
    assert [f.name for f in files] == [f"{i:05d}.dcm" for i in range(1, 6)]
    for f in files:
        ds = pydicom.dcmread(f)
        assert ds.PatientIdentityRemoved == "YES"
        assert str(ds.PatientName) == sub and ds.PatientID == sub
        assert ds.SOPInstanceUID.startswith("2.25.") and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.pixel_array.shape == (16, 16)


def test_rerun_with_one_core_gives_byte_identical_release(example_run, tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [*SNAKEMAKE, "--cores", "1", "--config", f"output_dir={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
        env={k: v for k, v in os.environ.items() if k != "NEURODEID_KEY"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    first = tree_sha256(example_run["out"] / "release")
    assert first and tree_sha256(out / "release") == first


def test_burned_in_text_is_gone_from_released_ultrasound(example_run):
    import shutil as _sh

    import pydicom
    import pytesseract
    from PIL import Image

    if _sh.which("tesseract") is None:
        pytest.skip("tesseract-ocr is not installed (CI installs it)")
    rel = example_run["out"] / "release"
    plan_rows = [r.split("\t") for r in (example_run["out"] / "private" / "release_plan.tsv").read_text().splitlines()[1:]]
    sub, ses, series, *_ = next(r for r in plan_rows if r[3] == "US")
    (f,) = sorted((rel / "sourcedata" / "dicom" / sub / ses / series).iterdir())
    ds = pydicom.dcmread(f)
    assert ds.BurnedInAnnotation == "NO"
    text = pytesseract.image_to_string(Image.fromarray(ds.pixel_array)).upper()
    burned = planted()["subjects"]["ROE_JANE"]["burned_in_pixel_text"]
    assert burned, "the example must plant burned-in text"
    for word in (w for s in burned for w in s.replace(",", " ").split() if len(w) >= 4):
        assert word.upper() not in text, word
    # the QC picture exists, privately
    assert (example_run["out"] / "private" / "qc" / "redact" / f"{sub}_{ses}_{series}.png").is_file()


def test_head_image_is_released_defaced(example_run):
    import nibabel as nib
    import numpy as np

    out = example_run["out"]
    (t1w,) = sorted((out / "release").glob("sub-*/ses-*/anat/*_T1w.nii.gz"))
    (result,) = sorted((out / "private" / "deface").glob("sub-*/ses-*/*.json"))
    summary = json.loads(result.read_text())["images"][0]
    assert summary["status"] == "ok" and summary["summary"]["brain_overlap_ml"] == 0
    assert summary["summary"]["removed_ml"] > 50
    rel = result.relative_to(out / "private" / "deface").with_suffix("")
    converted = out / "work" / "convert" / rel / "image.nii.gz"
    released, original = nib.load(t1w), nib.load(converted)
    assert np.allclose(released.affine, original.affine) and released.get_data_dtype() == original.get_data_dtype()
    changed = np.asarray(released.dataobj) != np.asarray(original.dataobj)
    assert changed.sum() * np.prod(released.header.get_zooms()[:3]) / 1000 > 50  # ml of face removed
    # the QC pictures exist, privately
    assert len(list((out / "private" / "qc" / "deface").glob("*_render.png"))) == 1
