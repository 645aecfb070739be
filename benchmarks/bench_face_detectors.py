"""Benchmark: the face check's detector (dlib HOG) beside dlib's CNN face detector (MMOD) on
the head corpus's renders (issue #18: can a second detector remove the false faces?).

Per corpus item (``tests/headcorpus.py``) the screening renders of the item as built
(:data:`neurodeid.deface.face.SCREENING_LEVELS`, every view of
:data:`~neurodeid.deface.face.DEFAULT_VIEWS`) are looked at by

- the HOG detector the face check uses (best SVM score; a face above
  :data:`~neurodeid.deface.face.FACE_SCORE_THRESHOLD`);
- dlib's CNN detector ``mmod_human_face_detector.dat`` (shipped in the
  ``face-recognition-models`` wheel, CC0; by dlib's author, trained on his own labelled
  dataset), renders doubled once as for HOG; its Python binding reports only detections above
  its own threshold (confidence > 0), so "no detection" has no score.

With ``--defaced``, every face-bearing item is also defaced by each of
``template``, ``shell`` and ``threshold-morphology`` with the face check off, and both
detectors look at the defaced renders (the original's frame, :data:`SURFACE_LEVELS`), as the
defacing check would.

Prints one JSON line per item and writes ``benchmarks/results/face_detectors_<date>.md``.

Usage: python benchmarks/bench_face_detectors.py [--defaced] [--only NAME ...]
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

from neurodeid.deface import DefaceError, deface_file, face  # noqa: E402

METHODS = ("template", "shell", "threshold-morphology")


def _cnn():
    import dlib
    import face_recognition_models as models

    return dlib.cnn_face_detection_model_v1(models.cnn_face_detector_model_location())


def cnn_best(cnn, renders) -> tuple[float | None, tuple | None, float]:
    """Best CNN confidence over ``renders`` (None: no detection), its view, seconds."""
    t = time.perf_counter()
    best, view = None, None
    for r in renders:
        for d in cnn(r.image, 1):
            if best is None or d.confidence > best:
                best, view = float(d.confidence), (r.yaw, r.pitch)
    return best, view, time.perf_counter() - t


def defacings(h: hc.Head, params: dict | None = None):
    """Deface ``h`` by each method of :data:`METHODS` alone, face check off: yields
    ``(method, summary, defaced voxels)``, or ``(method, DefaceError, None)`` on failure."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.nii.gz"
        nib.save(nib.Nifti1Image(h.data, h.affine), str(src))
        for m in METHODS:
            out = Path(tmp) / f"{m}.nii.gz"
            try:
                s = deface_file(src, out, method=m, params=params, face_check=False,
                                fallback=False)
            except DefaceError as e:
                yield m, e, None
                continue
            yield m, s, np.asarray(nib.load(str(out)).dataobj, np.float32)


def run_item(h: hc.Head, cnn, defaced: bool) -> dict:
    t = time.perf_counter()
    chk = face.check_volume(h.data, h.affine, levels=face.SCREENING_LEVELS, embeddings=False)
    hog_s = time.perf_counter() - t
    best, view, cnn_s = cnn_best(cnn, chk.renders)
    row = {"name": h.name, "face_expected": h.face_expected,
           "hog": round(chk.best_score, 3) if np.isfinite(chk.best_score) else None,
           "hog_face": chk.face, "cnn": None if best is None else round(best, 3),
           "cnn_view": view, "renders": len(chk.renders),
           "hog_seconds": round(hog_s, 2), "cnn_seconds": round(cnn_s, 2)}
    if not (defaced and h.face_expected):
        return row
    before = face.check_volume(h.data, h.affine, embeddings=False)
    for m, result, after in defacings(h):
        if after is None:
            row[m] = {"failed": str(result).split(": ", 2)[-1][:160]}
            continue
        a = face.check_volume(after, h.affine, reference=before, embeddings=False)
        cb, cv, _ = cnn_best(cnn, a.renders)
        row[m] = {"hog": round(a.best_score, 3) if np.isfinite(a.best_score) else None,
                  "hog_face": a.face, "cnn": None if cb is None else round(cb, 3),
                  "cnn_view": cv}
    return row


def write_record(rows: list[dict], wall: float, args) -> Path:
    day = dt.date.today().isoformat()
    pos = [r for r in rows if r["face_expected"]]
    neg = [r for r in rows if not r["face_expected"]]
    cnn_face = lambda r: r["cnn"] is not None  # noqa: E731
    rules = {
        f"HOG > {face.FACE_SCORE_THRESHOLD} (the face check)": lambda r: r["hog_face"],
        "HOG > 0 (dlib's default)": lambda r: (r["hog"] or -9) > 0,
        "CNN (any detection)": cnn_face,
        "HOG or CNN": lambda r: r["hog_face"] or cnn_face(r),
        "HOG and CNN": lambda r: r["hog_face"] and cnn_face(r),
    }
    u = platform.uname()
    lines = [f"# Face detectors on the head corpus: HOG beside dlib's CNN ({day})", "",
             f"- machine: {u.system} {u.release} {u.machine}, {os.cpu_count()} cores (shared)",
             f"- command: `python benchmarks/bench_face_detectors.py"
             f"{' --defaced' if args.defaced else ''}`; wall {wall / 60:.1f} min",
             f"- {len(rows)} corpus items ({len(pos)} face-bearing, {len(neg)} face-free); "
             f"screening renders: levels {face.SCREENING_LEVELS}, {len(face.DEFAULT_VIEWS)} views",
             "", "## Screening the items as built", "",
             "| rule | faces found | false faces |", "|---|---:|---:|"]
    for name, rule in rules.items():
        lines.append(f"| {name} | {sum(bool(rule(r)) for r in pos)} / {len(pos)} | "
                     f"{sum(bool(rule(r)) for r in neg)} / {len(neg)} |")
    cnn_s = [r["cnn_seconds"] / r["renders"] for r in rows if r["renders"]]
    lines += ["", f"CNN seconds per render (doubled once): median {np.median(cnn_s):.2f}", "",
              "| item | face expected | HOG score | CNN confidence (view) |", "|---|---|---:|---|"]
    for r in sorted(rows, key=lambda r: (not r["face_expected"], r["name"])):
        c = "none" if r["cnn"] is None else f"{r['cnn']:.3f} {tuple(r['cnn_view'])}"
        h = "" if r["hog"] is None else f"{r['hog']:.2f}"
        lines.append(f"| {r['name']} | {'yes' if r['face_expected'] else 'no'} | {h} | {c} |")
    if args.defaced:
        lines += ["", "## Defaced renders (face check off while defacing)", "",
                  "| method | defaced | HOG face left | CNN face left |", "|---|---:|---:|---:|"]
        for m in METHODS:
            done = [r[m] for r in pos if m in r and "failed" not in r[m]]
            lines.append(f"| {m} | {len(done)} | {sum(d['hog_face'] for d in done)} | "
                         f"{sum(d['cnn'] is not None for d in done)} |")
    out = ROOT / "benchmarks" / "results" / f"face_detectors_{day}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out.with_suffix(".json")).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--defaced", action="store_true", help="also deface and look again")
    ap.add_argument("--only", nargs="*", help="corpus item names to run")
    args = ap.parse_args()
    cnn = _cnn()
    rows = []
    t0 = time.perf_counter()
    for h in hc.corpus():
        if args.only and h.name not in args.only:
            continue
        rows.append(run_item(h, cnn, args.defaced))
        print(json.dumps(rows[-1]), flush=True)
    print(write_record(rows, time.perf_counter() - t0, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
