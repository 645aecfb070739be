"""The review loop's library (neurodeid.review): sheet, decisions, application, changelog.

Small synthetic private folders shaped like the workflow's (release_plan.tsv,
bids/sub-*.names.json, deface/*.json, morphometry/*.tsv, redact/*.json); no workflow run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from neurodeid import review
from neurodeid.review import ReviewError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "review.schema.yaml"

A, B = "aaa111", "bbb222"
T1 = f"sub-{A}/ses-1/anat/sub-{A}_ses-1_run-1_T1w"  # morphometry WARN
T1_DF = f"sub-{A}/ses-1/anat/sub-{A}_ses-1_run-2_T1w"  # defacing failed
T1_MF = f"sub-{A}/ses-1/anat/sub-{A}_ses-1_run-3_T1w"  # morphometry FAIL
CT = f"sub-{A}/ses-1/ct/sub-{A}_ses-1_run-1_ct"  # not defaced: the face check saw no face
US = f"sourcedata/dicom/sub-{A}/ses-1/s005"  # redacted: 00001 PASS, 00002 FAIL
B_T1 = f"sub-{B}/ses-1/anat/sub-{B}_ses-1_run-1_T1w"  # PASS


def _tsv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header] + rows) + "\n", encoding="utf-8")


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _morph(path: Path, rows: list[tuple[str, str, str]]) -> None:
    _tsv(path, ["image", "verdict", "brain_dice", "reasons"], [[i, v, "0.99", r] for i, v, r in rows])


@pytest.fixture
def private(tmp_path: Path) -> Path:
    """A run's private folder: two subjects, every kind of item."""
    p = tmp_path / "private"
    face = "MR volume of 177 slices may show a face: withheld until defaced DICOM exists"
    _tsv(p / "release_plan.tsv",
         ["subject", "session", "series", "modality", "release_dicom", "withheld_reason", "bids",
          "convert", "deface", "dicom"],
         [[f"sub-{A}", "ses-1", "s001", "MR", "no", face, "anat/T1w (defaced)", "yes", "yes", "withheld"],
          [f"sub-{A}", "ses-1", "s004", "CT", "yes", "", "ct/ct", "yes", "no", "deid"],
          [f"sub-{A}", "ses-1", "s005", "US", "yes", "", "not converted (2D: burned-in text redaction)",
           "no", "no", "redact"],
          [f"sub-{A}", "ses-1", "s006", "MR", "yes", "", "func/bold", "yes", "no", "deid"],
          [f"sub-{B}", "ses-1", "s001", "MR", "no", face, "anat/T1w (defaced)", "yes", "yes", "withheld"]])
    _tsv(p / "index.tsv", ["subject", "session", "series", "pixel_cleaning"],
         [[A, "1", "s001", ""], [A, "1", "s004", ""], [A, "1", "s005", "Modality US"], [A, "1", "s006", ""],
          [B, "1", "s001", ""]])
    _json(p / "bids" / f"sub-{A}.names.json", {"1": {
        "s001": [{"image": "a.nii.gz", "bids": T1, "datatype": "anat"},
                 {"image": "b.nii.gz", "bids": T1_DF, "datatype": "anat"},
                 {"image": "c.nii.gz", "bids": T1_MF, "datatype": "anat"}],
        "s004": [{"image": "image.nii.gz", "bids": CT, "datatype": "ct"}],
        "s006": {"failed": "dcm2niix wrote no image"}}})
    _json(p / "bids" / f"sub-{B}.names.json",
          {"1": {"s001": [{"image": "image.nii.gz", "bids": B_T1, "datatype": "anat"}]}})
    _json(p / "deface" / f"sub-{A}" / "ses-1" / "s001.json", {"images": [
        {"image": "a.nii.gz", "status": "ok", "reason": "",
         "qc": ["a/deface_triplanar.png", "a/deface_render.png"]},  # the render is not there
        {"image": "b.nii.gz", "status": "failed", "reason": "registration metric 0.41 < 0.85"},
        {"image": "c.nii.gz", "status": "ok", "reason": ""}]})
    _json(p / "deface" / f"sub-{B}" / "ses-1" / "s001.json",
          {"images": [{"image": "image.nii.gz", "status": "ok", "reason": ""}]})
    _morph(p / "morphometry" / f"sub-{A}" / "ses-1" / "s001.tsv",
           [(f"sub-{A}_ses-1_s001/a.nii.gz", "WARN", "CSF change 2.4 % > 2.0 %"),
            (f"sub-{A}_ses-1_s001/c.nii.gz", "FAIL", "brain Dice 0.97 < 0.98")])
    _morph(p / "morphometry" / f"sub-{B}" / "ses-1" / "s001.tsv", [(f"sub-{B}_ses-1_s001/image.nii.gz", "PASS", "")])
    _json(p / "redact" / f"sub-{A}" / "ses-1" / "s005.json", {"status": "FAIL", "files": [
        {"file": "00001.dcm", "status": "PASS", "reasons": []},
        {"file": "00002.dcm", "status": "FAIL", "reasons": ["OCR still reads a date"]}]})
    _json(p / "face" / f"sub-{A}" / "ses-1" / "s004.json",
          {"images": [{"image": "image.nii.gz", "status": "ok", "reason": ""}]})
    qc = p / "qc" / "deface" / f"sub-{A}" / "ses-1" / "s001" / "a"
    qc.mkdir(parents=True)
    (qc / "deface_triplanar.png").write_bytes(b"png")
    return p


