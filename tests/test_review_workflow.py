"""End-to-end review loop on the bundled example (issue 12).

Reject one image → it leaves the release, the log says so, and a dry run shows that
only its session's release job (plus the aggregates) reruns; accept a morphometry
FAIL → the image enters the release with its verdict and the decision on record.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from conftest import EXAMPLE_DICOM, REPO

pytestmark = pytest.mark.e2e

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
#: Jobs that read every release job's output: they rerun whenever anything is released anew
#: (the review sheet reads the BIDS names the release jobs write).
AGGREGATES = {"release_log", "release_skeleton", "review_sheet", "audit", "audit_gate", "report_summary",
              "quasi_report", "all"}


def smk(configfile, *args) -> str:
    proc = subprocess.run([*SNAKEMAKE, "--cores", "2", "--configfile", str(configfile), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    return proc.stdout + proc.stderr


def job_counts(dry_run_output: str) -> dict[str, int]:
    stats = dry_run_output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", stats, re.MULTILINE)
            if m.group(1) != "total"}


def edit_sheet(sheet, out, decisions: dict[str, tuple[str, str]]) -> None:
    lines = sheet.read_text().splitlines()
    cols = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        f = dict(zip(cols, line.split("\t")))
        if f["item"] in decisions:
            f["decision"], f["note"] = decisions[f["item"]]
        rows.append("\t".join(f[c] for c in cols))
    out.write_text("\n".join([lines[0], *rows]) + "\n")


def log_rows(private):
    lines = (private / "release_log.tsv").read_text().splitlines()
    return [dict(zip(lines[0].split("\t"), ln.split("\t"))) for ln in lines[1:]]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if not EXAMPLE_DICOM.is_dir():
        pytest.fail("the bundled example is missing: run `python example/build_example.py`")
    tmp = tmp_path_factory.mktemp("review")
    cfg = {"output_dir": str(tmp / "results"), "review": {"decisions": ""}}
    configfile = tmp / "config.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    smk(configfile)
    return {"tmp": tmp, "cfg": cfg, "configfile": configfile, "private": tmp / "results" / "private",
            "release": tmp / "results" / "release"}


def _set(run, **changes):
    cfg = run["cfg"]
    for k, v in changes.items():
        cfg[k] = v
    run["configfile"].write_text(yaml.safe_dump(cfg))


def test_reject_one_image_reruns_only_its_subject(run):
    private, release = run["private"], run["release"]
    sheet = private / "review.tsv"
    images = [ln.split("\t")[3] for ln in sheet.read_text().splitlines()[1:]
              if not ln.split("\t")[3].startswith("sourcedata/") and "\t" in ln]
    ct = next(i for i in images if i.endswith("_ct"))
    sub = ct.split("/")[0]
    other = [p for p in sorted((private / "released").glob("sub-*.tsv")) if p.name != f"{sub}.tsv"]
    decisions = run["tmp"] / "decisions.tsv"
    edit_sheet(sheet, decisions, {ct: ("reject", "wrong series mapped to ct")})
    _set(run, review={"decisions": str(decisions)})
    counts = job_counts(smk(run["configfile"], "-n"))
    assert counts.pop("release_subject") == 1
    assert set(counts) <= AGGREGATES, counts
    mtimes = {p: p.stat().st_mtime for p in other}
    assert mtimes
    smk(run["configfile"])
    assert not (release / f"{ct}.nii.gz").exists() and not (release / f"{ct}.json").exists()
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes  # the other subjects' releases were not redone
    left = [r for r in log_rows(private) if r["change"] == "left"]
    assert left == [{"run": left[0]["run"], "item": ct, "change": "left", "verdict": "RELEASED",
                     "decision": "reject", "note": "wrong series mapped to ct"}]
    assert "Nothing to be done" in smk(run["configfile"], "-n")


def test_accept_a_morphometry_fail_releases_it_on_record(run):
    private, release = run["private"], run["release"]
    _set(run, review={"decisions": ""}, morphometry={"thresholds": {"fail_brain_dice": 0.9999}})
    smk(run["configfile"])
    rows = [ln.split("\t") for ln in (private / "review.tsv").read_text().splitlines()[1:]]
    t1 = next(r[3] for r in rows if r[3].endswith("_T1w"))
    assert next(r for r in rows if r[3] == t1)[4] == "FAIL"
    assert not (release / f"{t1}.nii.gz").exists()
    decisions = run["tmp"] / "decisions2.tsv"
    edit_sheet(private / "review.tsv", decisions, {t1: ("accept", "Dice 0.998 is fine here")})
    _set(run, review={"decisions": str(decisions)})
    counts = job_counts(smk(run["configfile"], "-n"))
    assert counts.pop("release_subject") == 1 and set(counts) <= AGGREGATES, counts
    smk(run["configfile"])
    assert (release / f"{t1}.nii.gz").is_file()
    assert log_rows(private)[-1] | {"run": ""} == {"run": "", "item": t1, "change": "entered", "verdict": "FAIL",
                                                   "decision": "accept", "note": "Dice 0.998 is fine here"}
    assert "accepted by reviewer over FAIL: Dice 0.998 is fine here" in \
        (private / "review" / "applied" / f"{t1.split('/')[0]}.json").read_text()
    assert (private / "audit.ok").is_file()


def test_bad_decisions_stop_the_run_naming_the_row(run):
    bad = run["tmp"] / "bad.tsv"
    sheet = (run["private"] / "review.tsv").read_text().splitlines()
    bad.write_text("\n".join([sheet[0], sheet[1].rsplit("\t", 2)[0] + "\tacept\t"]) + "\n")
    _set(run, review={"decisions": str(bad)})
    proc = subprocess.run([*SNAKEMAKE, "-n", "--configfile", str(run["configfile"])], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode != 0
    assert "line 2 (row 1), column 'decision'" in proc.stdout + proc.stderr
