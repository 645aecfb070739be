#!/usr/bin/env python3
"""One head series from raw DICOM to an audited release, wall time on the cores given (issue 21, item 3).

Input: the bundled example's 1 mm T1 series (177 single-frame MR files, a real MPRAGE head:
Colin27 written as DICOM by ``example/build_example.py``), copied alone into a fresh input
folder, with a key file of its own. The whole workflow runs on it once, cold (empty output
folder: index, de-identification, text screen, conversion, defacing with its face check and
independent brain mask, morphometry, defaced DICOM, release, audit, review sheet, report).

Recorded: the wall time of the ``snakemake`` call, the Python + Snakemake start-up floor
(``snakemake --version``), and where the time goes: every rule's ``benchmark:`` file (``s``,
wall seconds of the job, summed per rule). Jobs run in parallel on 2 cores, so the per-rule
sum exceeds the wall time.

Usage: python benchmarks/bench_head_series.py [--cores 2] [--workdir DIR] [--record]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
T1 = REPO / "example" / "dicom" / "DOE_JOHN" / "20200611_MR_BRAIN" / "t1_mprage"
GOAL_S = 60.0


def run(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, **kw)
    return time.perf_counter() - t, proc


def rule_seconds(bench_dir: Path) -> dict[str, tuple[int, float]]:
    """Rule -> (jobs, summed wall seconds) from the benchmark TSVs under ``bench_dir``."""
    out: dict[str, tuple[int, float]] = {}
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        rule = tsv.parent.name if tsv.parent != bench_dir else tsv.stem
        with open(tsv, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows:
            n, s = out.get(rule, (0, 0.0))
            out[rule] = (n + 1, s + float(rows[0]["s"]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--record", action="store_true", help="append to benchmarks/results/head_series_<date>.md")
    a = ap.parse_args()
    if not T1.is_dir():
        sys.exit(f"{T1} missing: run python example/build_example.py")
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench_head_"))
    if work.exists():
        shutil.rmtree(work)
    src = work / "input" / "t1"
    shutil.copytree(T1, src)
    key = work / "key.txt"
    key.write_text(os.urandom(32).hex() + "\n")
    out = work / "results"
    env = {k: v for k, v in os.environ.items() if k != "NEURODEID_KEY"}
    floor, _ = run([sys.executable, "-m", "snakemake", "--version"], env=env)
    wall, proc = run([sys.executable, "-m", "snakemake", "--cores", str(a.cores), "--config",
                      f"input_dir={work / 'input'}", f"output_dir={out}", f"key_file={key}"], env=env)
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    audit_ok = (out / "private" / "audit.ok").is_file()
    released = sorted(p.relative_to(out / "release").as_posix() for p in (out / "release").rglob("*.nii.gz"))
    per_rule = rule_seconds(out / "private" / "benchmarks")
    total = sum(s for _, s in per_rule.values())
    lines = [
        f"# Head series end to end, {datetime.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"- machine: {' '.join(platform.uname()[:3])} {platform.machine()}, {os.cpu_count()} cores, "
        f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- command: `python benchmarks/bench_head_series.py --cores {a.cores}{' --record' if a.record else ''}`",
        f"- input: {len(list(src.iterdir()))} DICOM files of one 1 mm T1 series (the example's MPRAGE)",
        "",
        f"| wall, raw DICOM to audited release | goal | start-up floor (`snakemake --version`) | audit passed | images released |",
        "|---|---|---|---|---|",
        f"| {wall:.1f} s | <= {GOAL_S:.0f} s: {'met' if wall <= GOAL_S else 'NOT met'} | {floor:.1f} s | {audit_ok} | "
        f"{', '.join(released) or 'none'} |",
        "",
        "Where the time goes (each rule's `benchmark:` file, wall seconds of its jobs; jobs overlap on the cores):",
        "",
        "| rule | jobs | seconds | share of the per-rule sum |",
        "|---|---|---|---|",
    ]
    for rule, (n, s) in sorted(per_rule.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"| {rule} | {n} | {s:.1f} | {100 * s / total:.0f} % |")
    lines.append(f"| all | {sum(n for n, _ in per_rule.values())} | {total:.1f} | 100 % |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.record:
        res = REPO / "benchmarks" / "results" / f"head_series_{datetime.date.today().isoformat()}.md"
        with open(res, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        print(f"recorded in {res}")
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if audit_ok else 1


if __name__ == "__main__":
    sys.exit(main())