def _sheet(private: Path) -> list[dict]:
    out = private / "review.tsv"
    review.write_review_sheet(private, out)
    return review.read_sheet(out)


def _decisions(tmp_path: Path, rows: list[list[str]], header=("subject", "item", "decision", "note")) -> Path:
    path = tmp_path / "my_review.tsv"
    _tsv(path, list(header), rows)
    return path


# ---------------------------------------------------------------------------
# The sheet
# ---------------------------------------------------------------------------


def test_sheet_rows_verdicts_and_order(private: Path):
    rows = _sheet(private)
    by_item = {r["item"]: r for r in rows}
    assert by_item[T1]["verdict"] == "WARN" and by_item[T1]["reasons"].startswith("morphometry WARN: CSF")
    assert by_item[T1_DF]["verdict"] == "FAIL" and by_item[T1_DF]["reasons"].startswith("defacing failed:")
    assert by_item[T1_MF]["verdict"] == "FAIL" and by_item[T1_MF]["reasons"].startswith("morphometry FAIL:")
    assert by_item[CT]["verdict"] == "RELEASED"
    assert by_item[f"sub-{A}/ses-1/s006"]["verdict"] == "FAIL"  # conversion failed
    assert by_item[f"{US}/00001"]["verdict"] == "PASS"
    assert by_item[f"{US}/00002"]["verdict"] == "FAIL"
    assert by_item[f"{US}/00002"]["reasons"] == "redaction FAIL: OCR still reads a date"
    assert by_item[f"sourcedata/dicom/sub-{A}/ses-1/s001"]["verdict"] == "WITHHELD"
    assert by_item[f"sourcedata/dicom/sub-{A}/ses-1/s004"]["verdict"] == "RELEASED"
    assert by_item[B_T1]["verdict"] == "PASS"
    # the QC pictures the stage's record lists and that exist, relative to the private folder
    assert by_item[T1]["qc"] == f"qc/deface/sub-{A}/ses-1/s001/a/deface_triplanar.png"
    assert by_item[T1_MF]["qc"] == ""  # the record lists none (no name is guessed)
    assert all(r["decision"] == "" and r["note"] == "" for r in rows)
    keys = [(r["subject"], r["session"], r["series"], r["item"]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert list(rows[0]) == list(review.SHEET_COLUMNS)


def test_sheet_is_deterministic_and_written_only_when_changed(private: Path):
    out = private / "review.tsv"
    review.write_review_sheet(private, out)
    first = out.read_bytes()
    os.utime(out, (1_000_000, 1_000_000))
    review.write_review_sheet(private, out)
    assert out.read_bytes() == first and out.stat().st_mtime == 1_000_000


def test_sheet_rows_satisfy_the_schema(private: Path):
    import jsonschema

    schema = review.load_schema(SCHEMA)
    for row in _sheet(private):
        jsonschema.validate(row, schema)


# ---------------------------------------------------------------------------
# Reading decisions
# ---------------------------------------------------------------------------


def test_decisions_read_back(private: Path, tmp_path: Path):
    sheet = _sheet(private)
    path = _decisions(tmp_path, [[f"sub-{A}", T1_MF, "accept", "Dice drop is the neck"],
                                 [f"sub-{B}", B_T1, "reject", "wrong series"],
                                 [f"sub-{A}", CT, "", ""],
                                 [f"sub-{A}", T1, "default", "looked at it"]])
    got = review.read_decisions(path, sheet, SCHEMA)
    assert got == {T1_MF: ("accept", "Dice drop is the neck"), B_T1: ("reject", "wrong series"),
                   T1: ("default", "looked at it")}


def test_a_full_copy_of_the_sheet_is_accepted(private: Path, tmp_path: Path):
    sheet = _sheet(private)
    copy = tmp_path / "copy.tsv"
    copy.write_text((private / "review.tsv").read_text().replace("\tRELEASED\t\t\t\t", "\tRELEASED\t\t\treject\tno"))
    got = review.read_decisions(copy, sheet, SCHEMA)
    assert got[CT] == ("reject", "no")


def test_unknown_subject_names_the_row(private: Path, tmp_path: Path):
    sheet = _sheet(private)
    path = _decisions(tmp_path, [[f"sub-{A}", CT, "reject", ""],
                                 ["sub-zzz999", "sub-zzz999/ses-1/anat/sub-zzz999_ses-1_run-1_T1w", "reject", ""]])
    with pytest.raises(ReviewError) as exc:
        review.read_decisions(path, sheet, SCHEMA)
    msg = str(exc.value)
    assert "line 3 (row 2), column 'subject'" in msg and "unknown subject 'sub-zzz999'" in msg
    assert "row 1" not in msg


def test_unknown_subject_in_item_only_names_the_row(private: Path, tmp_path: Path):
    sheet = _sheet(private)
    path = _decisions(tmp_path, [["sub-zzz999/ses-1/anat/sub-zzz999_ses-1_run-1_T1w", "reject"]],
                      header=("item", "decision"))
    with pytest.raises(ReviewError, match=r"line 2 \(row 1\), column 'item': unknown subject 'sub-zzz999'"):
        review.read_decisions(path, sheet, SCHEMA)


def test_unknown_item_of_a_known_subject(private: Path, tmp_path: Path):
    sheet = _sheet(private)
    path = _decisions(tmp_path, [[f"sub-{A}", f"sub-{A}/ses-1/anat/sub-{A}_ses-1_run-9_T1w", "reject", ""]])
    with pytest.raises(ReviewError, match=r"line 2 \(row 1\), column 'item': unknown item"):
        review.read_decisions(path, sheet, SCHEMA)


def test_bad_decision_value_names_the_row(private: Path, tmp_path: Path):
    sheet = _sheet(private)
    path = _decisions(tmp_path, [[f"sub-{A}", CT, "reject", ""], [f"sub-{A}", T1, "", ""],
                                 [f"sub-{B}", B_T1, "acept", "typo"]])
    for schema in (SCHEMA, None):  # the check holds with or without the JSON schema
        with pytest.raises(ReviewError) as exc:
            review.read_decisions(path, sheet, schema)
        msg = str(exc.value)
        assert "line 4 (row 3), column 'decision'" in msg and "'acept'" in msg
        assert "1 problem(s)" in msg


def test_duplicated_row_names_both_rows(private: Path, tmp_path: Path):
    sheet = _sheet(private)
    path = _decisions(tmp_path, [[f"sub-{A}", CT, "reject", ""], [f"sub-{A}", T1, "", ""],
                                 [f"sub-{A}", CT, "accept", "changed my mind"]])
    with pytest.raises(ReviewError, match=r"lines 2 and 4 \(rows 1 and 3\), column 'item'.*appears twice"):
        review.read_decisions(path, sheet, SCHEMA)


def test_unknown_column_and_mismatched_session(private: Path, tmp_path: Path):
    sheet = _sheet(private)
    path = _decisions(tmp_path, [[T1, "reject"]], header=("item", "decison"))
    with pytest.raises(ReviewError, match="unknown column 'decison'"):
        review.read_decisions(path, sheet, SCHEMA)
    path = _decisions(tmp_path, [["ses-2", T1, "reject"]], header=("session", "item", "decision"))
    with pytest.raises(ReviewError, match=r"row 1\), column 'session': 'ses-2' does not match"):
        review.read_decisions(path, sheet, SCHEMA)


def test_accept_over_failed_defacing_or_redaction_is_refused_at_read(private: Path, tmp_path: Path):
    sheet = _sheet(private)
    path = _decisions(tmp_path, [[f"sub-{A}", T1_DF, "accept", "looks fine"],
                                 [f"sub-{A}", f"{US}/00002", "accept", ""],
                                 [f"sub-{A}", f"sourcedata/dicom/sub-{A}/ses-1/s001", "accept", ""],
                                 [f"sub-{A}", T1_MF, "accept", "ok"]])
    with pytest.raises(ReviewError) as exc:
        review.read_decisions(path, sheet, SCHEMA)
    msg = str(exc.value)
    assert "3 problem(s)" in msg
    assert "line 2 (row 1), column 'decision': accept cannot override FAIL (defacing failed)" in msg
    assert "no defaced image exists" in msg
    assert "line 3 (row 2)" in msg and "no redacted image exists" in msg
    assert "line 4 (row 3)" in msg and "WITHHELD" in msg
    assert "row 4" not in msg  # accepting a morphometry FAIL is allowed


# ---------------------------------------------------------------------------
# Applying decisions
# ---------------------------------------------------------------------------

NAMES = {"s001": [{"image": "a.nii.gz", "bids": T1}, {"image": "b.nii.gz", "bids": T1_DF},
                  {"image": "c.nii.gz", "bids": T1_MF}],
         "s004": [{"image": "image.nii.gz", "bids": CT}],
         "s006": {"failed": "dcm2niix wrote no image"}}
AUTO = {"s001": {"b.nii.gz": "defacing failed: registration metric 0.41 < 0.85",
                 "c.nii.gz": "morphometry FAIL: brain Dice 0.97 < 0.98"}}


def test_reject_removes_a_released_image():
    excluded, applied = review.apply_decisions(NAMES, AUTO, {CT: ("reject", "wrong suffix")})
    assert excluded["s004"] == {"image.nii.gz": "rejected by reviewer: wrong suffix"}
    assert excluded["s001"] == AUTO["s001"]
    assert applied == [{"item": CT, "series": "s004", "image": "image.nii.gz", "decision": "reject",
                        "note": "wrong suffix", "verdict": "PASS", "effect": "rejected",
                        "record": "rejected by reviewer: wrong suffix"}]
    assert "s004" not in AUTO  # the input is not modified


def test_accept_over_fail_keeps_the_image_with_its_record():
    excluded, applied = review.apply_decisions(NAMES, AUTO, {T1_MF: ("accept", "neck only"),
                                                             T1: ("accept", "CSF fine")},
                                               verdicts={T1: "WARN", T1_MF: "FAIL"})
    assert "c.nii.gz" not in excluded["s001"] and "b.nii.gz" in excluded["s001"]
    rec = {r["item"]: r for r in applied}
    assert rec[T1_MF]["effect"] == "accepted"
    assert rec[T1_MF]["record"] == "accepted by reviewer over FAIL: neck only"
    assert rec[T1]["record"] == "accepted by reviewer over WARN: CSF fine"
    assert AUTO["s001"]["c.nii.gz"].startswith("morphometry FAIL")


def test_accept_over_failed_defacing_is_refused():
    excluded, applied = review.apply_decisions(NAMES, AUTO, {T1_DF: ("accept", "looks fine"),
                                                             f"sub-{A}/ses-1/s006": ("accept", "")})
    assert excluded["s001"]["b.nii.gz"] == AUTO["s001"]["b.nii.gz"]
    rec = {r["item"]: r for r in applied}
    assert rec[T1_DF]["effect"] == "refused" and "no defaced image exists" in rec[T1_DF]["record"]
    assert rec[f"sub-{A}/ses-1/s006"]["effect"] == "refused"
    assert "no converted image exists" in rec[f"sub-{A}/ses-1/s006"]["record"]


def test_dicom_decisions():
    files = ["00001.dcm", "00003.dcm"]  # 00002 failed redaction: not in the redacted folder
    keep, applied = review.apply_dicom_decisions(US, files, {f"{US}/00001": ("reject", "text left"),
                                                             f"{US}/00002": ("accept", "")})
    assert keep == ["00003.dcm"]
    rec = {r["item"]: r for r in applied}
    assert rec[f"{US}/00001"]["effect"] == "rejected"
    assert rec[f"{US}/00002"]["effect"] == "refused" and "no redacted image exists" in rec[f"{US}/00002"]["record"]
    keep, applied = review.apply_dicom_decisions(US, files, {US: ("reject", "whole series")})
    assert keep == [] and applied[0]["record"] == "rejected by reviewer: whole series"
    keep, applied = review.apply_dicom_decisions(US, files, {T1: ("reject", "")})
    assert keep == files and applied == []


def test_session_exclusions_match_the_sheet(private: Path, tmp_path: Path):
    mdir = tmp_path / "morph"
    _morph(mdir / "a.tsv", [("x/a.nii.gz", "WARN", "CSF")])
    _morph(mdir / "c.tsv", [("x/c.nii.gz", "FAIL", "Dice")])
    names = {k: v for k, v in NAMES.items() if k != "s006"}
    excluded, extras, verdicts = review.session_exclusions(
        names, {"s001": private / "deface" / f"sub-{A}" / "ses-1" / "s001.json"}, {"s001": mdir})
    assert set(excluded["s001"]) == {"b.nii.gz", "c.nii.gz"}
    assert excluded["s001"]["c.nii.gz"] == "morphometry FAIL: Dice"
    assert set(extras["s001"]) == {"a.nii.gz", "c.nii.gz"}  # an accepted FAIL carries its table
    assert verdicts == {T1: "WARN", T1_DF: "FAIL", T1_MF: "FAIL", CT: "RELEASED"}


# ---------------------------------------------------------------------------
# Per-subject decision files
# ---------------------------------------------------------------------------


def test_split_decisions_writes_only_changed_files(tmp_path: Path):
    out = tmp_path / "decisions"
    subjects = [A, B]
    d = {CT: ("reject", "x"), f"{US}/00001": ("reject", "text"), B_T1: ("default", "only a note")}
    written = review.split_decisions(d, out, subjects)
    assert {p.name for p in written} == {f"sub-{A}.json", f"sub-{B}.json"}
    assert review.load_decisions_file(review.subject_decisions_path(out, A)) == {
        CT: ("reject", "x"), f"{US}/00001": ("reject", "text")}
    assert review.load_decisions_file(review.subject_decisions_path(out, B)) == {}  # a note alone is no decision
    for p in written:
        os.utime(p, (1_000_000, 1_000_000))
    assert review.split_decisions(dict(d), out, subjects) == []
    d[B_T1] = ("reject", "wrong series")
    assert review.split_decisions(d, out, subjects) == [review.subject_decisions_path(out, B)]
    assert review.subject_decisions_path(out, A).stat().st_mtime == 1_000_000


# ---------------------------------------------------------------------------
# What is released, and the changelog
# ---------------------------------------------------------------------------


def _listing(path: Path, files: list[str]) -> Path:
    _tsv(path, ["file", "sha256"], [[f, "ab" * 32] for f in files])
    return path


def test_released_items_subjects_and_run_id(tmp_path: Path):
    la = _listing(tmp_path / "a.tsv", [f"{CT}.nii.gz", f"{CT}.json",
                                       f"derivatives/neurodeid/nrrd/{CT}.nrrd", f"{US}/00001.dcm"])
    lb = _listing(tmp_path / "b.tsv", [f"sourcedata/dicom/sub-{B}/ses-1/s002/00001.dcm",
                                       f"sourcedata/dicom/sub-{B}/ses-1/s002/00002.dcm"])
    lc = _listing(tmp_path / "c.tsv", [])
    sheet_items = {CT, f"{US}/00001", f"sourcedata/dicom/sub-{B}/ses-1/s002"}
    assert review.released_items([la, lb, lc], sheet_items) == sheet_items
    assert review.subjects_with_items([la, lb, lc]) == [f"sub-{A}", f"sub-{B}"]
    assert review.subjects_with_items([la, lc]) == [f"sub-{A}"]
    rid = review.release_run_id([la, lb])
    assert rid == review.release_run_id([lb, la]) and rid.startswith("r") and len(rid) == 13
    assert rid != review.release_run_id([la])


def test_release_log_entered_and_left(tmp_path: Path):
    log = tmp_path / "release_log.tsv"
    first = review.update_release_log(log, "r1", None, {CT, T1, B_T1}, {}, {CT: "RELEASED", T1: "WARN"})
    assert [(r["item"], r["change"]) for r in first] == [(T1, "entered"), (CT, "entered"), (B_T1, "entered")]
    decisions = {B_T1: ("reject", "wrong series"), T1_MF: ("accept", "neck only")}
    rows = review.update_release_log(log, "r2", None, {CT, T1, T1_MF}, decisions, {B_T1: "PASS", T1_MF: "FAIL"})
    assert rows == [
        {"run": "r2", "item": B_T1, "change": "left", "verdict": "PASS", "decision": "reject", "note": "wrong series"},
        {"run": "r2", "item": T1_MF, "change": "entered", "verdict": "FAIL", "decision": "accept",
         "note": "neck only"}]
    logged = review.read_release_log(log)
    assert list(logged[0]) == list(review.LOG_COLUMNS) and len(logged) == 5
    assert review.released_items_from_log(log) == {CT, T1, T1_MF}
    before = log.read_bytes()
    assert review.update_release_log(log, "r2", None, {CT, T1, T1_MF}, decisions) == []
    assert log.read_bytes() == before
    # an explicit "before" set wins over the replay
    rows = review.update_release_log(log, "r3", {CT}, {CT, T1}, {})
    assert [(r["item"], r["change"]) for r in rows] == [(T1, "entered")]


def test_report_tables_show_decisions_beside_verdicts_and_newest_run_first(private: Path):
    _sheet(private)
    review.write_applied(private / "review" / "applied" / f"sub-{A}.json",
                         review.apply_decisions(NAMES, AUTO, {T1_MF: ("accept", "neck only"),
                                                              T1_DF: ("accept", "")})[1])
    log = private / "release_log.tsv"
    review.update_release_log(log, "r1", None, {CT}, {})
    review.update_release_log(log, "r2", None, {CT, T1_MF}, {T1_MF: ("accept", "neck only")}, {T1_MF: "FAIL"})
    review.update_release_log(log, "r1", None, {CT}, {})  # back to the first state: the id repeats
    t = review.report_tables(private)
    assert t["decisions"] == [
        [T1_DF, "FAIL", "defacing failed: registration metric 0.41 < 0.85", "accept", "refused", ""],
        [T1_MF, "FAIL", "morphometry FAIL: brain Dice 0.97 < 0.98", "accept", "accepted", "neck only"]]
    assert [(r[0], r[2]) for r in t["changelog"]] == [("r1", "left"), ("r2", "entered"), ("r1", "entered")]
    assert len(review.DECISION_HEADER) == len(t["decisions"][0])


def test_decision_case_is_forgiven_but_not_typos(private: Path, tmp_path: Path):
    sheet = _sheet(private)
    path = _decisions(tmp_path, [[f"sub-{A}", CT, "Reject", "from a spreadsheet"]])
    assert review.read_decisions(path, sheet, SCHEMA) == {CT: ("reject", "from a spreadsheet")}


def test_an_image_not_defaced_is_released_only_without_a_face(private: Path):
    """Issue #18: a face seen on its renders, or no face check at all, withholds it."""
    rec = private / "face" / f"sub-{A}" / "ses-1" / "s004.json"
    _json(rec, {"images": [{"image": "image.nii.gz", "status": "face",
                            "reason": "a face is detected on its surface renders (score 0.31 > -0.4)"}]})
    row = {r["item"]: r for r in _sheet(private)}[CT]
    assert row["verdict"] == "WITHHELD" and "face is detected" in row["reasons"]
    rec.unlink()
    row = {r["item"]: r for r in _sheet(private)}[CT]
    assert row["verdict"] == "WITHHELD" and "face check pending" in row["reasons"]


def test_dicom_of_a_series_with_a_face_is_withheld(private: Path):
    """The de-identified DICOM of a series whose converted image shows a face holds the
    same face: it does not leave as acquired either."""
    _json(private / "face" / f"sub-{A}" / "ses-1" / "s004.json",
          {"images": [{"image": "image.nii.gz", "status": "face", "reason": "a face is detected"}]})
    row = {r["item"]: r for r in _sheet(private)}[f"sourcedata/dicom/sub-{A}/ses-1/s004"]
    assert row["verdict"] == "WITHHELD" and "face" in row["reasons"]
