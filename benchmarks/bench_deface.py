"""Benchmark: time and peak memory per defacing method on a 1 mm head, against quickshear.

Each method runs in its own child process (so peak RSS is per method) on the same head;
quickshear (pip install quickshear) gets the same brain mask that our template method
protects (``--brain-mask-out``). Writes benchmarks/results/deface_<date>.md.

Usage: python benchmarks/bench_deface.py [HEAD.nii.gz ...] [--threads 2]
(default: both shared heads, colin27_ch2 and vrd_seg3D_MR)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEURODEID_SHARED_DATA", ROOT.parent / "shared" / "data"))

CHILD = r"""
import json, resource, sys, time
from neurodeid.deface import deface_file
t = time.perf_counter()
s = deface_file(sys.argv[1], sys.argv[2], method=sys.argv[3],
                params={"threads": int(sys.argv[4])}, brain_mask_out=sys.argv[5] or None)
s["wall_s"] = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
s["cpu_s"] = ru.ru_utime + ru.ru_stime
s["peak_mb"] = ru.ru_maxrss / 1024
print(json.dumps(s))
"""

QS_CHILD = r"""
import json, resource, sys, time, runpy
t = time.perf_counter()
sys.argv = ["quickshear", sys.argv[1], sys.argv[2], sys.argv[3]]
try:
    runpy.run_module("quickshear", run_name="__main__")
except SystemExit:
    pass
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": time.perf_counter() - t, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_mb": ru.ru_maxrss / 1024}))
"""


def _run(code, *args, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads))
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                       text=True, env=env, check=False)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr else "failed",
                "wall_s": time.perf_counter() - t}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _removed_ml(a, b):
    import nibabel as nib
    import numpy as np

    x = np.asanyarray(nib.load(str(a)).dataobj)
    y = np.asanyarray(nib.load(str(b)).dataobj)
    vox = float(np.prod(nib.load(str(a)).header.get_zooms()[:3])) / 1000
    return float(np.count_nonzero(x != y) * vox)


def bench_head(head, threads):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        brain = tmp / "brain.nii.gz"
        for m in ("template", "threshold-morphology", "connected-threshold"):
            r = _run(CHILD, head, tmp / f"{m}.nii.gz", m, threads,
                     brain if m == "template" else "", threads=threads)
            rows.append((m, r))
        try:
            import quickshear  # noqa: F401

            if not brain.exists():
                raise FileNotFoundError("template failed: no brain mask for quickshear")
            r = _run(QS_CHILD, head, brain, tmp / "qs.nii.gz", threads=threads)
            if "error" not in r:
                r["removed_ml"] = _removed_ml(head, tmp / "qs.nii.gz")
        except ImportError:
            r = {"error": "quickshear not installed (pip install quickshear)"}
        except FileNotFoundError as e:
            r = {"error": str(e)}
        rows.append(("quickshear (same brain mask)", r))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("heads", nargs="*", default=[str(SHARED / "heads" / "colin27_ch2.nii.gz"),
                                                 str(SHARED / "heads" / "vrd_seg3D_MR.nii.gz")])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    load0 = os.getloadavg()
    lines = [
        f"# Defacing benchmark {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"- machine: `{' '.join(platform.uname())}`, nproc {os.cpu_count()}, threads {a.threads}",
        (f"- command: `python benchmarks/bench_deface.py "
         f"{' '.join(Path(h).name for h in a.heads)} --threads {a.threads}`"),
        (f"- load average at start (1/5/15 min): {load0[0]:.1f} / {load0[1]:.1f} / "
         f"{load0[2]:.1f} (the machine is shared; wall time is inflated when the load "
         "exceeds nproc, CPU time is not)"),
        ("- seconds = wall time of a fresh process incl. imports, multi-start registration "
         "and writing; cpu s = user + system time of that process; removed ml = head tissue "
         "removed (ours) / voxels changed (quickshear); residual ml = template face region "
         "left (ours, on the method's own grid)"),
    ]
    for head in a.heads:
        rows = bench_head(head, a.threads)
        lines += [
            "",
            f"## {Path(head).name}",
            "",
            "| method | seconds | cpu s | peak MB | removed ml | residual ml | brain overlap ml | head Dice |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m, r in rows:
            if "error" in r:
                lines.append(f"| {m} | error: {r['error']} | | | | | | |")
                continue
            lines.append("| {} | {:.1f} | {:.1f} | {:.0f} | {} | {} | {} | {} |".format(
                m, r["wall_s"], r.get("cpu_s", float("nan")), r["peak_mb"],
                round(r.get("removed_ml", float("nan")), 1),
                r.get("face_region_residual_ml", "-"), r.get("brain_overlap_ml", "-"),
                r.get("registration_metric", "-")))
        tpl, qs = rows[0][1], rows[-1][1]
        if "error" not in tpl and "error" not in qs:
            lines += ["", f"template / quickshear time ratio: {tpl['wall_s'] / qs['wall_s']:.1f}"]
    load1 = os.getloadavg()
    lines += ["", f"- load average at end: {load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f}"]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / f"deface_{dt.date.today().isoformat()}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
