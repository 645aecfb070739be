"""Release audit time per GB vs reading the same bytes once (``cat > /dev/null``).

Usage::

    python benchmarks/bench_audit.py OUTPUT_DIR [OUTPUT_DIR ...]

Each OUTPUT_DIR is a finished workflow run (``release/`` and ``private/needles/``).
Every timing is warm (the files are read once before) and the best of 3:

- ``cat_s``: ``cat`` of every released file to ``/dev/null`` (the goal of issue #17:
  audit <= 1.5 x cat);
- ``read_s``: the least any content scan must do, read each file the way it is meant to
  be read, with no matching: gunzip the ``.gz`` files, parse every DICOM with pydicom
  and convert every element value (what the structured scan reads);
- ``audit_s``: the audit as the workflow runs it (``audit.audit_release``: load the
  needle lists, build the matchers, scan, write the table), one process;
- ``audit2_s``: the same with 2 forked workers (``neurodeid audit --workers 2``,
  ``--set-threads audit=2``);
- ``scan_s``: the scan alone (matchers built beforehand): the part that grows with the
  release.
"""

from __future__ import annotations

import gzip
import inspect
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom

from neurodeid import audit


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _read_as_meant(files: list[Path]) -> None:
    def walk(ds):
        for elem in ds:
            if elem.VR == "SQ":
                for item in elem.value or []:
                    walk(item)

    for p in files:
        data = p.read_bytes()
        if p.name.endswith(".gz"):
            data = gzip.decompress(data)
        if p.name.endswith(".dcm"):
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            walk(ds.file_meta)
            walk(ds)


def bench(out_dir: Path, repeats: int = 3) -> dict:
    release = out_dir / "release"
    files = _files(release)
    size = sum(p.stat().st_size for p in files)
    needle_files = sorted((out_dir / "private" / "needles").rglob("*.json"))

    def cat():
        subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)

    cat()  # warm
    t_cat = min(_time(cat) for _ in range(repeats))
    t_read = min(_time(lambda: _read_as_meant(files)) for _ in range(repeats))
    with tempfile.TemporaryDirectory() as tmp:
        t_audit = min(_time(lambda: audit.audit_release(release, needle_files, Path(tmp) / "audit.tsv", 3))
                      for _ in range(repeats))
        if "workers" in inspect.signature(audit.audit_release).parameters:
            t_audit2 = min(_time(lambda: audit.audit_release(release, needle_files, Path(tmp) / "audit.tsv", 3,
                                                             workers=2)) for _ in range(repeats))
        else:  # a version without workers
            t_audit2 = float("nan")
    scoped = _scoped_matchers(needle_files)
    t_scan = min(_time(lambda: audit.scan_release(release, scoped)) for _ in range(repeats))
    return {"release": str(out_dir), "files": len(files), "MB": size / 1e6, "cat_s": t_cat, "read_s": t_read,
            "audit_s": t_audit, "audit2_s": t_audit2, "scan_s": t_scan, "audit_s_per_GB": t_audit / (size / 1e9),
            "ratio": t_audit / t_cat, "ratio2": t_audit2 / t_cat, "scan_ratio": t_scan / t_cat,
            "audit_vs_read": t_audit / t_read}


def _scoped_matchers(needle_files) -> audit.ScopedMatchers:
    """The matchers :func:`audit.audit_release` builds (no allow-list)."""
    global_needles, scoped = [], {}
    for f in needle_files:
        subject = audit.subject_of(f)
        for n in audit.load_needles([f], 3):
            if subject is not None and audit.is_scoped(n):
                scoped.setdefault(subject, []).append(n)
            else:
                global_needles.append(n)
    return audit.ScopedMatchers(global_needles, scoped)


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


COLUMNS = ("release", "files", "MB", "cat_s", "read_s", "audit_s", "audit2_s", "scan_s", "audit_s_per_GB", "ratio",
           "ratio2", "scan_ratio", "audit_vs_read")

if __name__ == "__main__":
    print("\t".join(COLUMNS))
    for d in sys.argv[1:]:
        r = bench(Path(d))
        print("\t".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS), flush=True)
