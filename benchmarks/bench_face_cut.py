"""Benchmark: the defacing check with the removed surface drawn flat, and the share of the
original's face a defacing leaves (issue #18: the detector scored the inside of a carved
head, its sinuses and orbits, as a face, and withheld defacings that had removed the face).

Per face-bearing corpus item (``tests/headcorpus.py``; default: the three real heads as
built, ``--all``: every face-bearing item), each method of
:data:`bench_face_detectors.METHODS` defaces it with the face check off, and the defaced
volume is checked against the original as the defacing check does (the original's frame,
:data:`~neurodeid.deface.face.SURFACE_LEVELS`):

- ``plain``: best HOG score on the defaced renders as rendered;
- ``flat``: the same with the surface the removal exposed drawn flat
  (:func:`neurodeid.deface.face.flatten_removed`, what the check now judges);
- ``kept``: the share of the original's face box the defaced volume still shows, in the
  view where it is smallest (:func:`neurodeid.deface.face.skin_kept`).

For the real heads as built, the template removal is also applied in part (only below or
only above 20, 35 and 50 % of its height range: the upper or the lower face left), as in
``bench_face_views.py``: defacings the check must refuse (a face detected, or more than
:data:`~neurodeid.deface.face.MAX_SKIN_KEPT` of the face left).

Usage: python benchmarks/bench_face_cut.py [--all] [--only NAME ...]
Writes ``benchmarks/results/face_cut_<date>[b-h].md`` and a JSON of the rows.
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
from _record import write_dated  # noqa: E402
from bench_face_detectors import defacings  # noqa: E402
from bench_face_views import partial_volumes  # noqa: E402

from neurodeid.deface import face  # noqa: E402


def judge(vol: np.ndarray, h: hc.Head, before) -> dict:
    """Plain and flat best scores and the face left of ``vol`` against ``before``."""
    plain = face.check_volume(vol, h.affine, reference=before, embeddings=False,
                              flat_removed=False)
    flat = face.check_volume(vol, h.affine, reference=before, embeddings=False)
    kept = flat.skin_kept
    return {"plain": round(plain.best_score, 3), "flat": round(flat.best_score, 3),
            "flat_view": list(flat.best_view), "kept": None if kept is None else round(kept, 3),
            "refused": bool(flat.face or (kept is not None and kept > face.MAX_SKIN_KEPT))}


def run_item(h: hc.Head) -> dict:
    before = face.check_volume(h.data, h.affine, embeddings=False)
    row = {"name": h.name, "face_before": round(before.best_score, 3), "methods": {}}
    for m, s, after in defacings(h):
        if after is None:
            row["methods"][m] = {"failed": str(s).split(": ", 2)[-1][:160]}
            continue
        row["methods"][m] = judge(after, h, before)
        if m == "template" and "/" not in h.name:
            row["partial"] = {k: judge(part, h, before)
                              for k, part in partial_volumes(h, after)}
    return row


def write_record(rows: list[dict], wall: float, args) -> Path:
    day = dt.date.today().isoformat()
    u = platform.uname()
    thr, mk = face.FACE_SCORE_THRESHOLD, face.MAX_SKIN_KEPT
    lines = [f"# Defacing check: removed surface drawn flat, face left ({day})", "",
             f"- machine: {u.system} {u.release} {u.machine}, {os.cpu_count()} cores (shared)",
             f"- command: `python benchmarks/bench_face_cut.py{' --all' if args.all else ''}`; "
             f"wall {wall / 60:.1f} min",
             f"- face threshold {thr}, views {len(face.DEFAULT_VIEWS)}, levels "
             f"{face.SURFACE_LEVELS}, cut margin {face.CUT_MARGIN_MM} mm, max face left {mk}",
             "", "## Defacings by each method (face check off while defacing)", "",
             "| method | defaced | face left on the renders as rendered | with the removed "
             "surface flat | face kept > max | refused (flat face or kept > max) |",
             "|---|---:|---:|---:|---:|---:|"]
    methods = sorted({m for r in rows for m in r["methods"]})
    for m in methods:
        done = [r["methods"][m] for r in rows if "plain" in r["methods"].get(m, {})]
        lines.append(f"| {m} | {len(done)} | {sum(d['plain'] > thr for d in done)} | "
                     f"{sum(d['flat'] > thr for d in done)} | "
                     f"{sum((d['kept'] or 0) > mk for d in done)} | "
                     f"{sum(d['refused'] for d in done)} |")
    lines += ["", "| item | method | plain | flat (view) | kept |", "|---|---|---:|---|---:|"]
    for r in rows:
        for m, d in r["methods"].items():
            if "failed" in d:
                lines.append(f"| {r['name']} | {m} | failed: {d['failed'][:90]} | | |")
                continue
            lines.append(f"| {r['name']} | {m} | {d['plain']:.2f} | {d['flat']:.2f} "
                         f"{tuple(d['flat_view'])} | {d['kept'] if d['kept'] is not None else ''} |")
    parts = [(r["name"], k, d) for r in rows for k, d in (r.get("partial") or {}).items()]
    if parts:
        lines += ["", "## The template removal applied in part (must be refused)", "",
                  f"refused {sum(d['refused'] for _, _, d in parts)} of {len(parts)}; "
                  f"detected as rendered (plain) {sum(d['plain'] > thr for _, _, d in parts)}, "
                  f"with the removed surface flat {sum(d['flat'] > thr for _, _, d in parts)}, "
                  f"face left > {mk} {sum((d['kept'] or 0) > mk for _, _, d in parts)}", "",
                  "| head | part applied | plain | flat | kept | refused |",
                  "|---|---|---:|---:|---:|---|"]
        for name, k, d in parts:
            lines.append(f"| {name} | {k} | {d['plain']:.2f} | {d['flat']:.2f} | {d['kept']} | "
                         f"{'yes' if d['refused'] else '**no**'} |")
    return write_dated("face_cut", lines, rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="every face-bearing corpus item")
    ap.add_argument("--only", nargs="*", help="corpus item names to run")
    args = ap.parse_args()
    t0 = time.perf_counter()
    items = hc.corpus() if args.all or args.only else hc.load_sources()
    rows = []
    for h in items:
        if not h.face_expected or (args.only and h.name not in args.only):
            continue
        rows.append(run_item(h))
        print(json.dumps(rows[-1]), flush=True)
    write_record(rows, time.perf_counter() - t0, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
