"""Benchmark: neurodeid.convert.convert_series vs bare dcm2niix on the dcm_qa suites.

Both convert the same series, one series per call, in the same process tree, interleaved
(bare, ours, bare, ours, ...) so machine load hits both alike. Bare dcm2niix writes
.nii.gz + JSON (``-z y -b y -ba y``, internal zlib, level 6); ours runs dcm2niix
uncompressed, reads the headers independently (concurrently with dcm2niix), checks every
affine and the first slice's voxels, blanks header text, rebuilds the sidecar and gzips
(level 6). A result file is appended to benchmarks/results/convert_<date>.md.

    python benchmarks/bench_convert.py [--repeats 5] [--data DIR] [--no-record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from neurodeid.convert import convert_series, find_dcm2niix

ROOT = Path(__file__).resolve().parents[1]


def suite_series(data: Path) -> list[tuple[str, list[Path]]]:
    """(label, files) for every series of dcm_qa_nih, dcm_qa_ts and dcm_qa_12bit."""
    out = []
    for d in sorted((data / "dicom/dcm_qa_nih/In").glob("*/mr_*")):
        out.append((f"nih/{d.parent.name}/{d.name}", sorted(d.glob("*.dcm"))))
    for suite in ("dcm_qa_ts", "dcm_qa_12bit"):
        for f in sorted((data / "dicom" / suite / "In").glob("*.dcm")):
            out.append((f"{suite}/{f.stem}", [f]))
    return out


def bare(exe: str, files: list[Path], out: Path) -> None:
    """dcm2niix alone on one series (a folder holding only its files)."""
    src = files[0].parent if len(files) > 1 else None
    if src is None:  # single-file series live in a folder with other series: stage it
        src = out / "in"
        src.mkdir(parents=True)
        os.link(files[0], src / files[0].name)
    o = out / "o"
    o.mkdir(parents=True)
    subprocess.run(
        [exe, "-z", "y", "-b", "y", "-ba", "y", "-d", "0", "-f", "%s", "-o", str(o), str(src)],
        check=True,
        capture_output=True,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data", default=os.environ.get("NEURODEID_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--compresslevel", type=int, default=1, help="gzip level of convert_series (default 1, its default)")
    args = ap.parse_args(argv)
    data = Path(args.data)
    series = suite_series(data)
    if not series:
        print(f"no dcm_qa suites under {data}", file=sys.stderr)
        return 2
    exe = find_dcm2niix()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    nfiles = sum(len(f) for _, f in series)
    base = Path(tempfile.mkdtemp(prefix="nd-bench-convert-"))
    t_bare, t_ours = [], []
    try:
        # warm-up: page cache, imports
        for label, files in series:
            bare(exe, files, base / "warm" / label)
            convert_series(files, base / "warmours" / label, compresslevel=args.compresslevel)
        for r in range(args.repeats):
            tb = to = 0.0
            for label, files in series:
                t = time.perf_counter()
                bare(exe, files, base / f"b{r}" / label)
                tb += time.perf_counter() - t
                t = time.perf_counter()
                convert_series(files, base / f"o{r}" / label, compresslevel=args.compresslevel)
                to += time.perf_counter() - t
            t_bare.append(tb)
            t_ours.append(to)
            shutil.rmtree(base / f"b{r}", ignore_errors=True)
            shutil.rmtree(base / f"o{r}", ignore_errors=True)
            print(f"repeat {r + 1}: dcm2niix {tb:.3f} s, convert_series {to:.3f} s, ratio {to / tb:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    mb, mo = statistics.median(t_bare), statistics.median(t_ours)
    ratio = mo / mb
    print(
        f"median over {args.repeats}: dcm2niix {mb:.3f} s, convert_series {mo:.3f} s, ratio {ratio:.2f} (goal <= 1.3)"
    )
    if not args.no_record:
        today = dt.date.today().isoformat()
        res = ROOT / "benchmarks" / "results" / f"convert_{today}.md"
        res.parent.mkdir(parents=True, exist_ok=True)
        load = os.getloadavg()
        with open(res, "a") as fp:
            fp.write(
                f"\n## convert_series vs bare dcm2niix, {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}\n\n"
                f"- machine: `{' '.join(platform.uname())}`, nproc {os.cpu_count()}, load average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
                f"- dcm2niix: {version} ({exe})\n"
                f"- command: `python benchmarks/bench_convert.py --repeats {args.repeats} --compresslevel {args.compresslevel}`\n"
                f"- gzip: bare dcm2niix at its default level 6 (internal zlib); convert_series at level {args.compresslevel}\n"
                f"- input: {len(series)} series, {nfiles} files (dcm_qa_nih, dcm_qa_ts, dcm_qa_12bit), one call per series, interleaved\n\n"
                "| repeat | dcm2niix -z y (s) | convert_series (s) | ratio |\n|---|---|---|---|\n"
                + "".join(
                    f"| {i + 1} | {b:.3f} | {o:.3f} | {o / b:.2f} |\n" for i, (b, o) in enumerate(zip(t_bare, t_ours))
                )
                + f"| **median** | **{mb:.3f}** | **{mo:.3f}** | **{ratio:.2f}** (goal <= 1.3) |\n"
            )
        print(f"recorded in {res}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
