"""The reviewer's decisions: read and checked against the sheet, split per subject, and
applied where the release is assembled (pure functions)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from ..fileio import write_text_atomic, write_text_if_changed
from ..results import Check, Release, by_image, read_stage_result
from .verdicts import (ACCEPT_RULES, DECISIONS, SHEET_COLUMNS, ReviewError, _clean, _read_json, _read_tsv, _stem,
                       accept_allowed, image_verdict, item_session, read_face_result, reason_kind)


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
        if verdict in (Check.WARN, Check.FAIL):
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
            verdict = verdicts.get(item) or (Check.FAIL if auto else Check.PASS)
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
                            "verdict": Release.WITHHELD, "effect": "refused" if decision == "accept" else "rejected",
                            "record": _record("refused" if decision == "accept" else "rejected", decision,
                                              Release.WITHHELD, note, "the item is not in this session's release")})
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
        verdict = verdicts.get(item, (Release.RELEASED if item == series_item else Check.PASS) if present
                               else Check.FAIL)
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
            deface = by_image(read_stage_result(deface_results[label], "deface", ReviewError))
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
            face_checked = label in (face_results or {}) and not defaced
            if face_checked and label not in face_seen:
                face_seen[label] = by_image(read_face_result(face_results[label]))
            verdict, why = image_verdict(defaced, deface.get(image) if defaced else None, morph,
                                         face_checked=face_checked,
                                         face=face_seen[label].get(image) if face_checked else None)
            verdicts[e["bids"]] = verdict
            if verdict in (Check.FAIL, Release.WITHHELD):
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
