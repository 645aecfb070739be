"""Benchmark: the face screen of DICOM released without conversion (issue #18).

Groups every DICOM file under a folder by (folder, SeriesInstanceUID) and runs
:func:`neurodeid.deface.screen.screen_files` on each series: stacks rendered, images looked
at, best score, whether a face is found, seconds. Prints one line per series.

Usage: python benchmarks/bench_face_screen.py ../shared/data/dicom > results/face_screen_<date>.log
"""
import sys, time, collections, pydicom, json
from pathlib import Path
from neurodeid.deface.screen import screen_files
root = Path(sys.argv[1])
groups = collections.defaultdict(list)
for p in sorted(root.rglob("*")):
    if not p.is_file(): continue
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        uid = ds.SeriesInstanceUID
    except Exception:
        continue
    if "PixelData" in ds or True:
        groups[(str(p.parent.relative_to(root)), uid, ds.get("Modality",""), str(ds.get("SeriesDescription","")))].append(p)
for (d, uid, mod, desc), files in sorted(groups.items()):
    s = screen_files(files)
    print(f"{d[:40]:40s} {mod:3s} {desc[:28]:28s} n={len(files):4d} stacks={s.stacks} imgs={s.images} best={s.best_score:6.2f} face={s.face} t={s.seconds:5.1f} err={len(s.errors)} | {s.where[:90]}", flush=True)
