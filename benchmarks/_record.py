"""Where a benchmark writes its record: ``benchmarks/results/<stem>_<date>[b-h].md`` and
its rows as JSON next to it, never over an earlier record of the same day."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_dated(stem: str, lines: list[str], rows) -> Path:
    """Write ``lines`` as the day's next free record of ``stem`` and ``rows`` as its JSON;
    prints and returns the Markdown path."""
    day = dt.date.today().isoformat()
    out = RESULTS / f"{stem}_{day}.md"
    for tag in "bcdefgh":
        if not out.exists():
            break
        out = RESULTS / f"{stem}_{day}{tag}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(out)
    return out
