"""End-to-end: `input_bids=DIR` runs everything after conversion on an existing BIDS dataset.

The input is what a user would have made with dcm2niix from the bundled example, keeping
names and dates (``-ba n``), named with identifying labels (``sub-DOEJOHN19610723``,
``ses-20200611``), plus a participants.tsv with the patient's name and a scans.tsv with
acquisition times. The workflow must import, deface, measure, release and audit it, and
nothing identifying may reach the release.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from conftest import EXAMPLE_DICOM, REPO, TEST_KEY, tree_sha256
from neurodeid.convert import find_dcm2niix

pytestmark = pytest.mark.e2e

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SUB, MR_SES, CT_SES = "DOEJOHN19610723", "20200611", "20190314"


def smk(*args, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, NEURODEID_KEY=TEST_KEY.decode())
    proc = subprocess.run([*SNAKEMAKE, "--cores", "2", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def _dcm2niix(series_dir, out_dir, stem) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([find_dcm2niix(), "-b", "y", "-ba", "n", "-z", "y", "-f", stem, "-o", str(out_dir),
                    str(series_dir)], check=True, capture_output=True)


def make_bids(root):
    """A BIDS dataset from the example's MR (T1w, a head) and CT (5 slices), identifying as users make them."""
    mr = EXAMPLE_DICOM / "DOE_JOHN" / "20200611_MR_BRAIN" / "t1_mprage"
    ct = next((EXAMPLE_DICOM / "DOE_JOHN" / "2019-03-14_CT_HEAD").iterdir())
    if not mr.is_dir() or not ct.is_dir():
        pytest.fail(f"the bundled example is incomplete ({mr}, {ct}): run `python example/build_example.py`")
    t1 = f"sub-{SUB}_ses-{MR_SES}_T1w"
    _dcm2niix(mr, root / f"sub-{SUB}" / f"ses-{MR_SES}" / "anat", t1)
    _dcm2niix(ct, root / f"sub-{SUB}" / f"ses-{CT_SES}" / "ct", f"sub-{SUB}_ses-{CT_SES}_ct")
    (root / "dataset_description.json").write_text(json.dumps({"Name": "DOE family scans", "BIDSVersion": "1.10.0"}))
    (root / "participants.tsv").write_text(f"participant_id\tname\tage\nsub-{SUB}\tJohn Doe\t58\n")
    (root / f"sub-{SUB}" / f"ses-{MR_SES}" / f"sub-{SUB}_ses-{MR_SES}_scans.tsv").write_text(
        f"filename\tacq_time\nanat/{t1}.nii.gz\t2020-06-11T09:41:12\n")
    (root / "derivatives" / "fmriprep").mkdir(parents=True)
    (root / "derivatives" / "fmriprep" / "notes.txt").write_text("John Doe, preprocessed\n")
    return root / f"sub-{SUB}" / f"ses-{MR_SES}" / "anat" / f"{t1}.nii.gz"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bids_input")
    bids = tmp / "bids"
    t1 = make_bids(bids)
    before = tree_sha256(bids)
    out = tmp / "results"
    cfg = ["--config", f"input_bids={bids}", f"output_dir={out}"]
    dry = smk("-n", *cfg).stdout
    proc = smk(*cfg)
    return {"bids": bids, "t1": t1, "before": before, "out": out, "cfg": cfg, "dry": dry, "log": proc.stdout}


def test_jobs_start_after_conversion(run):
    assert "import_series" in run["dry"]
    for rule in ("deid_series", "convert_series", "redact_series", "deface_dicom", "path_needles"):
        assert f"rule {rule}:" not in run["dry"] and f"\n{rule} " not in run["dry"]


def test_release_is_audited_clean_and_holds_the_defaced_head(run):
    out = run["out"]
    assert (out / "private" / "audit.ok").is_file()
    audit = (out / "private" / "audit.tsv").read_text().splitlines()
    assert audit[0].endswith(" 0 hits") and len(audit) == 2, audit[:5]
    release = out / "release"
    t1 = list(release.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))
    ct = list(release.glob("sub-*/ses-*/ct/*_ct.nii.gz"))
    assert len(t1) == 1 and len(ct) == 1
    src, rel = nib.load(run["t1"]), nib.load(t1[0])
    assert np.allclose(src.affine, rel.affine, atol=1e-4)
    changed = np.asarray(src.dataobj) != np.asarray(rel.dataobj)
    assert changed.sum() * np.prod(rel.header.get_zooms()[:3]) / 1000 > 50  # ml of face removed
    morph = next((release / "derivatives" / "neurodeid" / "morphometry").rglob("*_morphometry.tsv")).read_text()
    assert "FAIL" not in morph
    assert list((release / "derivatives" / "neurodeid" / "nrrd").rglob("*_T1w.nrrd"))
    assert not (release / "sourcedata").exists() or not list((release / "sourcedata").rglob("*.dcm"))


def test_nothing_identifying_in_the_release(run):
    release = run["out"] / "release"
    planted = json.loads((REPO / "example" / "planted_identifiers.json").read_text())["subjects"]["DOE_JOHN"]
    words = {SUB, MR_SES, CT_SES, "John Doe", "2020-06-11T09:41:12", "DOE^JOHN"}
    words |= {s for s in planted["strings"] if len(s) >= 4}
    for f in release.rglob("*"):
        rel = f.relative_to(release).as_posix()
        assert not any(w in rel for w in words), rel
        if f.is_file() and not f.name.endswith((".gz", ".nrrd")):
            text = f.read_bytes().decode("latin-1")
            left = [w for w in words if w in text]
            assert not left, (rel, left)
    sidecar = json.loads(next(release.glob("sub-*/ses-*/anat/*_T1w.json")).read_text())
    assert "RepetitionTime" in sidecar and not {"PatientName", "AcquisitionDateTime", "InstitutionName"} & set(sidecar)
    header = nib.load(next(release.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))).header
    assert MR_SES not in bytes(header["descrip"]).decode("latin-1")
    participants = (release / "participants.tsv").read_text()
    assert "John" not in participants and participants.count("sub-") == 1


def test_input_untouched_and_rerun_has_nothing_to_do(run):
    assert tree_sha256(run["bids"]) == run["before"]
    proc = smk(*run["cfg"])
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stderr[-3000:]


def test_release_passes_the_bids_validator(run):
    exe = os.environ.get("BIDS_VALIDATOR") or shutil.which("bids-validator")
    if not exe:
        pytest.skip("bids-validator is not installed (bash .ci/bids-validator.sh installs it from npm)")
    proc = subprocess.run([exe, "--json", str(run["out"] / "release")], capture_output=True, text=True, timeout=300)
    errors = json.loads(proc.stdout)["issues"]["errors"]
    assert not errors, [(e["key"], e.get("reason", "")) for e in errors]


def test_review_sheet_and_report_list_images_only(run):
    private = run["out"] / "private"
    rows = [ln.split("\t") for ln in (private / "review.tsv").read_text().splitlines()[1:]]
    assert rows and not [r for r in rows if r[3].startswith("sourcedata/")]  # a BIDS input has no DICOM item
    assert {r[4] for r in rows} <= {"PASS", "RELEASED"}, rows
    # dcm2niix's extra `_Eq_1` copy of the CT has no BIDS name: quarantined with the reason, the rest goes on
    quarantine = (private / "quarantine.tsv").read_text()
    assert "_ct_Eq_1.nii.gz\tquarantined\tindex\tname is not usable BIDS" in quarantine
    counts = (private / "report" / "summary_counts.rst").read_text()
    assert "series (partly) withheld" not in counts
