"""End-to-end: a synthetic cohort through the Snakemake workflow, then every released file
read for ages, and the k-anonymity table checked against a brute-force count.

Six subjects aged 30 to 97 (three of 90 or more), built from real series of two scanner
models (dcm_qa_nih Siemens Skyra mosaics with their CSA header, GE DISCOVERY MR750 EPI),
planted in copies (new patient IDs and UIDs, age, sex, weight, the CSA PatReinPattern age);
the shared data stays read-only. Run with a test key (not the demo key).
"""

from __future__ import annotations

import csv
import json
import re
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from conftest import REPO, SHARED_DATA
from test_quasi import plant_csa_item

pytestmark = pytest.mark.e2e

NIH = SHARED_DATA / "dicom" / "dcm_qa_nih" / "In"
COHORT = [  # (patient id, age, sex, weight, scanner)
    ("QUASI001", 30, "F", 60, "siemens"),
    ("QUASI002", 45, "M", 80, "ge"),
    ("QUASI003", 89, "F", 60, "siemens"),
    ("QUASI004", 90, "M", 80, "ge"),
    ("QUASI005", 93, "F", 70, "siemens"),
    ("QUASI006", 97, "F", 70, "siemens"),
]
KEY = "quasi-workflow-test-key-0123456789abcdef"


def write_raw_cohort(root: Path) -> Path:
    sources = {
        "siemens": sorted((NIH / "20180918Si" / "mr_0003").glob("*.dcm")),
        "ge": sorted((NIH / "20180918GE" / "mr_0005").glob("*.dcm"))[:4],
    }
    if not all(sources.values()):
        pytest.skip(f"shared data not found: {NIH} (set NEURODEID_SHARED_DATA)")
    raw = root / "raw"
    for pid, age, sex, weight, scanner in COHORT:
        folder = raw / pid
        folder.mkdir(parents=True)
        study, series, frame = (generate_uid(entropy_srcs=[pid, what]) for what in ("study", "series", "frame"))
        for n, src in enumerate(sources[scanner], start=1):
            ds = pydicom.dcmread(src)
            ds.PatientID, ds.PatientName = pid, f"Quasi^Subject{pid[-1]}"
            ds.PatientAge, ds.PatientSex, ds.PatientWeight = f"{age:03d}Y", sex, str(weight)
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.SOPInstanceUID = generate_uid(entropy_srcs=[pid, str(n)])
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if (0x0029, 0x1020) in ds:
                ds[0x00291020].value = plant_csa_item(
                    ds[0x00291020].value, "PatReinPattern", f"1;HFS;{weight:.2f};{age + 0.41:.2f};1;0;0;-478201571")
            ds.save_as(folder / f"IM{n:04d}.dcm")
    return raw


@pytest.fixture(scope="module")
def cohort_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quasi_cohort")
    raw = write_raw_cohort(root)
    out = root / "results"
    env = {**os.environ, "NEURODEID_KEY": KEY}
    override = root / "quasi.yaml"
    override.write_text("quasi:\n  k_min: 2\n")
    # The targets are the k-anonymity outputs (which need the whole release, not the audit):
    # the release audit flags short kept values of dcm_qa_nih (HEA;HEP, +LPH, "None") that
    # are no concern of this test.
    targets = [str(out / "private" / "quasi" / "k_anonymity.json"), str(out / "private" / "report" / "quasi.html")]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *targets, "--cores", "2", "--configfile", str(override),
         "--config", f"input_dir={raw}", f"output_dir={out}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return {"out": out, "raw": raw, "root": root, "env": env}


def _ages_in(path: Path) -> list[float]:
    """Every age a recipient can read in one released file."""
    warnings.filterwarnings("ignore", message="The DICOM readers are highly experimental")
    from nibabel.nicom import csareader

    ages = []
    if path.suffix == ".dcm":
        for elem in pydicom.dcmread(path).iterall():
            if elem.VR == "AS" and elem.value:
                ages.append(float(elem.value[:3]))
            if isinstance(elem.value, bytes) and elem.value[:4] == b"SV10":
                item = csareader.read(elem.value)["tags"].get("PatReinPattern", {}).get("items")
                if item and item[0].split(";")[3]:
                    ages.append(float(item[0].split(";")[3]))
    elif path.suffix == ".json":
        ages += [float(v) for k, v in json.loads(path.read_text()).items() if re.fullmatch(r"(?i)(patient_?)?age", k)]
    elif path.suffix == ".tsv":
        for row in csv.DictReader(path.open(), delimiter="\t"):
            if row.get("age") not in (None, "n/a"):
                ages.append(float(row["age"]))
    return ages


def test_no_released_value_above_the_age_cap(cohort_run):
    release = cohort_run["out"] / "release"
    files = [p for p in release.rglob("*") if p.is_file()]
    assert any(p.suffix == ".dcm" for p in files), "no DICOM released: nothing was checked"
    ages = [a for p in files for a in _ages_in(p)]
    assert ages and max(ages) == 90, sorted(set(ages))
    assert all(a == int(a) for a in ages), "fractional ages give the birth date back"
    for p in files:  # the raw ages 093 / 097 and the CSA's 93.41 / 97.41 appear nowhere as text
        if p.suffix in (".json", ".tsv", ".txt", ".bval", ".bvec", "") or p.name == "README":
            text = p.read_text(errors="replace")
            assert "093Y" not in text and "097Y" not in text and "93.41" not in text, p


def test_k_table_matches_a_brute_force_count(cohort_run):
    private = cohort_run["out"] / "private"
    rows = list(csv.DictReader((private / "quasi" / "k_anonymity.tsv").open(), delimiter="\t"))
    assert len(rows) == len(COHORT)
    ids = json.loads((private / "quasi" / "k_anonymity.json").read_text())["identifiers"]
    for r in rows:
        brute = sum(1 for o in rows if all(o[i] == r[i] for i in ids))
        assert int(r["k"]) == brute
    ages = sorted(r["age"] for r in rows)
    assert ages.count("090Y") == 3 and "097Y" not in ages
    page = (private / "report" / "quasi.html").read_text()
    assert "Distribution of k" in page and "k_min = 2" in page


def test_gate_fails_the_run_naming_the_subjects(cohort_run):
    """quasi.gate: true turns the WARN into a failed run whose message names the subjects
    below k_min and the way out; only the report and its gate run again."""
    out, root = cohort_run["out"], cohort_run["root"]
    override = root / "gate.yaml"
    override.write_text("quasi:\n  k_min: 2\n  gate: true\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", str(out / "private" / "quasi.ok"), "--cores", "1", "--configfile",
         str(override), "--config", f"input_dir={cohort_run['raw']}", f"output_dir={out}"],
        cwd=REPO, env=cohort_run["env"], capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode != 0
    rows = list(csv.DictReader((out / "private" / "quasi" / "k_anonymity.tsv").open(), delimiter="\t"))
    unique = [r["participant_id"] for r in rows if r["k"] == "1"]
    assert unique and all(u in proc.stdout + proc.stderr for u in unique)
    assert "k-anonymity" in proc.stderr + proc.stdout and "quasi.gate: false" in proc.stderr + proc.stdout
    assert not (out / "private" / "quasi.ok").exists()
    assert json.loads((out / "private" / "quasi" / "k_anonymity.json").read_text())["status"] == "FAIL"
