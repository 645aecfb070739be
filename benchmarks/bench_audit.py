"""Release audit time per GB vs reading the same bytes once (``cat > /dev/null``).

Usage::

    python benchmarks/bench_audit.py OUTPUT_DIR [OUTPUT_DIR ...]

Each OUTPUT_DIR is a finished workflow run (``release/`` and ``private/needles/``).
Both timings are taken warm (the files are read once before), best of 3. The goal
of issue #17: audit <= 1.5 x cat.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from neurodeid import audit


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def bench(out_dir: Path, repeats: int = 3) -> dict:
    release = out_dir / "release"
    files = _files(release)
    size = sum(p.stat().st_size for p in files)
    needle_files = sorted((out_dir / "private" / "needles").rglob("*.json"))
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)  # warm
    t_cat = min(_time(lambda: subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True))
                for _ in range(repeats))

    def run_audit():
        needles = audit.load_needles(needle_files, 3)
        audit.scan_release(release, audit.Matcher(needles))

    t_audit = min(_time(run_audit) for _ in range(repeats))
    return {"release": str(out_dir), "files": len(files), "MB": size / 1e6, "cat_s": t_cat, "audit_s": t_audit,
            "audit_s_per_GB": t_audit / (size / 1e9), "ratio": t_audit / t_cat}


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    print("release\tfiles\tMB\tcat_s\taudit_s\taudit_s_per_GB\tratio")
    for d in sys.argv[1:]:
        r = bench(Path(d))
        print(f"{r['release']}\t{r['files']}\t{r['MB']:.1f}\t{r['cat_s']:.3f}\t{r['audit_s']:.3f}\t"
              f"{r['audit_s_per_GB']:.1f}\t{r['ratio']:.2f}")
