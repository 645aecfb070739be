"""The review loop: a reviewer's decisions change the release, incrementally and on record.

Automatic verdicts (defacing, morphometry, burned-in text redaction, the release
plan) are not the last word: a reviewer may *reject* an item that passed (a face
still visible, a series mapped to the wrong suffix) or *accept* one that warned
or failed a check that measures quality rather than privacy. This module

- writes the **review sheet** (:func:`write_review_sheet`, ``private/review.tsv``):
  one row per released or withheld *item* with its automatic verdict, the reasons
  and the QC pictures, and empty ``decision`` / ``note`` columns;
- reads the reviewer's edited copy (:func:`read_decisions`), checked against the
  JSON schema of a row and against the sheet (unknown subject or item, bad decision
  value, duplicated row, an ``accept`` that cannot be honoured: each stops the run
  with a message naming the line, the row and the column);
- splits the decisions into one small file per session and per DICOM series
  (:func:`split_decisions`), written only when their content changes, so that
  editing one decision reruns only the release job it concerns;
- applies them where the release is assembled (:func:`apply_decisions` for the BIDS
  images of a session, :func:`apply_dicom_decisions` for a ``sourcedata/dicom``
  series), as pure functions;
- keeps a changelog of the release (:func:`update_release_log`,
  ``private/release_log.tsv``): which items entered or left it at each run.

Items
-----
An item is named by its path in the release, without extension:

- a BIDS image: ``sub-X/ses-Y/anat/sub-X_ses-Y_run-1_T1w``;
- a series whose conversion failed or has not run: ``sub-X/ses-Y/s003``;
- a de-identified DICOM series: ``sourcedata/dicom/sub-X/ses-Y/s002``;
- one redacted 2D DICOM image: ``sourcedata/dicom/sub-X/ses-Y/s001/00001``.

Automatic verdicts
------------------
``PASS`` / ``WARN`` / ``FAIL`` come from a check (morphometry after defacing,
redaction's OCR verification, defacing itself, conversion); ``RELEASED`` means
released with no check that applies (a CT of a few slices, a DICOM series with no
face and no burned-in text); ``WITHHELD`` means the release plan keeps it out (a
face or burned-in text with no cleaned version, a config switch) or its stage has
not run yet.

What ``accept`` can and cannot do
---------------------------------
``accept`` brings back only an item whose *cleaned* version exists and whose
exclusion was about quality, not privacy (:data:`ACCEPT_RULES`). It can never
release an image whose defacing failed (no defaced image exists), an image whose
burned-in text redaction failed (no redacted image exists), a withheld series, or
anything the release audit flags: the audit runs after every decision and still
gates the whole run. ``reject`` always wins.

Privacy: every file written here holds pseudonyms, series labels, BIDS names,
fixed text and the reviewer's notes; all of it is private (``results/private``).
The module never imports snakemake.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path

from .fileio import write_text_atomic, write_text_if_changed
from .layout import Layout, released_dicom_series
from .plan import DICOM_NONE
from .records import RunRecords, by_image, read_json, read_tsv
from .release.dataset import read_listing

# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

#: Automatic verdicts, in the order of the checks' severity (see the module docstring).
VERDICTS = ("PASS", "WARN", "FAIL", "WITHHELD", "RELEASED")

#: Values of the ``decision`` column ("" and ``default`` mean: the automatic verdict).
DECISIONS = ("accept", "reject", "default", "")

#: Columns of the review sheet, in order.
SHEET_COLUMNS = ("subject", "session", "series", "item", "verdict", "reasons", "qc", "decision", "note")

#: Columns of ``release_log.tsv``.
LOG_COLUMNS = ("run", "item", "change", "verdict", "decision", "note")

#: What ``accept`` may override, by the kind of the automatic reason (the text before
#: the first colon of ``reasons`` / of an exclusion reason): kind -> (allowed, why).
#: Privacy-relevant: an entry with ``True`` lets a reviewer release an item the
#: workflow kept out. Unknown kinds are refused.
ACCEPT_RULES: dict[str, tuple[bool, str]] = {
    "morphometry FAIL": (True, ("the defaced image exists and passed defacing's own checks; morphometry measures "
                               "harm to the brain (data quality), not privacy, so a reviewer may judge it acceptable")),
    "morphometry WARN": (True, "released anyway; accept records that a reviewer looked"),
    "defacing failed": (False, "no defaced image exists: accepting would release the face"),
    "defacing pending": (False, "no defaced image exists (defacing has not run or deface.enabled is off)"),
    "morphometry pending": (False, "the morphometry check has not run yet: rerun the workflow, then decide"),
    "redaction FAIL": (False, "no redacted image exists: accepting would release burned-in text"),
    "redaction pending": (False, "no redacted image exists (redaction has not run)"),
    "conversion failed": (False, "no converted image exists"),
    "conversion pending": (False, "no converted image exists yet"),
    "withheld": (False, ("the release plan withholds it (a face or burned-in text with no cleaned version, "
                        "or a config switch): no releasable version exists")),
}

_IMAGE_EXT = (".nii.gz", ".nii", ".dcm")


class ReviewError(ValueError):
    """The review sheet or the reviewer's decisions are malformed or cannot be honoured."""


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------


