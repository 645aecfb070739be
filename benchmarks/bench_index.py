#!/usr/bin/env python3
"""Indexing benchmark: a tree of N DICOM files, cold and cached, vs a plain pydicom header read.

Builds a synthetic tree (default 20,000 files: 200 subjects x 2 studies x 5 series x 10 slices,
small header-valid CT images cloned from pydicom's CT_small.dcm with new UIDs), then in one run:

1. the anchor: reading every header with pydicom (``dcmread(stop_before_pixels=True)``), which is
   what an index without a cache costs;
2. ``neurodeid.inputs.dicom.build_index`` cold (empty cache: header reads + grouping + private files),
   in one process and with as many worker processes as the machine has cores (what the
   workflow does with ``--cores``; issue 21's goal: <= 0.5x the anchor);
3. ``build_index`` warm, on the unchanged tree (the goal: <= 3 s on 2 cores), repeated.

Usage: python benchmarks/bench_index.py [--files 20000] [--workdir DIR] [--record]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from neurodeid import index, keys
from neurodeid.inputs import dicom as dicom_input

REPO = Path(__file__).resolve().parents[1]


def make_tree(root: Path, n_files: int) -> None:
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    slices, series_per_study, studies = 10, 5, 2
    per_subject = slices * series_per_study * studies
    n_subjects = max(1, n_files // per_subject)
    made = 0
    for s in range(n_subjects):
        for st in range(studies):
            study_uid = f"2.25.{10**20 + s * 1000 + st}"
            for se in range(series_per_study):
                series_uid = f"{study_uid}{se + 1}"
                folder = root / f"PAT{s:05d}" / f"STUDY{st}" / f"SE{se + 1}"
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(slices):
                    base.PatientID = f"P{s:06d}"
                    base.PatientName = f"SYNTH^{s:06d}"
                    base.StudyInstanceUID = study_uid
                    base.StudyDate = f"2020{(st % 12) + 1:02d}01"
                    base.SeriesInstanceUID = series_uid
                    base.SeriesNumber = se + 1
                    base.InstanceNumber = i + 1
                    base.SOPInstanceUID = f"{series_uid}.{i + 1}"
                    base.file_meta.MediaStorageSOPInstanceUID = base.SOPInstanceUID
                    base.save_as(folder / f"IM{i + 1:04d}.dcm", enforce_file_format=True)
                    made += 1
                    if made >= n_files:
                        return


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t, out


def anchor_read_all(root: Path) -> int:
    n = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            try:
                pydicom.dcmread(os.path.join(dirpath, f), stop_before_pixels=True)
            except Exception:  # what the anchor cannot read (not DICOM) counts too
                pass
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--tree", type=Path, default=None,
                    help="index this existing folder (e.g. ../shared/data/dicom) instead of a synthetic tree")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--record", action="store_true", help="append the result to benchmarks/results/")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nd-bench-index-"))
    tree, private = args.tree or work / "tree", work / "private"
    if not tree.exists():
        t, _ = timed(make_tree, tree, args.files)
        print(f"built {args.files} files in {t:.1f} s")
    shutil.rmtree(private, ignore_errors=True)
    key = keys.DEMO_KEY
    workers = os.cpu_count() or 1
    t_anchor, n = timed(anchor_read_all, tree)
    t_cold1, _ = timed(dicom_input.build_index, tree, private, key, workers=1)
    shutil.rmtree(private, ignore_errors=True)
    t_cold, idx = timed(dicom_input.build_index, tree, private, key, workers=workers)
    warm = [timed(dicom_input.build_index, tree, private, key)[0] for _ in range(args.repeats)]
    t_warm = statistics.median(warm)
    lines = [
        f"files: {n}; subjects: {len(idx.subject_labels())}; series: {len(idx.series)}",
        f"anchor, pydicom header read of every file: {t_anchor:.2f} s",
        f"neurodeid build_index, cold, 1 process:    {t_cold1:.2f} s (ratio {t_cold1 / t_anchor:.3f})",
        f"neurodeid build_index, cold, {workers} processes:  {t_cold:.2f} s (ratio {t_cold / t_anchor:.3f}; "
        f"goal <= 0.5: {'met' if t_cold <= 0.5 * t_anchor else 'NOT met'})",
        f"neurodeid build_index, unchanged tree:     {t_warm:.2f} s (median of {args.repeats}: "
        + ", ".join(f"{w:.2f}" for w in warm) + ")",
        f"ratio warm / anchor: {t_warm / t_anchor:.3f}; goal warm <= 3 s: {'met' if t_warm <= 3 else 'NOT met'}",
    ]
    print("\n".join(lines))
    if args.record:
        out = REPO / "benchmarks" / "results" / f"index_{datetime.date.today().isoformat()}.md"
        u = platform.uname()
        text = (
            f"# Index benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}\n\n"
            f"- machine: {u.system} {u.release} {u.machine}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"pydicom {pydicom.__version__}\n"
            f"- command: `python benchmarks/bench_index.py "
            + (f"--tree {args.tree}" if args.tree else f"--files {args.files}") + " --record`\n\n```\n"
            + "\n".join(lines)
            + "\n```\n"
        )
        with out.open("a") as fh:
            fh.write(text)
        print(f"recorded in {out}")


if __name__ == "__main__":
    main()
