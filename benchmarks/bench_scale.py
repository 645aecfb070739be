#!/usr/bin/env python3
"""Scale benchmark: the workflow's fixed costs at 100 ... 1,000 (... 5,000) subjects.

For each N, builds a synthetic input of N subjects x 1 study x 2 series x 3 slices (small
header-valid CT images cloned from pydicom's CT_small.dcm with new UIDs and IDs), then times,
each as a separate ``snakemake`` process from the repository (as a user runs it):

1. ``dry run, cold``: ``snakemake -n`` on an empty output folder (the parse-time index reads
   every header: the first call after new data);
2. ``dry run``: ``snakemake -n`` again, index cache warm, every job still to do (goal <= 15 s
   at 1,000 subjects); ``dry run, quiet``: the same with ``--quiet rules`` (counts only, no job
   listing);
3. outputs are then made complete: a real run for N <= --full-run-max (default 100), else
   empty placeholder outputs written in the dry run's job order (said in the record; the
   ``--touch`` of Snakemake only touches outputs that exist, and took 10 min at 1,000 subjects);
4. ``no-op rerun``: ``snakemake --cores 2`` on the complete folder (goal <= 15 s; it must
   answer "Nothing to be done");
5. ``index rescan``: ``neurodeid.inputs.dicom.build_index`` in this process on the unchanged tree
   (median of 3; goal <= 3 s);
6. anchor: ``snakemake --version`` (Python + Snakemake start-up), the floor of every call.

``--profile-dir DIR`` also writes a cProfile of an extra warm dry run and an extra no-op rerun
of the largest N (``python -m cProfile -o``, not the timed calls), with the top entries printed.

Usage: python benchmarks/bench_scale.py [--subjects 100 1000] [--workdir DIR] [--record]
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from neurodeid import index
from neurodeid.inputs import dicom as dicom_input

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
BENCH_KEY = "neurodeid-bench-scale-key-0123456789abcdef"
SERIES_PER_SUBJECT, SLICES = 2, 3
GOALS = {"dry run": 15.0, "no-op rerun": 15.0, "index rescan": 3.0}


def _letters(i: int) -> str:
    """0 -> AAAA, 1 -> AAAB, ...: a name part without digits."""
    out = ""
    for _ in range(4):
        i, r = divmod(i, 26)
        out = chr(65 + r) + out
    return out


def make_tree(root: Path, n_subjects: int) -> int:
    """N subjects x 1 study x 2 series x 3 slices; returns the number of files written."""
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    # CT_small's GE private elements are not what this benchmark measures
    base.remove_private_tags()
    made = 0
    for s in range(n_subjects):
        study_uid = f"2.25.{10**20 + s * 1000}"
        for se in range(SERIES_PER_SUBJECT):
            series_uid = f"{study_uid}{se + 1}"
            folder = root / f"PAT{s:05d}" / "STUDY" / f"SE{se + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(SLICES):
                base.PatientID = f"P{s:06d}"
                base.PatientName = f"SYNTH^{_letters(s)}"  # letters: a digit run would match pixel bytes
                base.StudyInstanceUID = study_uid
                base.StudyDate = "20200101"
                base.SeriesInstanceUID = series_uid
                base.SeriesNumber = se + 1
                base.InstanceNumber = i + 1
                base.SOPInstanceUID = f"{series_uid}.{i + 1}"
                base.file_meta.MediaStorageSOPInstanceUID = base.SOPInstanceUID
                base.save_as(folder / f"IM{i + 1:04d}.dcm", enforce_file_format=True)
                made += 1
    return made


def env() -> dict:
    e = dict(os.environ)
    e["NEURODEID_KEY"] = BENCH_KEY
    return e


def smk(args: list[str], log: Path, profile: Path | None = None, check: bool = True) -> tuple[float, str]:
    """Run snakemake from the repository; (seconds, combined output)."""
    cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "snakemake"] if profile else SNAKEMAKE
    t = time.perf_counter()
    proc = subprocess.run([*cmd, *args], cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dt = time.perf_counter() - t
    log.write_text(proc.stdout)
    if check and proc.returncode != 0:
        sys.exit(f"snakemake {' '.join(args[:4])}... failed ({proc.returncode}); log: {log}\n{proc.stdout[-3000:]}")
    return dt, proc.stdout


def rule_depths(cfg: list[str], log: Path) -> dict[str, int]:
    """Rule -> length of the longest chain of rules before it (``snakemake --rulegraph``)."""
    _, dot = smk(["--rulegraph", *cfg], log)
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, flags=re.M))
    edges = [(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)]
    depth = {n: 0 for n in names.values()}
    for _ in range(len(depth)):
        for a, b in edges:
            depth[b] = max(depth[b], depth[a] + 1)
    return depth


def make_placeholders(dry_run_text: str, depth: dict[str, int]) -> int:
    """Create every output of a dry run's job list as an empty placeholder, with mtime
    now + 10 s x (its rule's depth in the rule graph), so each is newer than its inputs.
    Suffix-less paths under work/ or report/ (the rules' ``directory()`` outputs) become
    folders. Returns the number of outputs made."""
    now, n, rule = time.time(), 0, None
    for line in dry_run_text.splitlines():
        m = re.match(r"^\s*(?:local)?rule (\w+):\s*$", line)
        if m:
            rule = m.group(1)
            continue
        line = line.strip()
        if not line.startswith("output: ") or rule is None:
            continue
        stamp = now + 10 * depth.get(rule, 0)
        for path in line[len("output: "):].split(", "):
            p = Path(path)
            if "." not in p.name and ("/work/" in path or "/report/" in path):
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch()
            os.utime(p, (stamp, stamp))
            n += 1
    return n


def top_profile(path: Path, n: int = 18) -> str:
    buf = io.StringIO()
    pstats.Stats(str(path), stream=buf).sort_stats("cumulative").print_stats(n)
    return buf.getvalue()


def bench_one(n: int, work: Path, full_run_max: int, profile_dir: Path | None) -> dict:
    # a new output path each time: Snakemake keeps provenance per output path in .snakemake/metadata
    tree, out = work / f"tree_{n}", work / f"out_{n}_{time.strftime('%Y%m%dT%H%M%S')}"
    if not tree.exists():
        t_make = time.perf_counter()
        files = make_tree(tree, n)
        print(f"[{n}] built {files} files in {time.perf_counter() - t_make:.1f} s", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    cfg = ["--cores", "2", "--config", f"input_dir={tree}", f"output_dir={out}"]
    logs = work / f"logs_{n}"
    logs.mkdir(exist_ok=True)
    r: dict = {"subjects": n, "files": n * SERIES_PER_SUBJECT * SLICES, "series": n * SERIES_PER_SUBJECT}

    r["dry run, cold"], _ = smk(["-n", *cfg], logs / "dry_cold.log")
    r["dry run"], text = smk(["-n", *cfg], logs / "dry_warm.log")
    r["dry run, quiet"], _ = smk(["-n", "--quiet", "rules", *cfg], logs / "dry_quiet.log")
    if profile_dir:  # an extra, profiled call: cProfile slows it down about twice
        smk(["-n", *cfg], logs / "dry_prof.log", profile=profile_dir / f"dry_run_{n}.prof")
    r["jobs"] = next((int(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("total ")), -1)
    print(f"[{n}] dry run cold {r['dry run, cold']:.1f} s, warm {r['dry run']:.1f} s, {r['jobs']} jobs", flush=True)

    if n <= full_run_max:
        r["completed by"] = "a real run"
        r["full run"], _ = smk(cfg, logs / "full.log")
    else:
        # `snakemake --touch` only touches outputs that exist (and took 10 min for 10,000 jobs):
        # write empty placeholders for every job's outputs instead, in the dry run's job order
        # (dependencies first), so each output is newer than its inputs.
        r["completed by"] = "placeholders"
        t = time.perf_counter()
        make_placeholders(text, rule_depths(cfg, logs / "rulegraph.log"))
        r["full run"] = time.perf_counter() - t
    print(f"[{n}] completed by {r['completed by']} in {r['full run']:.1f} s", flush=True)

    r["no-op rerun"], text = smk(cfg, logs / "noop.log")
    r["nothing to do"] = "Nothing to be done" in text
    if not r["nothing to do"]:  # e.g. the workflow's code changed during a long full run: once more
        r["no-op rerun"], text = smk(cfg, logs / "noop2.log")
        r["nothing to do"] = "Nothing to be done" in text
    if profile_dir:
        smk(cfg, logs / "noop_prof.log", profile=profile_dir / f"noop_{n}.prof")
    print(f"[{n}] no-op rerun {r['no-op rerun']:.1f} s (nothing to be done: {r['nothing to do']})", flush=True)

    rescans = []
    for _ in range(3):
        t = time.perf_counter()
        dicom_input.build_index(tree, out / "private", BENCH_KEY.encode())
        rescans.append(time.perf_counter() - t)
    r["index rescan"] = statistics.median(rescans)
    print(f"[{n}] index rescan {r['index rescan']:.2f} s", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--full-run-max", type=int, default=100, help="largest N completed by a real run (else placeholders)")
    ap.add_argument("--profile-dir", type=Path, default=None, help="cProfile the largest N's dry run and no-op rerun")
    ap.add_argument("--record", action="store_true", help="append the result to benchmarks/results/")
    ap.add_argument("--record-suffix", default="",
                    help="record in scale_<date>_<suffix>.md (a second record of the same day)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nd-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.profile_dir:
        args.profile_dir.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    subprocess.run([*SNAKEMAKE, "--version"], capture_output=True, check=True)
    anchor = time.perf_counter() - t
    results = []
    for n in sorted(args.subjects):
        prof = args.profile_dir if (args.profile_dir and n == max(args.subjects)) else None
        results.append(bench_one(n, work, args.full_run_max, prof))

    cols = ["subjects", "files", "series", "jobs", "dry run, cold", "dry run", "dry run, quiet", "completed by", "full run",
            "no-op rerun", "nothing to do", "index rescan"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        lines.append("| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    big = results[-1]
    verdict = [f"anchor, `snakemake --version` (start-up floor): {anchor:.2f} s"]
    for name, goal in GOALS.items():
        ok = big[name] <= goal
        verdict.append(f"{name} at {big['subjects']} subjects: {big[name]:.2f} s, goal <= {goal:.0f} s: {'met' if ok else 'NOT met'}")
    if len(results) > 1:
        a, b = results[0], results[-1]
        k = b["subjects"] / a["subjects"]
        for name in ("dry run", "no-op rerun", "index rescan"):
            verdict.append(f"growth {a['subjects']} -> {b['subjects']} subjects (x{k:.0f}): {name} x{b[name] / a[name]:.1f}")
    report = "\n".join(lines) + "\n\n" + "\n".join(f"- {v}" for v in verdict) + "\n"
    print(report)
    if args.profile_dir:
        for p in sorted(args.profile_dir.glob("*.prof")):
            print(f"== {p}\n{top_profile(p)}")
    if args.record:
        suffix = f"_{args.record_suffix}" if args.record_suffix else ""
        out = REPO / "benchmarks" / "results" / f"scale_{datetime.date.today().isoformat()}{suffix}.md"
        u = platform.uname()
        import snakemake

        text = (
            f"# Scale benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}\n\n"
            f"- machine: {u.system} {u.release} {u.machine}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"snakemake {snakemake.__version__}, pydicom {pydicom.__version__}\n"
            f"- command: `python benchmarks/bench_scale.py --subjects {' '.join(map(str, args.subjects))}"
            f" --full-run-max {args.full_run_max} --record"
            + (f" --record-suffix {args.record_suffix}" if args.record_suffix else "") + "`\n"
            f"- input: N subjects x 1 study x {SERIES_PER_SUBJECT} series x {SLICES} slices (CT_small.dcm clones); "
            "times in seconds, each a separate `snakemake` process from the repository\n\n"
            + report
        )
        with out.open("a") as fh:
            fh.write(text + "\n")
        print(f"recorded in {out}")


if __name__ == "__main__":
    main()