def reason_kind(reasons: str) -> str:
    """The kind of an automatic reason: the text before its first colon (``""`` when none)."""
    return reasons.split(":", 1)[0].strip() if reasons else ""


def accept_allowed(verdict: str, reasons: str) -> tuple[bool, str]:
    """Whether ``accept`` can release an item with this automatic verdict, and why (not).

    PASS, RELEASED and WARN items are released anyway (accept only records the
    review); FAIL and WITHHELD items follow :data:`ACCEPT_RULES` by the kind of
    their reason; a kind the table does not list is refused.
    """
    if verdict in ("PASS", "RELEASED", "WARN"):
        return True, "released anyway; accept records that a reviewer looked"
    kind = reason_kind(reasons)
    if verdict == "WITHHELD" and kind not in ACCEPT_RULES:
        kind = "withheld"
    allowed, why = ACCEPT_RULES.get(kind, (False, f"unknown automatic exclusion {kind!r}: refused by default"))
    return allowed, why


def _clean(text: str) -> str:
    """One line of text for a TSV cell (tabs and newlines become spaces)."""
    return re.sub(r"[\t\r\n]+", " ", str(text or "")).strip()


def _stem(name: str) -> str:
    for ext in _IMAGE_EXT:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def item_session(item: str) -> tuple[str, str, bool]:
    """``(subject, session, is_dicom)`` of an item (labels without ``sub-`` / ``ses-``).

    Raises
    ------
    ReviewError
        When the item is not ``[sourcedata/dicom/]sub-X/ses-Y/...``.
    """
    dicom = item.startswith("sourcedata/dicom/")
    parts = (item[len("sourcedata/dicom/"):] if dicom else item).split("/")
    if len(parts) < 3 or not parts[0].startswith("sub-") or not parts[1].startswith("ses-"):
        raise ReviewError(f"item {item!r}: expected [sourcedata/dicom/]sub-<label>/ses-<label>/...")
    return parts[0][4:], parts[1][4:], dicom


def dicom_series_item(subject: str, session: str, series: str) -> str:
    """The item of a de-identified DICOM series in ``release/sourcedata/dicom``."""
    return released_dicom_series(subject, session, series)


def face_check_verdict(record: dict | None) -> tuple[str, str]:
    """Automatic ``(verdict, reasons)`` of a converted image that is not defaced, from its
    face check (an entry of :func:`neurodeid.deface.face.check_folder`; None: no record):
    RELEASED only when the check ran and saw no face."""
    if record is None:
        return "WITHHELD", "face check pending: no face check of this image"
    if record.get("status") == "ok":
        return "RELEASED", ""
    return "WITHHELD", _clean(record.get("reason", "")) or "face check: no decision"


def dicom_face_reason(face_result: str | os.PathLike) -> str:
    """Why a series' de-identified DICOM must not leave as acquired: a face seen (or no
    decision) on the renders of one of its converted images (``''`` when none, or when the
    series has no face check record)."""
    path = Path(face_result)
    if not path.is_file():
        return ""
    for r in _read_json(path).get("images", []):
        if r.get("status") != "ok":
            return f"its converted image {r.get('image', '')}: {_clean(r.get('reason', ''))}"
    return ""


def image_verdict(defaced: bool, deface: dict | None, morphometry: dict | None) -> tuple[str, str]:
    """Automatic ``(verdict, reasons)`` of one converted BIDS image.

    Parameters
    ----------
    defaced : bool
        The plan defaces this image (a head volume).
    deface : dict or None
        The image's entry of the defacing result JSON (``status`` ``ok``/``failed``,
        ``reason``); None when defacing has not run.
    morphometry : dict or None
        The image's morphometry row (``verdict``, ``reasons``); None when the check
        has not run.
    """
    if not defaced:
        return "RELEASED", ""
    if deface is None:
        return "WITHHELD", "defacing pending: defacing has not run (or deface.enabled is off)"
    if str(deface.get("status", "")).lower() not in ("ok", "pass"):
        why = _clean(deface.get("reason", ""))
        image = str(deface.get("image", ""))
        if image and why.startswith(f"{image}: "):  # the image is named once, by the caller
            why = why[len(image) + 2:]
        return "FAIL", f"defacing failed: {why}"
    if morphometry is None:
        return "WITHHELD", "morphometry pending: the morphometry check has not run"
    v = str(morphometry.get("verdict", "")).strip().upper()
    why = _clean(morphometry.get("reasons", ""))
    if v == "PASS":
        return "PASS", ""
    if v in ("WARN", "FAIL"):
        return v, f"morphometry {v}: {why}"
    return "FAIL", "morphometry FAIL: the morphometry table has no verdict"


# ---------------------------------------------------------------------------
# The review sheet
# ---------------------------------------------------------------------------


def _read_tsv(path: Path) -> list[dict]:
    return read_tsv(path, ReviewError)


def _read_json(path: Path):
    return read_json(path, ReviewError)


def _strip(prefix: str, value: str) -> str:
    return value.removeprefix(prefix)


