"""Benchmark: how much of the face region each defacing method leaves on the head corpus
(issue #18: sets ``max_face_kept_fraction``, see :class:`neurodeid.deface.params.DefaceParams`).

Every face-bearing corpus item (``tests/headcorpus.py``) is defaced by each method of
:data:`bench_face_detectors.METHODS` alone, with that check off (``max_face_kept_fraction:
null``) and the face check off while defacing; then the defaced volume gets the face check
the workflow would give it (renders against the original's, no embeddings). Per item and
method: head tissue in the registered template's face region (``face_region_ml``), the part
left (``face_region_kept_ml``), head tissue removed, the face score after and whether any
other check failed.

Writes ``benchmarks/results/face_region_<date>.md`` and ``.json``.

Usage: python benchmarks/bench_face_region.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import headcorpus as hc  # noqa: E402
from bench_face_detectors import METHODS, defacings  # noqa: E402

from neurodeid.deface import face  # noqa: E402
from neurodeid.deface.params import DefaceParams  # noqa: E402


def run_item(h: hc.Head) -> dict:
    row = {"name": h.name}
    before = face.check_volume(h.data, h.affine, embeddings=False)
    for m, result, after in defacings(h, {"max_face_kept_fraction": None}):
        if after is None:
            row[m] = {"failed": str(result).split(": ", 2)[-1][:120]}
            continue
        chk = face.check_volume(after, h.affine, reference=before, embeddings=False)
        row[m] = {"region_ml": result["face_region_ml"], "kept_ml": result["face_region_kept_ml"],
                  "removed_ml": result["removed_ml"], "face_after": chk.face,
                  "score_after": round(chk.best_score, 3)}
    return row


def write_record(rows: list[dict], wall: float, limit: float) -> Path:
    day = dt.date.today().isoformat()
    u = platform.uname()
    lines = [f"# Face region left by each defacing method on the head corpus ({day})", "",
             f"- machine: {u.system} {u.release} {u.machine}, {os.cpu_count()} cores (shared)",
             f"- command: `python benchmarks/bench_face_region.py`; wall {wall / 60:.1f} min",
             f"- {len(rows)} face-bearing corpus items; each method alone, "
             "`max_face_kept_fraction: null`, face check after defacing as the workflow's",
             f"- kept = head tissue left in the registered template's face region (face mask "
             f">= 0.5 within the face frame) / head tissue there before; the default limit is "
             f"{limit:.0%}", "",
             "| item | " + " | ".join(f"{m}: kept / region ml (%), removed ml, face after"
                                      for m in METHODS) + " |",
             "|---|" + "---|" * len(METHODS)]
    fracs: dict[str, list] = {m: [] for m in METHODS}
    for r in rows:
        cells = []
        for m in METHODS:
            v = r[m]
            if "failed" in v:
                cells.append(f"failed: {v['failed']}")
                continue
            f = v["kept_ml"] / v["region_ml"] if v["region_ml"] else 0.0
            fracs[m].append((f, v["face_after"], r["name"]))
            mark = " **over the limit**" if f > limit else ""
            cells.append(f"{v['kept_ml']:.1f} / {v['region_ml']:.1f} ({f:.0%}){mark}, "
                         f"{v['removed_ml']:.1f}, {'face' if v['face_after'] else 'no face'} "
                         f"({v['score_after']:.2f})")
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    lines += ["", "| method | defaced | kept: median | max with no face after | over the limit "
              "(no face after) |", "|---|---:|---:|---:|---|"]
    for m in METHODS:
        fs = fracs[m]
        clean = [f for f, fa, _ in fs if not fa]
        over = [f"{n} {f:.0%}" for f, fa, n in fs if f > limit and not fa]
        med = f"{np.median([f for f, _, _ in fs]):.0%}" if fs else "-"
        lines.append(f"| {m} | {len(fs)} | {med} | "
                     f"{max(clean) if clean else 0:.0%} | {', '.join(over) or '-'} |")
    out = ROOT / "benchmarks" / "results" / f"face_region_{day}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="corpus item names to run")
    args = ap.parse_args()
    rows, t0 = [], time.perf_counter()
    for h in hc.corpus():
        if not h.face_expected or (args.only and h.name not in args.only):
            continue
        rows.append(run_item(h))
        print(json.dumps(rows[-1]), flush=True)
    print(write_record(rows, time.perf_counter() - t0, DefaceParams().max_face_kept_fraction))
    return 0


if __name__ == "__main__":
    sys.exit(main())
