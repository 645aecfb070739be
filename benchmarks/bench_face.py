"""Benchmark: the face check (issue #18) on the shared heads and on face-free versions.

Per head: best detector score on the original's renders, then each defacing method
(``deface_file_with``, no fallback) with the best score on the defaced renders and the
seconds (defacing + both face checks). Negatives: the skull-stripped brain and the head cut
above the eyes (as built in ``tests/test_face.py``). Writes
``benchmarks/results/face_<date>.md``.

Usage: python benchmarks/bench_face.py [--methods template,threshold-morphology,connected-threshold]
(heads: colin27_ch2, vrd_seg3D_MR, chris_t1 from ../shared/data/heads; chris_t1 is read
there, never copied)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEURODEID_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "tests"))

from test_face import _brain_only, _cut_above_eyes  # noqa: E402

from neurodeid.deface import DefaceError, face  # noqa: E402
from neurodeid.deface.api import deface_file_with  # noqa: E402

HEADS = ["colin27_ch2", "vrd_seg3D_MR", "chris_t1"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="template,threshold-morphology,connected-threshold")
    args = ap.parse_args()
    import platform

    rows, neg = [], []
    for name in HEADS:
        p = SHARED / "heads" / f"{name}.nii.gz"
        img = nib.load(str(p))
        d = np.asarray(img.dataobj, np.float32)
        t = time.perf_counter()
        before = face.check_volume(d, img.affine)
        t_before = time.perf_counter() - t
        for make in (_brain_only, _cut_above_eyes):
            chk = face.check_volume(make(d), img.affine)
            neg.append((name, make.__name__.strip("_"), chk.best_score, chk.face))
        for method in args.methods.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                try:
                    s = deface_file_with(p, Path(tmp) / "o.nii.gz", method)
                    fa = s["face_after"]
                    after, ok, why = fa["face_score"], "defaced", ""
                    dist, box = fa["embedding_distance"], fa["embedding_distance_at_face_box"]
                except DefaceError as e:
                    after, ok, why = None, "withheld", str(e).split(": ", 1)[-1][:90]
                    dist = box = None
                secs = time.perf_counter() - t
            rows.append((name, before.best_score, before.face, method, after, ok, secs, why,
                         dist, box, t_before))
            print(rows[-1], flush=True)
    day = dt.date.today().isoformat()
    out = ROOT / "benchmarks" / "results" / f"face_{day}.md"
    lines = [f"# Face check on the shared heads ({day})", "",
             f"`python benchmarks/bench_face.py` on {platform.machine()} {platform.processor() or ''}"
             f" {os.cpu_count()} cores (shared with other "
             "jobs: times are upper bounds). Threshold: score > "
             f"{face.FACE_SCORE_THRESHOLD} is a face; {len(face.DEFAULT_VIEWS)} views, "
             f"{face.RENDER_SPACING_MM} mm pixels, surface at {face.MASK_SPACING_MM} mm. Embedding "
             "distance: between a face found on the defaced renders and the original's (empty: "
             "no face left to embed); at box: measured at the original's face box whatever is "
             "left there (not a verdict).",
             "", "| head | score original | face | s (1 face check) | method | score defaced | "
             "embedding distance | distance at box | result | s (deface + 2 checks) | reason |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    f2 = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]:.2f} | {'yes' if r[2] else 'no'} | {r[10]:.1f} | {r[3]} | "
                     f"{f2(r[4])} | {f2(r[8])} | {f2(r[9])} | {r[5]} | {r[6]:.1f} | {r[7]} |")
    lines += ["",
              "| head | face-free version | best score | face |", "|---|---|---|---|"]
    for n, k, sc, f in neg:
        lines.append(f"| {n} | {k} | {sc:.2f} | {'yes' if f else 'no'} |")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
