"""What is released run by run: the release log (``private/release_log.tsv``) and the
review's tables for the report."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..fileio import write_text_atomic
from ..layout import Layout
from ..records import tsv_text
from ..release.dataset import read_listing
from .decisions import read_applied
from .sheet import read_sheet
from .verdicts import LOG_COLUMNS, _clean, _read_tsv, _stem


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
    new = tsv_text(LOG_COLUMNS, [{c: _clean(r[c]) for c in LOG_COLUMNS} for r in rows], header=False)
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
