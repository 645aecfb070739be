"""The review report's summary (neurodeid.report): counts, the send verdict, safe tables.

Unit tests work on a copy of the private files of a real example run (the shared
run of tests/report_helpers.py), edited the way a later run would write them (an
audit hit, a failed redaction, a morphometry WARN), never on mocks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from neurodeid import keys, report
from report_helpers import example_report

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return example_report(tmp_path_factory)


@pytest.fixture
def private(run, tmp_path):
    """A private copy of the example run's private files (safe to edit)."""
    dst = tmp_path / "private"
    shutil.copytree(run["out"] / "private", dst, ignore=shutil.ignore_patterns("logs", "benchmarks", "report*"))
    return dst


def planted() -> dict:
    return json.loads((Path(__file__).resolve().parents[1] / "example" / "planted_identifiers.json").read_text())


def test_counts_of_the_example(private):
    s = report.collect(private)
    index_rows = (private / "index.tsv").read_text().splitlines()[1:]
    assert len(s.series) == len(index_rows) >= 3
    assert len(s.subjects) == len(planted()["subjects"])
    assert s.n_files == sum(int(r.split("\t")[3]) for r in index_rows)
    # the ultrasound still is redacted; its one image passed the OCR check
    us = [x for x in s.series if x.modality == "US"]
    assert us and all(x.redaction == "PASS" and x.redaction_images[0] == x.redaction_images[1] >= 1 for x in us)
    # the DICOMDIR and the notes file are skipped, not quarantined
    assert len(s.skipped_files) >= 2 and not s.quarantined
    assert s.audit.ran and s.audit.hits == 0 and s.audit.files_scanned > 0
    # every released NIfTI of the listings is attributed to one series
    listed = [ln.split("\t")[0] for p in (private / "released").glob("sub-*.tsv")
              for ln in p.read_text().splitlines()[1:] if not ln.startswith("#")]
    assert s.released_images == len([f for f in listed if f.endswith(".nii.gz")])


def test_demo_key_says_no(private):
    demo = report.is_demo_fingerprint(keys.fingerprint(keys.DEMO_KEY))
    assert demo and not report.is_demo_fingerprint(keys.fingerprint(b"another-secret-key-0123456789"))
    verdict, reasons = report.collect(private, demo_key=True).verdict()
    assert verdict == report.VERDICT_NO and any("DEMO KEY" in r for r in reasons)


def test_audit_hit_says_no_and_hides_the_value(private):
    ident = "ROE^JANE"
    table = private / "audit.tsv"
    head = table.read_text().splitlines()[:2]
    todo = "a person's name: fix de-identification or reject the item"
    rows = [f"sub-x/{ident}_scan.json\tname\t6\tfile or folder name\tPatientName\tname\tR******* (8 chars)\t{ident}\t{todo}",
            f"sub-x/scan.json\tbytes\t120\tJSON Comment\tPatientName\tname\tR******* (8 chars)\tROE^JANE\t{todo}",
            f"sub-x/scan.json\tbytes\t300\tJSON Comment\tPatientName\tname\tR******* (8 chars)\tROE^JANE\t{todo}"]
    table.write_text("\n".join([head[0].replace(" 0 hits", " 3 hits"), head[1], *rows]) + "\n")
    s = report.collect(private)
    assert s.audit.hits == 3
    verdict, reasons = s.verdict()
    assert verdict == report.VERDICT_NO and any("3 identifying value" in r for r in reasons)
    page = report.render_audit_html(s)
    assert ident not in page and "JANE" not in page
    assert "sub-x/[...]_scan.json" in page and "PatientName" in page
    assert "R******* (8 chars)" in page and "fix de-identification" in page and "JSON Comment" in page
    # the hits in one file and attribute are counted, not listed one by one
    assert ">2<" in page


def test_review_when_a_redaction_failed(private):
    res = next((private / "redact").rglob("*.json"))
    data = json.loads(res.read_text())
    data["status"] = "FAIL"
    data["files"][0]["status"] = "FAIL"
    res.write_text(json.dumps(data))
    s = report.collect(private)
    assert s.verdict_counts()["FAIL"] == 1
    verdict, reasons = s.verdict()  # demo_key False: the audit is clean, a check failed
    assert verdict == report.VERDICT_REVIEW and any("FAILED" in r for r in reasons)


def test_k_anonymity_reaches_the_verdict(private):
    """The example's two subjects are unique (k = 1 < 5): a reason to review; with
    quasi.gate on (status FAIL) a reason to say NO."""
    summary = json.loads((private / "quasi" / "k_anonymity.json").read_text())
    assert summary["status"] == "WARN" and summary["min_k"] == 1
    s = report.collect(private)
    verdict, reasons = s.verdict()
    assert verdict == report.VERDICT_REVIEW and any("quasi-identifiers" in r for r in reasons)
    assert dict(s.count_rows())["k-anonymity (min k / subjects below k_min)"] == "1 / 2 (k_min 5)"
    summary["status"] = "FAIL"
    (private / "quasi" / "k_anonymity.json").write_text(json.dumps(summary))
    verdict, reasons = report.collect(private).verdict()
    assert verdict == report.VERDICT_NO and any("stand out" in r for r in reasons)


