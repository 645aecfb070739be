"""Benchmark: the face check and the defacer on the augmented head corpus (issue #18).

Per corpus item (``tests/headcorpus.py``: 4 real heads x permutations, rotations, crops,
thick slices, contrast remaps, noise and bias, a CT-like head, and face-free versions):

- the screening face check of the item as built (``SCREENING_LEVELS``, what decides for a
  volume not planned for defacing): best detector score and whether it is a face, against
  whether a face is expected;
- items that bear or show a face: :func:`neurodeid.deface.deface_file` (every method in turn, every
  check), then brain safety judged again here with the independent brain mask extracted
  afresh from the original (changed voxels inside it, smallest distance of a change to it
  against the margin), the defaced renders' best score and the embedding distance, the
  template registration's head Dice, the seconds (and the independent extraction's share);
- the distribution of the registration's head Dice over every item defaced (the
  acceptance ``min_head_dice`` is set from it) and of its final mutual information
  (``max_registration_mi``).

Writes ``benchmarks/results/head_corpus_<date>.md`` (and a JSON of the rows next to it).

Usage: python benchmarks/bench_head_corpus.py [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import headcorpus as hc  # noqa: E402
from _record import write_dated  # noqa: E402

from neurodeid.deface import DefaceError, deface_file, face  # noqa: E402
from neurodeid.deface.brainmask import brain_safety, extract_brain  # noqa: E402
from neurodeid.deface.core import detect_ct  # noqa: E402
from neurodeid.deface.params import DefaceParams  # noqa: E402
from neurodeid.geometry import zooms as voxel_sizes  # noqa: E402


def run_item(h: hc.Head, tmp: Path) -> dict:
    """Face check, defacing and the independent judgement of one corpus item."""
    row = {"name": h.name, "note": h.note, "shape": list(h.data.shape),
           "face_expected": h.face_expected}
    t = time.perf_counter()
    chk = face.check_volume(h.data, h.affine, levels=face.SCREENING_LEVELS, embeddings=False)
    row.update(face_score=round(chk.best_score, 2) if np.isfinite(chk.best_score) else None,
               face=chk.face, face_view=list(chk.best_view),
               check_seconds=round(time.perf_counter() - t, 2))
    if not (chk.face or h.face_expected):
        return row
    src = tmp / "in.nii.gz"
    out = tmp / "out.nii.gz"
    nib.save(nib.Nifti1Image(h.data, h.affine), str(src))
    t = time.perf_counter()
    try:
        s = deface_file(src, out)
    except DefaceError as e:
        row.update(result="withheld", reason=str(e).split(": ", 1)[-1][:300],
                   reasons=_reasons(str(e)),
                   deface_seconds=round(time.perf_counter() - t, 2))
        return row
    row["deface_seconds"] = round(time.perf_counter() - t, 2)
    fa = s.get("face_after") or {}
    row.update(result="defaced", method=s["method"],
               failed_methods=sorted(s.get("failed_methods", {})),
               face_score_defaced=fa.get("face_score"), face_after=fa.get("face_detected"),
               embedding_distance=fa.get("embedding_distance"),
               face_skin_kept=fa.get("face_skin_kept"),
               embedding_distance_at_face_box=fa.get("embedding_distance_at_face_box"),
               head_dice=s.get("registration_metric"), head_mi=s.get("registration_mi"),
               independent_seconds=s.get("independent_seconds"))
    defaced = np.asarray(nib.load(str(out)).dataobj, np.float32)
    # judged on the file as written and read back, as the workflow's morphometry does: a
    # float32 header affine differs from h.affine by 1e-8, and BET's mask by a few hundred
    # voxels at its edge with it
    img = nib.load(str(src))
    original = np.asarray(img.dataobj, np.float32)
    z = voxel_sizes(img.affine)
    bm = extract_brain(original, z, ct=detect_ct(original))
    bs = brain_safety(original, defaced, bm.mask, z, DefaceParams().brain_margin_mm)
    row.update(brain_voxels_changed=bs.brain_voxels_changed,
               min_distance_mm=bs.min_distance_mm if np.isfinite(bs.min_distance_mm) else None,
               brain_safety=bs.verdict, independent_brain_ml=round(float(bm.volume_ml), 1))
    return row


def _reasons(message: str) -> dict:
    """``{method: reason}`` from a :class:`DefaceError` of :func:`deface_file` (every
    method's reason, joined by `` | ``)."""
    out = {}
    for part in message.split(" | "):
        m, _, why = part.partition(": ")
        out[m] = why.split(": ", 1)[-1][:300]
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer augmentations per head")
    ap.add_argument("--only", nargs="*", help="corpus item names to run")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    rows = []
    t0 = time.perf_counter()
    for src in hc.load_sources():
        for h in hc.augmentations(src, quick=args.quick):
            if args.only and h.name not in args.only:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(run_item(h, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    wall = time.perf_counter() - t0
    if args.no_record:
        return 0
    write_record(rows, wall, args)
    return 0


def _f(v, fmt="{:.2f}"):
    return "" if v is None else fmt.format(v)


def write_record(rows: list[dict], wall: float, args) -> Path:
    day = dt.date.today().isoformat()
    pos = [r for r in rows if r["face_expected"]]
    neg = [r for r in rows if not r["face_expected"]]
    found = sum(bool(r["face"]) for r in pos)
    false = sum(bool(r["face"]) for r in neg)
    defaced = [r for r in rows if r.get("result") == "defaced"]
    withheld = [r for r in rows if r.get("result") == "withheld"]
    dice = sorted(r["head_dice"] for r in defaced if r.get("head_dice") is not None)
    cmd = "python benchmarks/bench_head_corpus.py" + (" --quick" if args.quick else "")
    lines = [
        f"# Head corpus: face check and defacing ({day})", "",
        f"- machine: {platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} cores (shared: times are upper bounds)",
        f"- command: `{cmd}`; wall {wall / 60:.1f} min",
        f"- corpus: `tests/headcorpus.py`, {len(rows)} items from "
        f"{len({r['name'].split('/')[0] for r in rows})} heads",
        f"- face threshold {face.FACE_SCORE_THRESHOLD}, {len(face.DEFAULT_VIEWS)} views, screening "
        f"surface levels {face.SCREENING_LEVELS}, defacing checks {face.SURFACE_LEVELS}, "
        f"same-person distance {face.SAME_PERSON_DISTANCE}", "",
        "## Summary", "",
        f"- screening sensitivity on face-bearing items: **{found} / {len(pos)}** "
        f"({100 * found / max(len(pos), 1):.0f} %)",
        f"- false faces on face-free items: **{false} / {len(neg)}**",
        f"- defaced: {len(defaced)}, withheld (every method failed a check): {len(withheld)}",
        f"- of the defaced: face left on the renders {sum(bool(r.get('face_after')) for r in defaced)}, "
        f"brain voxels changed inside the independent mask (sum) "
        f"{sum(r.get('brain_voxels_changed') or 0 for r in defaced)}, brain-safety FAIL "
        f"{sum(r.get('brain_safety') == 'FAIL' for r in defaced)}",
    ]
    if dice:
        lines.append(f"- template registration head Dice of the defaced items: min {dice[0]:.3f}, "
                     f"5th percentile {np.percentile(dice, 5):.3f}, median {np.median(dice):.3f}")
    mis = sorted(r["head_mi"] for r in defaced if r.get("head_mi") is not None)
    if mis:
        lines.append(f"- template registration final Mattes MI of the defaced items: best {mis[0]:.3f}, "
                     f"median {np.median(mis):.3f}, worst {mis[-1]:.3f}")
    secs = [r["deface_seconds"] for r in defaced]
    if secs:
        ind = [r.get("independent_seconds") or 0 for r in defaced]
        lines.append(f"- seconds per defaced item (defacing with every check): median "
                     f"{np.median(secs):.1f}, max {max(secs):.1f}; independent brain extraction "
                     f"median {np.median(ind):.1f} s ({100 * np.median(ind) / np.median(secs):.0f} %)")
    lines += ["", "## Per item", "",
              "| item | shape | face expected | score | face | result | method | score defaced "
              "| embedding distance | face left | brain voxels changed | min distance mm | brain safety "
              "| head Dice | MI | s | reason |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['name']} | {'x'.join(map(str, r['shape']))} | {'yes' if r['face_expected'] else 'no'} "
            f"| {_f(r['face_score'])} | {'yes' if r['face'] else 'no'} | {r.get('result', '')} "
            f"| {r.get('method', '')} | {_f(r.get('face_score_defaced'))} "
            f"| {_f(r.get('embedding_distance'))} | {_f(r.get('face_skin_kept'))} "
            f"| {_f(r.get('brain_voxels_changed'), '{}')} "
            f"| {_f(r.get('min_distance_mm'), '{:.1f}')} | {r.get('brain_safety', '')} "
            f"| {_f(r.get('head_dice'), '{:.3f}')} | {_f(r.get('head_mi'), '{:.3f}')} "
            f"| {_f(r.get('deface_seconds'), '{:.1f}')} | {r.get('reason', '')[:160]} |")
    return write_dated("head_corpus", lines, rows)


if __name__ == "__main__":
    sys.exit(main())
