"""The quarantine list: every input file that did not make it, with the stage and the reason.

Gathers the index's list (not DICOM, DICOMDIR, unreadable, duplicate) and the
per-series reports of later stages (a file that could not be de-identified)
into one private table, ``private/quarantine.tsv``, for the user and the report.
"""

from __future__ import annotations

import os

from .records import read_tsv, write_tsv
from .results import Check, StageStatus, read_stage_result

COLUMNS = ("file", "status", "stage", "reason")


def _rows(path, stage: str, status_ok: str | None = None):
    for row in read_tsv(path):
        if status_ok is not None and row.get("status") == status_ok:
            continue
        yield {
            "file": row.get("file") or row.get("source", ""),
            "status": row.get("status", ""),
            "stage": stage,
            "reason": row.get("reason", ""),
        }


def _redact_rows(path):
    from pathlib import Path

    series = Path(path).relative_to(Path(path).parents[2]).with_suffix("").as_posix()
    for f in read_stage_result(path, "redact").files:
        if f["status"] != Check.PASS:
            yield {"file": f"{series}/{f['file']} (de-identified)", "status": StageStatus.WITHHELD, "stage": "redact",
                   "reason": "; ".join(f.get("reasons", [])) or "verification failed"}


def gather(index_quarantine: str | os.PathLike, deid_reports=(), redact_results=()) -> list[dict]:
    """Rows of every file that did not make it, from the index and the later stages."""
    rows = list(_rows(index_quarantine, "index"))
    for rep in deid_reports:
        rows.extend(_rows(rep, "deid", status_ok=StageStatus.OK))
    for res in redact_results:
        rows.extend(_redact_rows(res))
    return sorted(rows, key=lambda r: (r["file"], r["stage"]))


def write_quarantine(out: str | os.PathLike, rows: list[dict]) -> None:
    """Write the quarantine report: one row per file (:data:`COLUMNS`)."""
    write_tsv(out, COLUMNS, rows)
