#!/usr/bin/env python3
"""Byte-identity guard for de-identification: this checkout against a reference commit.

Every DICOM file under ``--data`` (default ``$NEURODEID_SHARED_DATA/dicom``), the planted
corpus of ``tests/deid_corpus.py`` and pydicom's own test files (unusual encodings:
big endian, implicit VR, deflated, odd lengths) are de-identified per folder through
:func:`neurodeid.deid.deidentify_series` under several configurations (default options,
no option, every retain/clean option with the time of day dropped). For each input the
manifest holds the sha256 of the output, the status, the quarantine reason and the
per-file report, and the needles of the input under the configuration's options.

Usage::

    python scripts/deid_guard.py [--ref b72c2f5] [--data DIR]   # compare, exit 1 on a difference
    python scripts/deid_guard.py dump OUT.json [--data DIR]     # the manifest of the code on PYTHONPATH

The reference code is extracted with ``git archive`` into a temporary folder and run
in a subprocess with its own ``src`` first on PYTHONPATH; its manifest is cached in
``/tmp`` per commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEY = b"neurodeid-guard-key-not-secret"


def _configs():
    """``{name: DeidConfig}`` of the configurations every file goes through."""
    from neurodeid.deid import DeidConfig
    from neurodeid.deid.profile import DEFAULT_OPTIONS, OPTIONS

    every = frozenset(o for o in OPTIONS if o != "retain_long_full_dates")
    return {
        "default": DeidConfig(key=KEY, subject_label="g01", date_shift_days=-123, options=frozenset(DEFAULT_OPTIONS)),
        "none": DeidConfig(key=KEY, subject_label="g01", date_shift_days=17, options=frozenset()),
        "every": DeidConfig(key=KEY, subject_label="g01", date_shift_days=-400, options=every, keep_time_of_day=False),
    }


def _inputs(data: Path, scratch: Path) -> dict[str, list[Path]]:
    """``{folder label: files}``: the shared data per folder, the planted corpus, pydicom's test files."""
    import pydicom.data

    sys.path.insert(0, str(REPO / "tests"))
    import deid_corpus

    groups: dict[str, list[Path]] = {}
    for p in sorted(q for q in data.rglob("*") if q.is_file()):
        groups.setdefault(str(p.parent.relative_to(data)), []).append(p)
    corpus = deid_corpus.build_corpus(scratch / "planted", ("retain_safe_private", "retain_long_modified_dates"))
    groups["<planted>"] = list(corpus.files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test_files = sorted(Path(f) for f in pydicom.data.get_testdata_files("*") if f.endswith(".dcm"))
    for f in test_files:  # one series each: their UIDs and numbers are unrelated
        groups[f"<pydicom>/{f.name}"] = [f]
    return groups


def _needles(path: Path, options) -> list | str:
    import pydicom

    from neurodeid.audit.needles import dataset_needles

    try:
        ds = pydicom.dcmread(path, force=True)
        return sorted(repr(n) for n in dataset_needles(ds, options))
    except Exception as exc:  # noqa: BLE001 - the error is part of the manifest
        return f"{type(exc).__name__}: {exc}"


def dump(data: Path, out: Path) -> None:
    """Write the manifest (see the module docstring) of the neurodeid on ``sys.path``."""
    from neurodeid.deid import deidentify_series

    manifest: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="deid_guard_") as tmp:
        tmp = Path(tmp)
        groups = _inputs(data, tmp)
        for cname, cfg in _configs().items():
            for g, (label, files) in enumerate(groups.items()):
                out_dir = tmp / "out" / cname / f"{g:04d}"
                try:
                    results = deidentify_series(files, out_dir, cfg)
                except Exception as exc:  # noqa: BLE001 - a whole series quarantined is a result too
                    results = [{"source": str(f), "output": None, "status": "error",
                                "reason": f"{type(exc).__name__}: {exc}", "report": None} for f in files]
                for r in results:
                    src = Path(r["source"])
                    key = f"{cname}|{label}|{src.name}"
                    digest = hashlib.sha256(Path(r["output"]).read_bytes()).hexdigest() if r["output"] else None
                    manifest[key] = {
                        "output": Path(r["output"]).name if r["output"] else None,
                        "sha256": digest,
                        "status": str(r["status"]),
                        "reason": str(r["reason"]).replace(str(tmp), "<TMP>"),
                        "report": r["report"],
                        "needles": _needles(src, cfg.options),
                    }
    out.write_text(json.dumps(manifest, indent=0, sort_keys=True))


def _reference_manifest(ref: str, data: Path) -> Path:
    """The manifest of commit ``ref`` (cached in /tmp per commit and data folder)."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()
    tag = hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:8]
    cached = Path(tempfile.gettempdir()) / f"deid_guard_{sha[:12]}_{tag}.json"
    if cached.exists():
        return cached
    with tempfile.TemporaryDirectory(prefix="deid_guard_ref_") as tree:
        archive = subprocess.run(["git", "archive", sha, "src", "tests", "scripts"], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        env = dict(os.environ, PYTHONPATH=str(Path(tree) / "src"))
        # the reference's code, this guard's dump (the same script at any commit is not assumed)
        subprocess.run([sys.executable, __file__, "dump", str(cached), "--data", str(data), "--repo", tree],
                       env=env, check=True)
    return cached


def compare(ref: str, data: Path) -> int:
    """Compare this checkout's manifest with ``ref``'s; print the differences, 0 if none."""
    ref_path = _reference_manifest(ref, data)
    with tempfile.TemporaryDirectory(prefix="deid_guard_new_") as tmp:
        new_path = Path(tmp) / "new.json"
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        subprocess.run([sys.executable, __file__, "dump", str(new_path), "--data", str(data)], env=env, check=True)
        old, new = json.loads(ref_path.read_text()), json.loads(new_path.read_text())
    diffs = sorted(set(old) ^ set(new))
    for k in sorted(set(old) & set(new)):
        for field in ("output", "sha256", "status", "reason", "report", "needles"):
            if old[k][field] != new[k][field]:
                diffs.append(f"{k}: {field} differs")
    n_ok = sum(1 for v in new.values() if v["status"] == "ok")
    print(f"deid guard vs {ref}: {len(new)} (file, configuration) pairs, {n_ok} written, "
          f"{len(new) - n_ok} quarantined; {len(diffs)} differences")
    for d in diffs[:50]:
        print("  ", d)
    return 1 if diffs else 0


def main(argv=None) -> int:
    global REPO
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cmd", nargs="?", default="compare", choices=("compare", "dump"))
    ap.add_argument("out", nargs="?", type=Path, help="dump: the manifest to write")
    ap.add_argument("--ref", default="b72c2f5")  # 2026-12-07: audit vocabulary, safe attributes and file meta changed on purpose
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("NEURODEID_SHARED_DATA", REPO.parent / "shared" / "data")) / "dicom")
    ap.add_argument("--repo", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cmd == "dump":
        warnings.simplefilter("ignore")  # pydicom warns on every odd file; the manifest holds the outcome
        REPO = args.repo
        dump(args.data, args.out)
        return 0
    return compare(args.ref, args.data)


if __name__ == "__main__":
    sys.exit(main())
