"""The review's vocabulary and the automatic verdict of one item (pure functions)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..layout import released_dicom_series
from ..records import read_json, read_tsv
from ..results import Check, Release, StageResult, StageStatus, passed, read_stage_result


# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

#: Automatic verdicts, in the order of the checks' severity (see the module docstring).
VERDICTS = (Check.PASS, Check.WARN, Check.FAIL, Release.WITHHELD, Release.RELEASED)

#: A review verdict: a check's, or (no check judged the item) the release's.
Verdict = Check | Release

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


def _read_tsv(path: Path) -> list[dict]:
    return read_tsv(path, ReviewError)


def _read_json(path: Path):
    return read_json(path, ReviewError)


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------


def reason_kind(reasons: str) -> str:
    """The kind of an automatic reason: the text before its first colon (``""`` when none)."""
    return reasons.split(":", 1)[0].strip() if reasons else ""


def accept_allowed(verdict: Verdict | str, reasons: str) -> tuple[bool, str]:
    """Whether ``accept`` can release an item with this automatic verdict, and why (not).

    PASS, RELEASED and WARN items are released anyway (accept only records the
    review); FAIL and WITHHELD items follow :data:`ACCEPT_RULES` by the kind of
    their reason; a kind the table does not list is refused.
    """
    if verdict in (Check.PASS, Release.RELEASED, Check.WARN):
        return True, "released anyway; accept records that a reviewer looked"
    kind = reason_kind(reasons)
    if verdict == Release.WITHHELD and kind not in ACCEPT_RULES:
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


def face_check_verdict(record: dict | None) -> tuple[Release, str]:
    """Automatic ``(verdict, reasons)`` of a converted image that is not defaced, from its
    face check (an entry of :func:`neurodeid.deface.face.check_folder`; None: no record):
    RELEASED only when the check ran and saw no face."""
    if record is None:
        return Release.WITHHELD, "face check pending: no face check of this image"
    if record.get("status") == StageStatus.OK:
        return Release.RELEASED, ""
    return Release.WITHHELD, _clean(record.get("reason", "")) or "face check: no decision"


def read_face_result(face_result: str | os.PathLike) -> StageResult | None:
    """A series' face check result (None when the series has none)."""
    path = Path(face_result)
    return read_stage_result(path, "face", ReviewError) if path.is_file() else None


def dicom_face_reason(face_result: str | os.PathLike) -> str:
    """Why a series' de-identified DICOM must not leave as acquired: a face seen (or no
    decision) on the renders of one of its converted images (``''`` when none, or when the
    series has no face check record). :func:`face_record_reason` of the file's record."""
    return face_record_reason(read_face_result(face_result))


def face_record_reason(record: StageResult | None) -> str:
    """:func:`dicom_face_reason` of a face check result already read (None: no result)."""
    for r in (record.images if record else []):
        if r.get("status") != StageStatus.OK:
            return f"its converted image {r.get('image', '')}: {_clean(r.get('reason', ''))}"
    return ""


def screened_face(text_result: StageResult) -> bool:
    """The text stage's face screen withheld the series (a face, or a screen that could not
    run): its ``measures["face_screen"]`` record, never its prose. Files it could not read
    are withheld one by one with their own reason."""
    fs = text_result.measures.get("face_screen") or {}
    return bool(fs) and fs.get("face") is not False


def image_verdict(defaced: bool, deface: dict | None, morphometry: dict | None, *,
                  face_checked: bool = False, face: dict | None = None) -> tuple[Verdict, str]:
    """Automatic ``(verdict, reasons)`` of one converted BIDS image: whether it may be
    released, from the plan's flags and its stages' results. The review sheet and the
    release job (:func:`neurodeid.review.session_exclusions`) both decide here.

    Parameters
    ----------
    defaced : bool
        The plan defaces this image (a head volume).
    deface : dict or None
        The image's entry of the defacing result (``status`` ``ok``/``failed``,
        ``reason``); None when defacing has not run.
    morphometry : dict or None
        The image's morphometry row (``verdict``, ``reasons``); None when the check
        has not run.
    face_checked : bool
        The image is not defaced and its series is checked for a face instead: the face
        check decides (:func:`face_check_verdict`).
    face : dict or None
        The image's entry of the face check result; None when it has none.
    """
    if face_checked and not defaced:
        return face_check_verdict(face)
    if not defaced:
        return Release.RELEASED, ""
    if deface is None:
        return Release.WITHHELD, "defacing pending: defacing has not run (or deface.enabled is off)"
    if not passed(deface.get("status")):
        why = _clean(deface.get("reason", ""))
        image = str(deface.get("image", ""))
        if image and why.startswith(f"{image}: "):  # the image is named once, by the caller
            why = why[len(image) + 2:]
        return Check.FAIL, f"defacing failed: {why}"
    if morphometry is None:
        return Release.WITHHELD, "morphometry pending: the morphometry check has not run"
    v = str(morphometry.get("verdict", "")).strip().upper()
    why = _clean(morphometry.get("reasons", ""))
    if v == Check.PASS:
        return Check.PASS, ""
    if v in (Check.WARN, Check.FAIL):
        return Check(v), f"morphometry {v}: {why}"
    return Check.FAIL, "morphometry FAIL: the morphometry table has no verdict"
