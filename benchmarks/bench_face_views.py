"""Benchmark: the face check's HOG scores per view, and rules that weigh views differently
(issue #18: are the false faces of skull-stripped brains and carved defacings a matter of
one view?).

Per corpus item (``tests/headcorpus.py``) the HOG score of every render is kept:

- ``screen``: the item as built, at :data:`~neurodeid.deface.face.SCREENING_LEVELS`;
- face-bearing items, each method of :data:`bench_face_detectors.METHODS` with the face
  check off: the defaced item at :data:`~neurodeid.deface.face.SURFACE_LEVELS`, in the
  original's frame (as the defacing check renders it);
- the real heads as built (no ``/`` in the name), ``partial``: the template removal applied
  only below a height (20, 35, 50 % of its range: the upper face is left) or only above it
  (the lower face is left): defacings a check must not pass.

A rule decides "face" from ``(yaw, pitch, level, score)`` of the renders; the record gives,
per rule, faces found on the face-bearing items, false faces on the face-free ones, defaced
items with a face left, and the partial defacings the rule would pass.

Usage: python benchmarks/bench_face_views.py [--from-json FILE]
(``--from-json``: re-read the per-view scores of an earlier run instead of rendering.)
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

PARTIAL_FRACTIONS = (0.2, 0.35, 0.5)


def per_view(chk) -> list[list]:
    """``[yaw, pitch, level, score]`` of every render of a face check (score None: nothing)."""
    return [[d.yaw, d.pitch, d.level, round(d.score, 3) if np.isfinite(d.score) else None]
            for d in chk.detections]


def partial_volumes(h: hc.Head, defaced: np.ndarray):
    """The removal of ``defaced`` applied in part: yields ``(name, volume)`` with the
    removal only below (``below<f>``) or only above (``above<f>``) the fraction ``f`` of
    its superior-inferior range, for each of :data:`PARTIAL_FRACTIONS`."""
    idx = np.argwhere(defaced != h.data)
    z = (h.affine @ np.c_[idx, np.ones(len(idx))].T)[2]  # RAS+ mm, superior
    for f in PARTIAL_FRACTIONS:
        cut = z.min() + f * (z.max() - z.min())
        for side, sel in (("below", z < cut), ("above", z >= cut)):
            part = h.data.copy()
            ii = tuple(idx[sel].T)
            part[ii] = defaced[ii]
            yield f"{side}{f}", part


def partial_defacings(h: hc.Head, defaced: np.ndarray, before) -> dict:
    """Per-view scores of the template removal applied in part (see the module docstring)."""
    return {k: per_view(face.check_volume(part, h.affine, reference=before, embeddings=False))
            for k, part in partial_volumes(h, defaced)}


def run_item(h: hc.Head) -> dict:
    chk = face.check_volume(h.data, h.affine, levels=face.SCREENING_LEVELS, embeddings=False)
    row = {"name": h.name, "face_expected": h.face_expected, "screen": per_view(chk)}
    if not h.face_expected:
        return row
    before = face.check_volume(h.data, h.affine, embeddings=False)
    for m, _, d in defacings(h):
        if d is None:
            row[m] = None
            continue
        row[m] = per_view(face.check_volume(d, h.affine, reference=before, embeddings=False))
        if m == "template" and "/" not in h.name:
            row["partial"] = partial_defacings(h, d, before)
    return row


def rules() -> dict:
    """Name -> rule(yaw, pitch, level, score) -> face."""
    t = face.FACE_SCORE_THRESHOLD
    out = {f"any view > {t} (the face check)": lambda y, p, l, s: s > t}
    for t40 in (-0.3, -0.2, -0.1, 0.0, 0.2):
        out[f"pitch -40 views need > {t40}"] = (
            lambda t40: lambda y, p, l, s: s > (t40 if p == -40 else t))(t40)
    out["pitch -40 views ignored"] = lambda y, p, l, s: p != -40 and s > t
    for ta in (-0.3, -0.2, 0.0):
        out[f"any view > {ta}"] = (lambda ta: lambda y, p, l, s: s > ta)(ta)
    return out


def _face(views, rule) -> bool:
    return any(s is not None and rule(y, p, l, s) for y, p, l, s in views)


def write_record(rows: list[dict], wall: float | None, source: str) -> Path:
    day = dt.date.today().isoformat()
    pos = [r for r in rows if r["face_expected"]]
    neg = [r for r in rows if not r["face_expected"]]
    parts = [(r["name"], k, v) for r in pos for k, v in (r.get("partial") or {}).items()]
    u = platform.uname()
    lines = [f"# Face check: HOG scores per view on the head corpus ({day})", "",
             f"- machine: {u.system} {u.release} {u.machine}, {os.cpu_count()} cores (shared)",
             f"- command: `python benchmarks/bench_face_views.py` ({source}"
             + (f"; wall {wall / 60:.1f} min" if wall else "") + ")",
             f"- {len(rows)} corpus items ({len(pos)} face-bearing, {len(neg)} face-free); "
             f"{len(parts)} partial defacings of the real heads", "",
             "| rule | faces found | false faces | "
             + " | ".join(f"{m}: face left" for m in METHODS)
             + " | some method clean | partial defacings passed |",
             "|---|---:|---:|" + "---:|" * len(METHODS) + "---:|---|"]
    for name, rule in rules().items():
        left = []
        for m in METHODS:
            done = [r[m] for r in pos if r.get(m) is not None]
            left.append(f"{sum(_face(v, rule) for v in done)} / {len(done)}")
        clean = sum(any(r.get(m) is not None and not _face(r[m], rule) for m in METHODS)
                    for r in pos)
        passed = [f"{n} {k}" for n, k, v in parts if not _face(v, rule)]
        lines.append(f"| {name} | {sum(_face(r['screen'], rule) for r in pos)} / {len(pos)} | "
                     f"{sum(_face(r['screen'], rule) for r in neg)} / {len(neg)} | "
                     + " | ".join(left) + f" | {clean} / {len(pos)} | "
                     f"{len(passed)} / {len(parts)}: {', '.join(passed) or '-'} |")
    out = ROOT / "benchmarks" / "results" / f"face_views_{day}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-json", type=Path, help="per-view scores of an earlier run")
    args = ap.parse_args()
    day = dt.date.today().isoformat()
    if args.from_json:
        rows = json.loads(args.from_json.read_text(encoding="utf-8"))
        print(write_record(rows, None, f"scores re-read from {args.from_json.name}"))
        return 0
    rows, t0 = [], time.perf_counter()
    for h in hc.corpus():
        rows.append(run_item(h))
        print(h.name, flush=True)
    path = ROOT / "benchmarks" / "results" / f"face_views_{day}.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    print(write_record(rows, time.perf_counter() - t0, "rendered"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
