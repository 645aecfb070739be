"""The review sheet (``private/review.tsv``): one row per released or withheld item with
its automatic verdict, reasons and QC pictures, read from the run's records."""

from __future__ import annotations

import os
from pathlib import Path

from ..fileio import write_text_if_changed
from ..plan import DICOM_NONE
from ..records import RunRecords, SeriesRecords, tsv_text
from ..results import Check, Release, StageStatus, by_image, qc_pictures
from .verdicts import (SHEET_COLUMNS, ReviewError, _clean, _read_tsv, _stem, dicom_series_item, face_record_reason,
                       image_verdict, screened_face)


# ---------------------------------------------------------------------------
# The review sheet
# ---------------------------------------------------------------------------


def _qc(rec: RunRecords, s: SeriesRecords, stage: str, entry) -> str:
    """The sheet's ``qc`` column: the pictures a stage result or one of its entries lists
    (:func:`neurodeid.results.qc_pictures`), relative to the private folder."""
    return " ".join(p.relative_to(rec.private).as_posix() for p in qc_pictures(s.qc_dir(stage), entry))


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

    for s in rec.series():
        p = s.plan
        sub, ses, series = p.subject, p.session, p.series
        # -- BIDS images of a converted series --------------------------------
        if p.convert:
            entry = s.names
            defaced = p.deface
            if entry is None:
                add(sub, ses, series, f"sub-{sub}/ses-{ses}/{series}", Release.WITHHELD,
                    "conversion pending: not converted or named yet")
            elif isinstance(entry, dict):
                add(sub, ses, series, f"sub-{sub}/ses-{ses}/{series}", Check.FAIL,
                    f"conversion failed: {entry.get('failed', '')}")
            else:
                deface = by_image(s.deface) if defaced else {}
                faces = {} if defaced else by_image(s.face)
                morph = s.morphometry
                for e in entry:
                    image = e["image"]
                    # not defaced: released only without a face
                    verdict, why = image_verdict(defaced, deface.get(image) if deface else None,
                                                 morph.get(image) if deface else None, face_checked=not defaced,
                                                 face=faces.get(image))
                    qc = _qc(rec, s, "deface", deface.get(image)) if defaced else _qc(rec, s, "face", faces.get(image))
                    add(sub, ses, series, e["bids"], verdict, why, qc)
        # -- de-identified DICOM: one series, or one item per redacted image -----
        item = dicom_series_item(sub, ses, series)
        if p.dicom == DICOM_NONE:  # an image of a BIDS input: there is no DICOM
            continue
        text = s.text  # the text stage's result (issue 19)
        mode = text.measures.get("mode") if text else None
        if not p.release_dicom:
            add(sub, ses, series, item, Release.WITHHELD, f"withheld: {p.withheld_reason}")
        elif mode == "screen" and text.status != Check.PASS:
            add(sub, ses, series, item, Release.WITHHELD, f"burned-in text: {_clean(text.reason)}")
        elif text is not None and screened_face(text):
            add(sub, ses, series, item, Release.WITHHELD, f"a face: {_clean(text.reason)}",
                _qc(rec, s, "redact", text))
        elif pixel_cleaning.get((sub, ses, series)) or mode == "read":
            if text is None:
                add(sub, ses, series, item, Release.WITHHELD, "redaction pending: burned-in text redaction has not run")
                continue
            for f in text.files:
                ok = f.get("status") == Check.PASS
                why = "" if ok else "redaction FAIL: " + "; ".join(_clean(x) for x in f.get("reasons", []))
                add(sub, ses, series, f"{item}/{_stem(f['file'])}", Check.PASS if ok else Check.FAIL, why,
                    _qc(rec, s, "redact", f))
        elif p.dicom == "deface_dicom":
            res = s.deface_dicom
            if res is None:
                add(sub, ses, series, item, Release.WITHHELD, "defaced DICOM pending: not written yet")
            elif res.status == StageStatus.OK:
                add(sub, ses, series, item, Check.PASS, "rewritten with the defaced pixels")
            else:
                add(sub, ses, series, item, Release.WITHHELD, f"defaced DICOM withheld: {_clean(res.reason)}")
        elif face := face_record_reason(s.face):  # the record read above, if any
            add(sub, ses, series, item, Release.WITHHELD, f"a face: {face}",
                " ".join(filter(None, (_qc(rec, s, "face", e) for e in s.face.images))))
        else:
            add(sub, ses, series, item, Release.RELEASED)
    rows.sort(key=lambda r: (r["subject"], r["session"], r["series"], r["item"]))
    return rows


def sheet_text(rows: list[dict]) -> str:
    """The review sheet as TSV text (header and one line per row)."""
    return tsv_text(SHEET_COLUMNS, [{c: _clean(r.get(c, "")) for c in SHEET_COLUMNS} for r in rows])


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
