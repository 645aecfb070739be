#!/usr/bin/env python3
"""sha256 of every file a refactoring must not change: the release, the review sheet and
the records the report is made of (issue 20's guard).

Usage::

    python scripts/release_manifest.py RESULTS_DIR > manifest.json
    python scripts/release_manifest.py RESULTS_DIR --compare manifest.json

``RESULTS_DIR`` is a workflow's ``output_dir``. Logs, benchmarks, caches and work folders
are left out; everything in ``release/`` and the private tables and pages listed in
:data:`PRIVATE_GLOBS` is in, byte for byte, except that the private JSON results are
hashed without their timings (keys ``seconds`` and ``*_seconds``) and with ``RESULTS_DIR``
written as ``<results>`` (they name the run's own files).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

# Private records that the review sheet and the report are read from or made of.
PRIVATE_GLOBS = (
    "review.tsv",
    "review/release_state.tsv",
    "release_plan.tsv",
    "index.tsv",
    "quarantine.tsv",
    "audit.tsv",
    "released/*.tsv",
    "bids/*.json",
    "deface/**/*.json",
    "deface_dicom/**/*.json",
    "face/**/*.json",
    "redact/**/*.json",
    "morphometry/**/*.tsv",
    "quasi/k_anonymity.json",
    "report/*.html",
    "report/*.rst",
    "report/subjects/*.html",
)


def _untimed(value):
    """A JSON value without its timing keys (they differ from run to run)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not (k == "seconds" or k.endswith("_seconds"))}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _guarded_bytes(path: Path, results: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix != ".json" or results / "release" in path.parents:
        return data
    text = data.decode("utf-8").replace(str(results.resolve()), "<results>").replace(str(results), "<results>")
    return json.dumps(_untimed(json.loads(text)), sort_keys=True).encode()


def manifest(results: Path) -> dict[str, str]:
    """Relative path -> sha256 of every guarded file under ``results``."""
    files = [p for p in (results / "release").rglob("*") if p.is_file()]
    for pattern in PRIVATE_GLOBS:
        files += [p for p in (results / "private").glob(pattern) if p.is_file()]
    return {p.relative_to(results).as_posix(): hashlib.sha256(_guarded_bytes(p, results)).hexdigest()
            for p in sorted(set(files))}


def compare(now: dict[str, str], before: dict[str, str]) -> list[str]:
    """One line per file added, removed or changed (empty when the two are equal)."""
    lines = [f"removed: {k}" for k in sorted(before.keys() - now.keys())]
    lines += [f"added: {k}" for k in sorted(now.keys() - before.keys())]
    lines += [f"changed: {k}" for k in sorted(now.keys() & before.keys()) if now[k] != before[k]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the workflow's output_dir")
    parser.add_argument("--compare", type=Path, help="a manifest written before: print the differences")
    args = parser.parse_args(argv)
    now = manifest(args.results)
    if not args.compare:
        json.dump(now, sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    diff = compare(now, json.loads(args.compare.read_text()))
    print("\n".join(diff) or f"identical: {len(now)} files")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
