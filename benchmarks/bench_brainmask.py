"""Benchmark: the independent brain mask (BET in numpy) and the brain safety of each defacing
method, before and after the protected region includes that mask.

Per head: extraction seconds and mask volume; per method, with the independent mask left out
of the protected region (``independent_brain=False``, the defacer before issue 18) and with
it: removed ml, changed voxels inside the independent mask, minimum distance (mm) from a
removed voxel to it, and the verdict against the margin. Prints a Markdown table; the
caller pastes it into benchmarks/results/brainmask_<date>.md.

Usage: python benchmarks/bench_brainmask.py [HEAD.nii.gz ...] [--threads 2]
(default: the three shared heads; chris_t1 is read in place, never copied)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEURODEID_SHARED_DATA", ROOT.parent / "shared" / "data"))
HEADS = ["colin27_ch2.nii.gz", "vrd_seg3D_MR.nii.gz", "chris_t1.nii.gz"]
METHODS = ("template", "threshold-morphology", "connected-threshold")


def main(argv=None) -> int:
    import nibabel as nib

    from neurodeid.deface import DefaceError, deface_image
    from neurodeid.deface.brainmask import brain_safety, extract_brain

    ap = argparse.ArgumentParser()
    ap.add_argument("heads", nargs="*", default=[str(SHARED / "heads" / h) for h in HEADS])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--margin", type=float, default=6.0)
    a = ap.parse_args(argv)
    print("| head | extractor s | mask ml | method | protected | deface s | removed ml "
          "| brain voxels changed | min distance mm | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in a.heads:
        img = nib.load(path)
        data = np.asarray(img.dataobj, np.float32)
        zooms = img.header.get_zooms()[:3]
        bm = extract_brain(data, zooms)
        name = Path(path).name.removesuffix(".nii.gz")
        for method in METHODS:
            for with_indep in (False, True):
                params = {"threads": a.threads, "brain_margin_mm": a.margin,
                          "independent_brain": with_indep}
                t = time.perf_counter()
                try:
                    res = deface_image(data, img.affine, method, params, name=name,
                                       independent_brain=bm.mask if with_indep else None)
                except DefaceError as e:
                    print(f"| {name} | {bm.seconds} | {bm.volume_ml:.0f} | {method} | "
                          f"{'+BET' if with_indep else 'before'} | - | - | - | - | "
                          f"DefaceError: {str(e)[:80]} |")
                    continue
                sec = time.perf_counter() - t
                after = data.copy()
                after[res.removal] = res.background
                bs = brain_safety(data, after, bm.mask, zooms, a.margin)
                print(f"| {name} | {bm.seconds} | {bm.volume_ml:.0f} | {method} | "
                      f"{'+BET' if with_indep else 'before'} | {sec:.1f} | "
                      f"{res.summary['removed_ml']:.1f} | {bs.brain_voxels_changed} | "
                      f"{bs.min_distance_mm:.2f} | {bs.verdict} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