def test_defacing_and_morphometry_join(private):
    """The defacing result and the morphometry table of a series show in the counts and the verdict."""
    mr = next(x for x in report.collect(private).series if x.modality == "MR")
    result = private / "deface" / f"sub-{mr.subject}" / f"ses-{mr.session}" / f"{mr.series}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps({"method": "template", "images": [
        {"image": "image.nii.gz", "status": "ok", "reason": "", "summary": {"removed_ml": 210.5}}]}))
    morph = private / "morphometry" / f"sub-{mr.subject}" / f"ses-{mr.session}" / f"{mr.series}.tsv"
    morph.parent.mkdir(parents=True, exist_ok=True)
    morph.write_text("image\tverdict\tbrain_dice\treasons\n"
                     f"sub-{mr.subject}_ses-{mr.session}_{mr.series}/image.nii.gz\tWARN\t0.991\t"
                     "brain_delta_pct -1.2 % beyond the WARN threshold 1 %\n")
    s = report.collect(private)
    m = next(x for x in s.series if x.key == mr.key)
    assert m.deface == "PASS" and m.morphometry == "WARN" and "WARN threshold" in m.morphometry_note
    assert s.verdict_counts()["WARN"] == 1
    rows = dict(s.count_rows())
    assert rows["Series defaced (PASS / FAIL / pending)"].startswith("1 / 0 / 0")
    assert rows["Morphometry (PASS / WARN / FAIL)"] == "0 / 1 / 0"
    result.unlink()  # planned for defacing, not defaced yet: pending
    m = next(x for x in report.collect(private).series if x.key == mr.key)
    assert m.deface == "pending"
    plan = private / "plan" / f"sub-{mr.subject}.json"  # a run with deface.enabled false
    plan.write_text(json.dumps(dict(json.loads(plan.read_text()), deface_enabled=False)))
    m = next(x for x in report.collect(private).series if x.key == mr.key)
    assert m.deface == ""  # not planned to run: neither pending nor a verdict


def test_pages_name_no_raw_identifier(private, tmp_path):
    """Summary, subject, withheld and audit pages show pseudonyms only (the quarantine page may name raw paths)."""
    s = report.collect(private, demo_key=True)
    written = report.write_report_pages(s, tmp_path / "pages")
    names = {p.name for p in written}
    assert {"summary.html", "summary_counts.rst", "withheld.html", "audit.html", "quarantine.html"} <= names
    assert {f"sub-{sub}.html" for sub in s.subjects} <= names
    needles = set()
    for subj, info in planted()["subjects"].items():
        needles.update(x for x in info.get("strings", []) + info.get("uids", []) + info.get("dates", [])
                       + info.get("path_components", []) if len(x) >= 4)
        needles.add(subj)
    for p in written:
        if p.name == "quarantine.html":
            continue
        text = p.read_text()
        leaked = [n for n in needles if n.lower() in text.lower()]
        assert not leaked, f"{p.name} shows raw identifiers: {leaked}"
    summary = (tmp_path / "pages" / "summary.html").read_text()
    assert report.TITLE in summary and 'class="verdict v-NO"' in summary


def test_summary_rst_is_valid_restructuredtext(private):
    from docutils.core import publish_parts
    from docutils.writers.html4css1 import Writer

    rst = report.render_summary_rst(report.collect(private, demo_key=True))
    body = publish_parts(rst, writer=Writer(), settings_overrides={"halt_level": 2, "report_level": 2})["body"]
    assert "May I press send?" in body and "NO: do not send" in body and "system-message" not in body


def test_command_line(run, tmp_path):
    out = tmp_path / "cmd"
    from neurodeid.cli import main

    rc = main(["report-summary", str(run["out"] / "private"), "--out-dir", str(out),
               "--key-fingerprint", keys.fingerprint(keys.DEMO_KEY)])
    assert rc == 0 and (out / "summary.html").is_file() and any((out / "subjects").glob("sub-*.html"))
    assert main(["report-summary", str(tmp_path / "nowhere"), "--out-dir", str(out)]) == 1


def test_workflow_wrote_the_pages(run):
    pages = run["out"] / "private" / "report"
    text = (pages / "summary_counts.rst").read_text()
    assert "NO: do not send" in text and "DEMO KEY" in text  # the example runs on the demo key
    assert sorted(p.name for p in (pages / "subjects").glob("*.html")) == \
        sorted(f"sub-{s}.html" for s in report.collect(run["out"] / "private").subjects)