def _existing(private: Path, paths: list[str]) -> str:
    """The files of ``paths`` that exist, relative to ``private`` (the sheet's ``qc`` column)."""
    return " ".join(Path(p).relative_to(private).as_posix() for p in paths if Path(p).is_file())


def build_sheet(private_dir: str | os.PathLike, decisions: dict | None = None) -> list[dict]:
    """The review sheet's rows, from the private files of a run (see :func:`write_review_sheet`).

    Only the series of the current ``release_plan.tsv`` are read (files of older
    runs are ignored). Verdicts are the *automatic* ones: decisions never change
    them; ``decisions`` (``{item: (decision, note)}``, optional) only pre-fills the
    ``decision`` and ``note`` columns so the sheet can be copied again without
    losing a review.
    """
    rec = RunRecords(private_dir, ReviewError)
    plan_path = rec.path("release_plan.tsv")
    if not plan_path.is_file():
        raise ReviewError(f"{plan_path}: missing; run the workflow first")
    pixel_cleaning = {(r["subject"], r["session"], r["series"]): bool(r.get("pixel_cleaning", "").strip())
                      for r in rec.tsv("index.tsv", missing_ok=True)}
    decisions = decisions or {}
    rows: list[dict] = []

    def add(sub, ses, series, item, verdict, reasons="", qc=""):
        d, n = decisions.get(item, ("", ""))
        rows.append({"subject": f"sub-{sub}", "session": f"ses-{ses}", "series": series, "item": item,
                     "verdict": verdict, "reasons": _clean(reasons), "qc": qc,
                     "decision": "" if d == "default" else d, "note": _clean(n)})

    for p in rec.plan():
        sub, ses, series, ids = p.subject, p.session, p.series, p.ids
        # -- BIDS images of a converted series --------------------------------
        if p.convert:
            subject_names = rec.names(sub)  # one file per subject: {session: {series: names}}
            names = None if subject_names is None else subject_names.get(ses)
            entry = None if names is None else names.get(series)
            defaced = p.deface
            if entry is None:
                add(sub, ses, series, f"sub-{sub}/ses-{ses}/{series}", "WITHHELD",
                    "conversion pending: not converted or named yet")
            elif isinstance(entry, dict):
                add(sub, ses, series, f"sub-{sub}/ses-{ses}/{series}", "FAIL",
                    f"conversion failed: {entry.get('failed', '')}")
            else:
                deface = by_image(rec.result("deface", ids)) if defaced else {}
                faces = None if defaced else by_image(rec.result("face", ids))
                morph = ({Path(r.get("image", "")).name: r for r in rec.result("morphometry", ids) or []}
                         if defaced else {})
                for e in entry:
                    image = e["image"]
                    verdict, why = image_verdict(defaced, deface.get(image) if deface else None,
                                                 morph.get(image) if deface else None)
                    if faces is not None:  # not defaced: released only without a face
                        verdict, why = face_check_verdict(faces.get(image))
                    qc = ""
                    if defaced:
                        q = f"{rec.layout.qc_dir('deface', **ids)}/{_stem(image)}"
                        qc = _existing(rec.private, [f"{q}/deface_triplanar.png", f"{q}/deface_render.png"])
                    add(sub, ses, series, e["bids"], verdict, why, qc)
        # -- de-identified DICOM: one series, or one item per redacted image -----
        item = dicom_series_item(sub, ses, series)
        if p.dicom == DICOM_NONE:  # an image of a BIDS input: there is no DICOM
            continue
        text = rec.result("redact", ids)  # the text stage's result (issue 19)
        if not p.release_dicom:
            add(sub, ses, series, item, "WITHHELD", f"withheld: {p.withheld_reason}")
        elif (text or {}).get("mode") == "screen" and text.get("status") != "PASS":
            add(sub, ses, series, item, "WITHHELD", f"burned-in text: {_clean(text.get('reason', ''))}")
        elif pixel_cleaning.get((sub, ses, series)) or (text or {}).get("mode") == "read":
            if text is None:
                add(sub, ses, series, item, "WITHHELD", "redaction pending: burned-in text redaction has not run")
                continue
            for f in text.get("files", []):
                ok = f.get("status") == "PASS"
                why = "" if ok else "redaction FAIL: " + "; ".join(_clean(x) for x in f.get("reasons", []))
                add(sub, ses, series, f"{item}/{_stem(f['file'])}", "PASS" if ok else "FAIL", why,
                    _existing(rec.private, [f"{rec.layout.qc_dir('redact', **ids)}/{_stem(f['file'])}.png"]))
        elif p.dicom == "deface_dicom":
            res = rec.result("deface_dicom", ids)
            if res is None:
                add(sub, ses, series, item, "WITHHELD", "defaced DICOM pending: not written yet")
            elif res.get("status") == "ok":
                add(sub, ses, series, item, "PASS", "rewritten with the defaced pixels")
            else:
                add(sub, ses, series, item, "WITHHELD", f"defaced DICOM withheld: {_clean(res.get('reason', ''))}")
        elif dicom_face_reason(rec.result_path("face", ids)):
            add(sub, ses, series, item, "WITHHELD", f"a face: {dicom_face_reason(rec.result_path('face', ids))}")
        else:
            add(sub, ses, series, item, "RELEASED")
    rows.sort(key=lambda r: (r["subject"], r["session"], r["series"], r["item"]))
    return rows


