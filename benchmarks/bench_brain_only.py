"""Benchmark: the bare-brain measures of the face screen on the head corpus (issue #18).

For every item of ``tests/headcorpus.py`` (face-bearing heads and augmentations, the fruit,
heads cut above the brows, skull-stripped brains tight and 4 mm wider): the screening face
check as the workflow makes it for a volume not planned for defacing
(``check_volume(..., levels=SCREENING_LEVELS, brain_only=True)``), and the measures of
:mod:`neurodeid.deface.brainonly` made on every item, whether or not a face was detected
(the background's constant share; where it is a stripping's, the tissue outside the
extracted brain and that brain's volume, ml), so that the margin between bare brains and heads is on record.

Writes ``benchmarks/results/brain_only_<date>.md`` and the rows as JSON next to it.

Usage: python benchmarks/bench_brain_only.py [--only NAME ...] [--no-record]
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

import headcorpus as hc  # noqa: E402
from _record import write_dated  # noqa: E402

from neurodeid.deface import brainonly, face  # noqa: E402
from neurodeid.deface.core import detect_ct  # noqa: E402


def run_item(h: hc.Head) -> dict:
    t = time.perf_counter()
    chk = face.check_volume(h.data, h.affine, levels=face.SCREENING_LEVELS, embeddings=False,
                            brain_only=True)
    row = {"name": h.name, "face_expected": h.face_expected,
           "score": round(chk.best_score, 3) if np.isfinite(chk.best_score) else None,
           "detected": bool(chk.best_score > face.FACE_SCORE_THRESHOLD), "face": chk.face,
           "check_seconds": round(time.perf_counter() - t, 2)}
    bare = chk.brain_only
    if bare is None:  # measured here too: the margin on every item
        small, saff = face.surface_volume(face.volume_for_detection(h.data), h.affine)
        try:
            bare = brainonly.measure(small, saff, min(chk.thresholds), detect_ct(small))
        except Exception as e:  # noqa: BLE001 - recorded
            row["error"] = f"{type(e).__name__}: {e}"
    if bare is not None:
        s = bare.summary()
        row.update(constant_background=s["constant_background"],
                   outside_ml=s["tissue_outside_brain_ml"], head_ml=s["head_ml"],
                   brain_ml=s["extracted_brain_ml"], brain_only=bare.holds,
                   measure_seconds=s["brain_only_seconds"])
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="corpus item names to run")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    rows = []
    t0 = time.perf_counter()
    for src in hc.load_sources():
        for h in hc.augmentations(src):
            if args.only and h.name not in args.only:
                continue
            rows.append(run_item(h))
            print(json.dumps(rows[-1]), flush=True)
    if not args.no_record:
        write_record(rows, time.perf_counter() - t0)
    return 0


def _f(v, fmt="{:.1f}"):
    return "" if v is None else fmt.format(v)


def write_record(rows: list[dict], wall: float) -> Path:
    day = dt.date.today().isoformat()
    pos = [r for r in rows if r["face_expected"]]
    neg = [r for r in rows if not r["face_expected"]]
    bare = [r for r in neg if "/brain_only" in r["name"]]
    pos_out = [r["outside_ml"] for r in pos if r.get("outside_ml") is not None]
    bare_out = [r["outside_ml"] for r in bare if r.get("outside_ml") is not None]
    lines = [
        f"# Bare-brain measures of the face screen on the head corpus ({day})", "",
        f"- machine: {platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} cores (shared)",
        f"- command: `python benchmarks/bench_brain_only.py`; wall {wall / 60:.1f} min",
        f"- rule (`neurodeid.deface.brainonly`): detections are set aside when at least "
        f"{brainonly.MIN_CONSTANT_BACKGROUND:.0%} of the voxels farther than "
        f"{brainonly.BACKGROUND_MM:g} mm from the head equal the volume's minimum, at most "
        f"{brainonly.MAX_OUTSIDE_ML:g} ml of the head lies farther than {brainonly.MARGIN_MM:g} mm "
        f"from the extracted brain and that brain is at most {brainonly.MAX_BRAIN_ML:g} ml", "",
        "## Summary", "",
        f"- face-bearing items found: **{sum(r['face'] for r in pos)} / {len(pos)}** "
        f"(detected before the rule: {sum(r['detected'] for r in pos)}); set aside by the rule: "
        f"{sum(r['detected'] and not r['face'] for r in pos)}",
        f"- false faces on face-free items: **{sum(r['face'] for r in neg)} / {len(neg)}** "
        f"(before the rule: {sum(r['detected'] for r in neg)})",
        f"- skull-stripped items: false faces {sum(r['face'] for r in bare)} / {len(bare)} "
        f"(before: {sum(r['detected'] for r in bare)})",
    ]
    if pos_out and bare_out:
        lines.append(f"- tissue outside the brain: face-bearing items min {min(pos_out):.1f} ml "
                     f"(median {np.median(pos_out):.0f}); skull-stripped items "
                     f"{min(bare_out):.1f}-{max(bare_out):.1f} ml")
    ms = [r["measure_seconds"] for r in rows if r.get("measure_seconds") is not None]
    if ms:
        lines.append(f"- seconds of the measure (the extraction, when a face is detected): median "
                     f"{np.median(ms):.1f}, max {max(ms):.1f}")
    lines += ["", "## Per item", "",
              "| item | face expected | score | detected | face | constant background "
              "| outside ml | head ml | brain ml | bare brain | check s |",
              "|---|---|---:|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(
            f"| {r['name']} | {'yes' if r['face_expected'] else 'no'} | {_f(r['score'], '{:.2f}')} "
            f"| {'yes' if r['detected'] else 'no'} | {'yes' if r['face'] else 'no'} "
            f"| {_f(r.get('constant_background'), '{:.4f}')} "
            f"| {_f(r.get('outside_ml'))} | {_f(r.get('head_ml'), '{:.0f}')} "
            f"| {_f(r.get('brain_ml'), '{:.0f}')} | {r.get('brain_only', r.get('error', ''))} "
            f"| {r['check_seconds']:.1f} |")
    return write_dated("brain_only", lines, rows)


if __name__ == "__main__":
    raise SystemExit(main())