def sheet_text(rows: list[dict]) -> str:
    """The review sheet as TSV text (header and one line per row)."""
    lines = ["\t".join(SHEET_COLUMNS)]
    lines += ["\t".join(_clean(r.get(c, "")) for c in SHEET_COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def write_review_sheet(private_dir: str | os.PathLike, out_tsv: str | os.PathLike,
                       decisions: dict | None = None) -> list[dict]:
    """Write the review sheet (``private/review.tsv``); return its rows.

    One row per released or withheld item (see the module docstring), sorted by
    subject, session, series and item. Columns: :data:`SHEET_COLUMNS`; ``qc`` holds
    the QC pictures' paths relative to ``private_dir``, separated by spaces (they
    show faces and burned-in text: private). Written only when its content changes.
    To review: copy the sheet, fill in ``decision`` (accept / reject / default) and
    ``note``, and name the copy in config ``review.decisions``.
    """
    rows = build_sheet(private_dir, decisions)
    write_text_if_changed(out_tsv, sheet_text(rows))
    return rows


def read_sheet(path: str | os.PathLike) -> list[dict]:
    """Rows of a review sheet written by :func:`write_review_sheet`."""
    p = Path(path)
    if not p.is_file():
        raise ReviewError(f"{p}: the review sheet is missing; run the workflow once without review.decisions")
    return _read_tsv(p)


# ---------------------------------------------------------------------------
# The reviewer's decisions
# ---------------------------------------------------------------------------


def load_schema(schema) -> dict | None:
    """A row schema: a dict as is, a path read as YAML/JSON, None as None."""
    if schema is None or isinstance(schema, dict):
        return schema
    import yaml

    return yaml.safe_load(Path(schema).read_text(encoding="utf-8"))


def read_decisions(path: str | os.PathLike, sheet_rows: list[dict], schema=None) -> dict[str, tuple[str, str]]:
    """Read and check a reviewer's copy of the review sheet.

    Parameters
    ----------
    path : path-like
        TSV with a header; columns among :data:`SHEET_COLUMNS`, at least ``item`` and
        ``decision``. Lines starting with ``#`` and blank lines are ignored.
    sheet_rows : list of dict
        The current review sheet (:func:`read_sheet`): the items that exist.
    schema : dict, path-like or None
        JSON schema of one row (``workflow/schemas/review.schema.yaml``); None skips
        the schema (the checks below still run).

    Returns
    -------
    dict
        item -> ``(decision, note)`` for every row whose decision or note is not
        empty; an empty decision is returned as ``"default"``.

    Raises
    ------
    ReviewError
        Listing every problem, each naming the line of the file, the row number
        (1 = first row under the header) and the column: an unknown column, an
        unknown subject or item, a subject/session/series that does not match the
        item, a bad decision value, a duplicated item (naming both rows), an
        ``accept`` that cannot be honoured (see :data:`ACCEPT_RULES`).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ReviewError(f"{path}: cannot read the review decisions ({exc.strerror}); "
                          "fix config review.decisions") from None
    schema = load_schema(schema)
    validator = None
    if schema is not None:
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema)
    by_item = {r["item"]: r for r in sheet_rows}
    subjects = {r["subject"] for r in sheet_rows}
    errors: list[str] = []

    def where(line: int, row: int, column: str) -> str:
        return f"{path.name} line {line} (row {row}), column '{column}'"

    reader = csv.reader(io.StringIO(text), delimiter="\t")
    header = None
    seen: dict[str, tuple[int, int]] = {}
    out: dict[str, tuple[str, str]] = {}
    row_no = 0
    for fields in reader:
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields) or fields[0].startswith("#"):
            continue
        if header is None:
            header = [f.strip() for f in fields]
            unknown = [c for c in header if c not in SHEET_COLUMNS]
            missing = [c for c in ("item", "decision") if c not in header]
            if unknown or missing or len(set(header)) != len(header):
                bad = "; ".join(
                    [f"unknown column '{c}' (allowed: {', '.join(SHEET_COLUMNS)})" for c in unknown]
                    + [f"missing column '{c}'" for c in missing]
                    + (["a column appears twice"] if len(set(header)) != len(header) else []))
                raise ReviewError(f"{path} line {line} (header): {bad}; start from a copy of results/private/review.tsv")
            continue
        row_no += 1
        if len(fields) != len(header):
            errors.append(f"{path.name} line {line} (row {row_no}): {len(fields)} field(s) for "
                          f"{len(header)} column(s); separate columns with one tab")
            continue
        row = dict(zip(header, (f.strip() for f in fields)))
        if "decision" in row:
            row["decision"] = row["decision"].lower()  # "Reject" from a spreadsheet is "reject"
        flagged: set[str] = set()
        if validator is not None:
            for err in sorted(validator.iter_errors(row), key=lambda e: list(e.path)):
                col = str(err.path[0]) if err.path else (err.message.split("'")[1] if "'" in err.message else "?")
                if col in flagged:
                    continue
                flagged.add(col)
                errors.append(f"{where(line, row_no, col)}: {err.message}")
        item = row.get("item", "")
        decision = row.get("decision", "")
        note = row.get("note", "")
        if "decision" not in flagged and decision not in DECISIONS:
            flagged.add("decision")
            errors.append(f"{where(line, row_no, 'decision')}: {decision!r} is not one of accept, reject, "
                          "default (or empty)")
        if "item" in flagged:
            continue
        if item in seen:
            l0, r0 = seen[item]
            errors.append(f"{path.name} lines {l0} and {line} (rows {r0} and {row_no}), column 'item': "
                          f"{item!r} appears twice; keep one row per item")
            continue
        seen[item] = (line, row_no)
        sheet = by_item.get(item)
        subject = row.get("subject", "")
        if subject and subject not in subjects:
            errors.append(f"{where(line, row_no, 'subject')}: unknown subject {subject!r} "
                          "(not in the review sheet results/private/review.tsv)")
            continue
        if sheet is None:
            try:
                isub = f"sub-{item_session(item)[0]}"
            except ReviewError:
                isub = ""
            if isub and isub not in subjects:
                errors.append(f"{where(line, row_no, 'item')}: unknown subject {isub!r} in item {item!r} "
                              "(not in the review sheet results/private/review.tsv)")
            else:
                errors.append(f"{where(line, row_no, 'item')}: unknown item {item!r} "
                              "(not in the review sheet results/private/review.tsv)")
            continue
        for col in ("subject", "session", "series"):
            if row.get(col) and row[col] != sheet[col]:
                errors.append(f"{where(line, row_no, col)}: {row[col]!r} does not match item {item!r} "
                              f"(the sheet says {sheet[col]!r})")
        if decision == "accept" and "decision" not in flagged:
            allowed, why = accept_allowed(sheet["verdict"], sheet.get("reasons", ""))
            if not allowed:
                errors.append(f"{where(line, row_no, 'decision')}: accept cannot override {sheet['verdict']} "
                              f"({reason_kind(sheet.get('reasons', '')) or 'withheld'}): {why}; "
                              "use reject or default")
        if decision or note:
            out[item] = (decision or "default", note)
    if errors:
        raise ReviewError(f"{path}: {len(errors)} problem(s) in the review decisions:\n  " + "\n  ".join(errors))
    return out


# ---------------------------------------------------------------------------
# Per-subject decision files (written at parse time)
# ---------------------------------------------------------------------------


def subject_decisions_path(out_dir: str | os.PathLike, subject: str) -> Path:
    """Decisions on the items of one subject (BIDS images and DICOM series): ``<out_dir>/sub-S.json``."""
    return Path(out_dir) / f"sub-{subject}.json"


def split_decisions(decisions: dict[str, tuple[str, str]], out_dir: str | os.PathLike,
                    subjects=()) -> list[Path]:
    """Write one small JSON per subject; return the files (re)written.

    Parameters
    ----------
    decisions : dict
        :func:`read_decisions` output; ``default`` decisions are left out, so a note
        without a decision reruns nothing.
    out_dir : path-like
        e.g. ``results/private/review/decisions``.
    subjects : iterable of str
        Subjects with a ``release_subject`` job: each gets its file, ``{}`` when no
        decision concerns it (so it can be a job input).

    Every file is written only when its content changes (its mtime is kept
    otherwise), so Snakemake reruns only the release jobs whose decisions changed.
    Call it when the workflow is parsed.
    """
    by_subject: dict[str, dict] = {s: {} for s in subjects}
    for item, (decision, note) in sorted(decisions.items()):
        if decision not in ("accept", "reject"):
            continue
        sub, _, _ = item_session(item)
        by_subject.setdefault(sub, {})[item] = {"decision": decision, "note": _clean(note)}
    written = []
    for sub, content in sorted(by_subject.items()):
        p = subject_decisions_path(out_dir, sub)
        if write_text_if_changed(p, json.dumps(content, indent=1, sort_keys=True) + "\n"):
            written.append(p)
    return written


def load_decisions_file(path: str | os.PathLike | None) -> dict[str, tuple[str, str]]:
    """A file written by :func:`split_decisions`, as ``{item: (decision, note)}`` (None: empty)."""
    if not path:
        return {}
    data = _read_json(Path(path))
    return {k: (v["decision"], v.get("note", "")) for k, v in data.items()}


# ---------------------------------------------------------------------------
# Applying decisions (pure)
# ---------------------------------------------------------------------------


def _record(effect: str, decision: str, verdict: str, note: str, why: str = "") -> str:
    note = _clean(note)
    if effect == "rejected":
        return f"rejected by reviewer: {note}"
    if effect == "accepted":
        if verdict in ("WARN", "FAIL"):
            return f"accepted by reviewer over {verdict}: {note}"
        return f"accepted by reviewer (automatic verdict {verdict}): {note}"
    return f"{decision} refused over {verdict}: {why}; the item stays out. Note: {note}"


def apply_decisions(names: dict, excluded: dict[str, dict[str, str]], decisions: dict[str, tuple[str, str]],
                    verdicts: dict[str, str] | None = None) -> tuple[dict[str, dict[str, str]], list[dict]]:
    """The final exclusions of one session's BIDS images after the reviewer's decisions.

    Parameters
    ----------
    names : dict
        :func:`neurodeid.release.session.name_session` output (series label -> list of
        ``{"image", "bids", ...}`` or ``{"failed": reason}``).
    excluded : dict
        The automatic exclusions: series label -> {image file -> reason}, reasons
        starting with a kind of :data:`ACCEPT_RULES` (``defacing failed: ...``,
        ``morphometry FAIL: ...``). Not modified.
    decisions : dict
        item -> (decision, note) (:func:`load_decisions_file`); items of other
        sessions are ignored.
    verdicts : dict, optional
        item -> automatic verdict, for items that are not excluded (e.g. WARN);
        default PASS.

    Returns
    -------
    (excluded, applied)
        The exclusions for :func:`neurodeid.release.session.release_session`, and one record per
        decision that concerns this session: ``{"item", "series", "image", "decision",
        "note", "verdict", "effect", "record"}`` with ``effect`` ``rejected``,
        ``accepted`` or ``refused``. ``reject`` always excludes (reason
        ``rejected by reviewer: <note>``); ``accept`` removes an exclusion only when
        :func:`accept_allowed` says so, and is otherwise ``refused`` with the reason.
    """
    verdicts = verdicts or {}
    final = {label: dict(v) for label, v in excluded.items()}
    applied: list[dict] = []
    used = set()
    for label in sorted(names):
        entries = names[label]
        if isinstance(entries, dict):  # conversion failed: nothing to release
            entries = [{"image": "", "bids": None, "failed": entries.get("failed", "")}]
        for e in entries:
            item = e["bids"]
            if item is None:  # the series-level item of a failed conversion: sub-X/ses-Y/<label>
                item = next((k for k in sorted(decisions) if not k.startswith("sourcedata/")
                             and k.count("/") == 2 and k.endswith(f"/{label}")), None)
                if item is None:
                    continue
            if item not in decisions:
                continue
            used.add(item)
            decision, note = decisions[item]
            image = e["image"]
            auto = excluded.get(label, {}).get(image) if image else f"conversion failed: {e.get('failed', '')}"
            verdict = verdicts.get(item) or ("FAIL" if auto else "PASS")
            rec = {"item": item, "series": label, "image": image, "decision": decision, "note": _clean(note),
                   "verdict": verdict}
            if decision == "reject":
                if image:
                    final.setdefault(label, {})[image] = _record("rejected", decision, verdict, note)
                rec.update(effect="rejected", record=_record("rejected", decision, verdict, note))
            elif decision == "accept":
                allowed, why = (accept_allowed(verdict, auto) if auto else (True, ""))
                if allowed and image:
                    if auto:
                        del final[label][image]
                        if not final[label]:
                            del final[label]
                    rec.update(effect="accepted", record=_record("accepted", decision, verdict, note))
                else:
                    rec.update(effect="refused", record=_record("refused", decision, verdict, note,
                                                                why or "no image exists"))
            else:
                continue
            applied.append(rec)
    for item in sorted(set(decisions) - used):
        decision, note = decisions[item]
        if decision in ("accept", "reject"):
            applied.append({"item": item, "series": "", "image": "", "decision": decision, "note": _clean(note),
                            "verdict": "WITHHELD", "effect": "refused" if decision == "accept" else "rejected",
                            "record": _record("refused" if decision == "accept" else "rejected", decision,
                                              "WITHHELD", note, "the item is not in this session's release")})
    return final, applied


def apply_dicom_decisions(series_item: str, files: list[str], decisions: dict[str, tuple[str, str]],
                          verdicts: dict[str, str] | None = None) -> tuple[list[str], list[dict]]:
    """The files of one DICOM series that enter ``release/sourcedata/dicom`` after the decisions.

    Parameters
    ----------
    series_item : str
        ``sourcedata/dicom/sub-X/ses-Y/<series>``.
    files : list of str
        File names of the folder the release copies (for a redacted series only the
        images whose redaction passed are there).
    decisions : dict
        item -> (decision, note): the series item (reject: no file of the series is
        released) or ``<series_item>/<file stem>`` (one redacted image).
    verdicts : dict, optional
        item -> automatic verdict (default RELEASED for the series, PASS for an image).

    Returns
    -------
    (files, applied)
        The files to release, and one record per decision (see :func:`apply_decisions`).
        ``accept`` on an image whose file is absent (redaction failed) is ``refused``:
        no redacted image exists.
    """
    verdicts = verdicts or {}
    keep = list(files)
    applied: list[dict] = []
    stems = {_stem(f): f for f in files}
    for item in sorted(decisions):
        if item != series_item and not item.startswith(series_item + "/"):
            continue
        decision, note = decisions[item]
        image = "" if item == series_item else item[len(series_item) + 1:]
        present = item == series_item or image in stems
        verdict = verdicts.get(item, ("RELEASED" if item == series_item else "PASS") if present else "FAIL")
        rec = {"item": item, "series": series_item.rsplit("/", 1)[-1], "image": stems.get(image, ""),
               "decision": decision, "note": _clean(note), "verdict": verdict}
        if decision == "reject":
            keep = [] if item == series_item else [f for f in keep if _stem(f) != image]
            rec.update(effect="rejected", record=_record("rejected", decision, verdict, note))
        elif decision == "accept":
            if present:
                rec.update(effect="accepted", record=_record("accepted", decision, verdict, note))
            else:
                rec.update(effect="refused", record=_record(
                    "refused", decision, verdict, note, ACCEPT_RULES["redaction FAIL"][1]))
        else:
            continue
        applied.append(rec)
    return keep, applied


def session_exclusions(names: dict, deface_results: dict[str, str | os.PathLike],
                       morphometry_dirs: dict[str, str | os.PathLike],
                       face_results: dict[str, str | os.PathLike] | None = None
                       ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], dict[str, str]]:
    """The automatic exclusions, morphometry tables and verdicts of one session's images.

    The same rules as the review sheet (:func:`image_verdict`), from the files a
    ``release_session`` job sees.

    Parameters
    ----------
    names : dict
        :func:`neurodeid.release.session.name_session` output.
    deface_results : dict
        series label -> defacing result JSON (series that are defaced).
    morphometry_dirs : dict
        series label -> folder of per-image morphometry TSVs (``<image stem>.tsv``).
    face_results : dict, optional
        series label -> face check JSON (:func:`neurodeid.deface.face.check_folder`) of a
        series that is not defaced: an image with a face, or without a decision (no
        record, a check that failed), is withheld whatever the series is called.

    Returns
    -------
    (excluded, extras, verdicts)
        series label -> {image -> reason} (defacing failed, morphometry FAIL or
        pending); series label -> {image -> morphometry TSV} for every image that has
        one (released beside the image when it is released, accepted FAILs included);
        BIDS item -> automatic verdict.
    """
    excluded: dict[str, dict[str, str]] = {}
    extras: dict[str, dict[str, str]] = {}
    verdicts: dict[str, str] = {}
    face_seen: dict[str, dict] = {}
    for label, entries in names.items():
        if not isinstance(entries, list):
            continue
        deface = None
        if label in deface_results:
            deface = by_image(_read_json(Path(deface_results[label])))
        for e in entries:
            image = e["image"]
            morph = None
            if label in morphometry_dirs:
                table = Path(morphometry_dirs[label]) / f"{_stem(image)}.tsv"
                if table.is_file():
                    rows = _read_tsv(table)
                    morph = rows[0] if rows else None
                    extras.setdefault(label, {})[image] = str(table)
            defaced = deface is not None
            verdict, why = image_verdict(defaced, deface.get(image) if defaced else None, morph)
            if label in (face_results or {}) and not defaced:
                if label not in face_seen:
                    fpath = Path(face_results[label])
                    face_seen[label] = by_image(_read_json(fpath)) if fpath.is_file() else {}
                verdict, why = face_check_verdict(face_seen[label].get(image))
            verdicts[e["bids"]] = verdict
            if verdict in ("FAIL", "WITHHELD"):
                excluded.setdefault(label, {})[image] = why
    return excluded, extras, verdicts


def write_applied(path: str | os.PathLike, applied: list[dict]) -> None:
    """The decisions a release job applied, as private JSON (read by the report and the log)."""
    write_text_atomic(path, json.dumps(applied, indent=1, sort_keys=True) + "\n")


def read_applied(paths) -> list[dict]:
    """Every record of the files written by :func:`write_applied` (missing files skipped)."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            out.extend(_read_json(p))
    return sorted(out, key=lambda r: r["item"])


# ---------------------------------------------------------------------------
# What is released, and the changelog
# ---------------------------------------------------------------------------


def _listing_files(paths) -> list[tuple[str, str]]:
    """``(file, sha256)`` of every existing listing (:func:`neurodeid.release.dataset.read_listing`)."""
    return [f for p in paths if Path(p).is_file() for f in read_listing(p)[0]]


def released_items(listing_paths, sheet_items=None) -> set[str]:
    """Items released according to the private listings (``private/released/**.tsv``).

    A released file counts for the item named by its path without extension when
    that is an item of the sheet (``sheet_items``), else for its folder (a DICOM
    series). Derivatives (NRRD copies, morphometry tables) and sidecars count for
    nothing on their own. Without ``sheet_items``: NIfTI images by their stem, DICOM
    files by their series folder.
    """
    items = set()
    sheet = set(sheet_items) if sheet_items is not None else None
    for f, _ in _listing_files(listing_paths):
        if f.startswith("derivatives/"):
            continue
        if f.startswith("sourcedata/dicom/"):
            stem, folder = _stem(f), f.rsplit("/", 1)[0]
            if sheet is not None and stem in sheet:
                items.add(stem)
            elif sheet is None or folder in sheet:
                items.add(folder)
        elif f.endswith((".nii.gz", ".nii")):
            items.add(_stem(f))
    return items


def subjects_with_items(listing_paths) -> list[str]:
    """Participants (``sub-<label>``) with at least one released file, sorted.

    For ``participants.tsv``: a subject all of whose items were rejected or withheld
    has no released file and is left out.
    """
    subs = set()
    for f, _ in _listing_files(listing_paths):
        parts = f.split("/")
        for part in parts:
            if part.startswith("sub-"):
                subs.add(part)
                break
    return sorted(subs)


def release_run_id(listing_paths) -> str:
    """A deterministic id of the release's state: ``r`` + 12 hex digits.

    The sha256 of the sorted ``file<TAB>sha256`` lines of every listing: the same
    released bytes give the same id on every rerun and machine (no clock involved);
    any file entering, leaving or changing gives a new one. An id can repeat when a
    release returns to an earlier state (e.g. a reject undone); the log's order of
    lines is the order of the runs.
    """
    lines = sorted(f"{f}\t{sha}" for f, sha in _listing_files(listing_paths))
    return "r" + hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:12]


def read_release_log(log_tsv: str | os.PathLike) -> list[dict]:
    """Rows of ``release_log.tsv`` (empty when it does not exist yet)."""
    p = Path(log_tsv)
    return _read_tsv(p) if p.is_file() else []


def released_items_from_log(log_tsv: str | os.PathLike) -> set[str]:
    """The items released after the last logged run (replaying entered/left)."""
    items: set[str] = set()
    for r in read_release_log(log_tsv):
        if r["change"] == "entered":
            items.add(r["item"])
        elif r["change"] == "left":
            items.discard(r["item"])
    return items


def update_release_log(log_tsv: str | os.PathLike, run_id: str, released_before: set | None,
                       released_now: set, decisions: dict | None = None,
                       verdicts: dict | None = None) -> list[dict]:
    """Append to ``release_log.tsv`` the items that entered or left the release at this run.

    Parameters
    ----------
    log_tsv : path-like
        ``results/private/release_log.tsv`` (created with its header when missing;
        rewritten atomically with the new rows at the end).
    run_id : str
        :func:`release_run_id` of the release now.
    released_before : set or None
        Items released before this run; None: replayed from the log itself
        (:func:`released_items_from_log`).
    released_now : set
        Items released now (:func:`released_items`).
    decisions : dict, optional
        item -> (decision, note): recorded beside each change.
    verdicts : dict, optional
        item -> automatic verdict (from the review sheet).

    Returns
    -------
    list of dict
        The rows appended (columns :data:`LOG_COLUMNS`), sorted by change then item;
        none when nothing entered or left (the log is then left untouched).
    """
    decisions = decisions or {}
    verdicts = verdicts or {}
    if released_before is None:
        released_before = released_items_from_log(log_tsv)
    rows = []
    for change, items in (("left", released_before - released_now), ("entered", released_now - released_before)):
        for item in sorted(items):
            d, note = decisions.get(item, ("default", ""))
            rows.append({"run": run_id, "item": item, "change": change, "verdict": verdicts.get(item, ""),
                         "decision": d or "default", "note": _clean(note)})
    if not rows:
        return rows
    p = Path(log_tsv)
    old = p.read_text(encoding="utf-8") if p.is_file() else "\t".join(LOG_COLUMNS) + "\n"
    if not old.endswith("\n"):
        old += "\n"
    new = "".join("\t".join(_clean(r[c]) for c in LOG_COLUMNS) + "\n" for r in rows)
    write_text_atomic(p, old + new)
    return rows


# ---------------------------------------------------------------------------
# For the report
# ---------------------------------------------------------------------------

#: Headers of :func:`report_tables`.
DECISION_HEADER = ("item", "automatic verdict", "reasons", "decision", "effect", "note")
CHANGELOG_HEADER = ("run", "item", "change", "automatic verdict", "decision", "note")


def report_tables(private_dir: str | os.PathLike) -> dict[str, list[list[str]]]:
    """The review's tables for the report, from ``private_dir`` (no reviewer's name is ever kept).

    Returns
    -------
    dict
        ``"decisions"``: one row per decision the release jobs applied, for items of
        the current review sheet (columns :data:`DECISION_HEADER`: the automatic
        verdict and its reasons beside the decision, its effect ``rejected`` /
        ``accepted`` / ``refused`` and the note); ``"changelog"``: the rows of
        ``release_log.tsv``, newest run first, in file order within a run (columns
        :data:`CHANGELOG_HEADER`). Missing files give empty tables.
    """
    lay = Layout(os.fspath(private_dir))
    sheet_path = Path(lay.private_file("review.tsv"))
    sheet = {r["item"]: r for r in read_sheet(sheet_path)} if sheet_path.is_file() else {}
    applied = read_applied(sorted(Path(lay.subject_folder("applied")).rglob("*.json")))
    decisions = [[a["item"], sheet.get(a["item"], {}).get("verdict", a.get("verdict", "")),
                  sheet.get(a["item"], {}).get("reasons", ""), a["decision"], a["effect"], a["note"]]
                 for a in applied if not sheet or a["item"] in sheet]
    log = read_release_log(lay.private_file("release_log.tsv"))
    blocks: list[list[dict]] = []  # one block per run, in file order (an id may repeat)
    for r in log:
        if not blocks or blocks[-1][0]["run"] != r["run"]:
            blocks.append([])
        blocks[-1].append(r)
    changelog = [[r["run"], r["item"], r["change"], r["verdict"], r["decision"], r["note"]]
                 for block in reversed(blocks) for r in block]
    return {"decisions": decisions, "changelog": changelog}
