"""Mutation check of the release audit (issue #17): removing any one needle source or
matching mode must make at least one test fail.

Usage::

    python benchmarks/mutate_audit.py [--out benchmarks/results/audit_mutations_DATE.md] [--only NAME]

Each mutation below removes exactly one needle source (``needles.py``: where needles come
from and in which spellings) or one matching mode (``audit.py``: where and how a released
file is read). For each, a copy of ``src/`` and ``tests/`` is mutated (the working tree is
never touched) and the audit tests are run against it: first ``tests/test_audit.py``
(seconds), then, if that still passes, ``tests/test_audit_corpus.py`` (the planted corpus,
minutes). A mutation is KILLED when a test fails, SURVIVED when all pass; a mutation whose
code is not found (the source changed) counts as NOT APPLIED, and so as a failure of this
check: update the mutation with the code. The unmutated copy must pass first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The real vendor files of the corpus (as tests/conftest.py finds them).
SHARED_DATA = Path(os.environ.get("NEURODEID_SHARED_DATA", REPO.parent / "shared" / "data"))
N, A = "src/neurodeid/audit/needles.py", "src/neurodeid/audit/scan.py"
SOURCE, MODE = "needle source", "matching mode"
FAST, CORPUS = ["tests/test_audit.py"], ["tests/test_audit_corpus.py"]

#: (name, kind, file, code, replacement)
MUTATIONS = [
    # ---- needle sources: where needles come from, in which spellings
    ("DICOM element values", SOURCE, N,
     "            for text, cat in element_needles(elem, min_length):",
     "            for text, cat in []:"),
    ("elements inside sequences (every depth)", SOURCE, N,
     "                    walk(item, f\"{where}[{i}].\")",
     "                    pass"),
    ("private elements", SOURCE, N,
     "            if elem.tag.is_private:\n                creator",
     "            if elem.tag.is_private:\n                continue\n                creator"),
    ("file meta MediaStorageSOPInstanceUID", SOURCE, N,
     "            found.add(Needle(v, \"MediaStorageSOPInstanceUID\", UID))",
     "            pass"),
    ("UID values (non-public UIDs)", SOURCE, N,
     "        if vr == \"UI\" and is_public_uid(text):",
     "        if vr == \"UI\":"),
    ("direct identifiers are needles even when vocabulary", SOURCE, N,
     "                if not is_direct and text.strip().lower() in vocab:",
     "                if text.strip().lower() in vocab:"),
    ("date spellings", SOURCE, N,
     "    return list(dict.fromkeys(out))\n\n\n_SEPARATORS",
     "    return [v]\n\n\n_SEPARATORS"),
    ("IDs without separators", SOURCE, N,
     "    if bare != v and bare:",
     "    if False:"),
    ("name parts", SOURCE, N,
     "    out += [w for w in _NAME_SPLIT.split(v) if w]",
     "    pass"),
    ("CJK name parts of 1-2 characters", SOURCE, N,
     " and not (category in (NAME, PATH_WORD) and is_cjk(text))",
     ""),
    ("raw file and folder name words", SOURCE, N,
     "                found.add(Needle(word, PATH_SOURCE, PATH_WORD))",
     "                pass"),
    ("glued sub-tokens of name words", SOURCE, N,
     "        if len(subs) > 1:",
     "        if False:"),
    # ---- matching modes: where and how released files are read
    ("file and folder names", MODE, A,
     "for off, n in matchers(rel)[0].find(name)]",
     "for off, n in []]"),
    ("DICOM elements", MODE, A,
     "        _dicom_walk(ds, \"\", matcher, long_matcher, out)\n",
     "        pass\n"),
    ("DICOM sequence items (every depth)", MODE, A,
     "                _dicom_walk(item, f\"{where}[{i}].\", matcher, long_matcher, out)",
     "                pass"),
    ("DICOM file meta elements", MODE, A,
     "        _dicom_walk(getattr(ds, \"file_meta\", None) or [], \"\", matcher, long_matcher, out, meta=True)",
     "        pass"),
    ("DICOM vendor binary blocks (OB/UN/private bytes) as text", MODE, A,
     "            found = _find_value(matcher, value)  # other vendor blocks: text where it can be",
     "            found = []"),
    ("Siemens CSA item values", MODE, A,
     "            found = [(o, n, item) for item, text in csa for o, n in matcher.find(text)]",
     "            found = []"),
    ("DICOM preamble", MODE, A,
     "    out += [(o, n, \"preamble\") for o, n in matcher.find_bytes(bytes(preamble))]",
     "    pass"),
    ("Pixel Data bytes after the image", MODE, A,
     "        if expected is not None and len(pixels) > expected + 1:",
     "        if False:"),
    ("DICOM bytes after the dataset", MODE, A,
     "        if structured is not None and payload is not None and payload[1] < len(data):",
     "        if False:"),
    ("image payloads (long needles)", MODE, A,
     "        structured += [(o + a, n, \"image payload\") for o, n in long_matcher.find_bytes(data[a:b])]",
     "        pass"),
    ("JSON values", MODE, A,
     "    return [(o, n, f\"JSON {key}\") for key, text in _json_values(doc, \"\") for o, n in matcher.find(text)]",
     "    return []"),
    ("TSV cells", MODE, A,
     "            out += [(o, n, f\"row {r}, column {col}\") for o, n in matcher.find(cell)]",
     "            pass"),
    ("NIfTI header and extensions", MODE, A,
     "    out = [(o, n, \"NIfTI header and extensions\") for o, n in matcher.find_bytes(data[:vox])]",
     "    out = []"),
    ("NIfTI bytes after the voxels", MODE, A,
     "    out += [(o + end, n, \"NIfTI bytes after the voxels\") for o, n in matcher.find_bytes(data[end:])]",
     "    pass"),
    ("NRRD header", MODE, A,
     "    return [(o, n, \"NRRD header\") for o, n in matcher.find_bytes(data[:end])]",
     "    return []"),
    ("plain text files (README)", MODE, A,
     "    return [(o, n, \"text\") for o, n in matcher.find(text)]",
     "    return []"),
    ("unknown binary files (long needles)", MODE, A,
     "        structured, payload = (text, None) if text is not None else ([], (0, len(data)))",
     "        structured, payload = (text, None) if text is not None else ([], None)"),
    ("gzip header (original file name)", MODE, A,
     "found = [(o, n, \"gzip header\", LOC_BYTES) for o, n in matcher.find_bytes(head)]",
     "found = []"),
    ("gunzipped content", MODE, A,
     "raw = _gunzip(data) if name.endswith(\".gz\") else None",
     "raw = None"),
    ("any case (text)", MODE, A,
     "        low = text.lower()\n        if len(low)",
     "        low = text\n        if len(low)"),
    ("any case (bytes)", MODE, A,
     "data.translate(_LATIN1_LOWER), overlapping=True)",
     "data, overlapping=True)"),
    ("UTF-8 spellings of non-ASCII needles in bytes", MODE, A,
     "    for t in (text, text.lower(), text.upper()):",
     "    for t in ():"),
    ("whole tokens only for short needles", MODE, A,
     "(len(s), len(s) < TOKEN_MATCH_BELOW or s.isdigit(), tuple(ns))",
     "(len(s), False, tuple(ns))"),
    ("token boundary where letters meet digits", MODE, A,
     "    if a.isdigit() != b.isdigit():\n        return False",
     "    pass"),
    ("token boundary at a camelCase step", MODE, A,
     "    return not (a.islower() and b.isupper())",
     "    return True"),
    ("long needles in every subject's files", MODE, A,
     "    return needle.category in (VENDOR_TEXT, FREE_TEXT) or len(needle.text) < TOKEN_MATCH_BELOW",
     "    return True"),
]


def _copy(dest: Path) -> None:
    for part in ("src", "tests"):
        shutil.copytree(REPO / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")


def _pytest(root: Path, tests: list[str]) -> tuple[bool, str]:
    env = dict(os.environ, PYTHONPATH=str(root / "src"), PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("NEURODEID_SHARED_DATA", str(SHARED_DATA))  # the copy's conftest would look beside the copy
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                       cwd=root, env=env, capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    return r.returncode == 0, lines[-1] if lines else r.stderr[-200:]


def run(only: str | None = None) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="neurodeid-mutate-") as tmp:
        root = Path(tmp)
        _copy(root)
        probe = subprocess.run([sys.executable, "-c", "import neurodeid; print(neurodeid.__file__)"],
                               cwd=root, env=dict(os.environ, PYTHONPATH=str(root / "src")),
                               capture_output=True, text=True).stdout.strip()
        if not probe.startswith(str(root)):
            sys.exit(f"the copy is not the neurodeid imported ({probe}): cannot mutate")
        if not (SHARED_DATA / "dicom").is_dir():
            sys.exit(f"shared data not found: {SHARED_DATA} (set NEURODEID_SHARED_DATA): the corpus needs real vendor files")
        ok, last = _pytest(root, FAST + CORPUS)
        if not ok:
            sys.exit(f"the unmutated audit tests fail: {last}")
        for name, kind, rel, code, replacement in MUTATIONS:
            if only and only not in name:
                continue
            f = root / rel
            orig = f.read_text()
            t0 = time.perf_counter()
            if orig.count(code) != 1:
                rows.append({"name": name, "kind": kind, "result": "NOT APPLIED",
                             "by": f"code found {orig.count(code)} times in {rel}", "s": 0.0})
                print(f"{name}\tNOT APPLIED", flush=True)
                continue
            f.write_text(orig.replace(code, replacement, 1))
            try:
                by = "tests/test_audit.py"
                passed, last = _pytest(root, FAST)
                if passed:
                    by = "tests/test_audit_corpus.py"
                    passed, last = _pytest(root, CORPUS)
            finally:
                f.write_text(orig)
            result = "SURVIVED" if passed else "KILLED"
            rows.append({"name": name, "kind": kind, "result": result, "by": f"{by}: {last}" if not passed else last,
                         "s": time.perf_counter() - t0})
            print(f"{name}\t{result}\t{rows[-1]['by']}", flush=True)
    return rows


def report(rows: list[dict]) -> str:
    killed = sum(r["result"] == "KILLED" for r in rows)
    lines = [
        "# Mutation check of the release audit (issue #17)",
        "",
        f"- date: {dt.date.today().isoformat()}, machine: {platform.machine()} {platform.system()}, "
        f"{os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "- command: `python benchmarks/mutate_audit.py`",
        "- each mutation removes one needle source or matching mode in a copy of the code; the tests run are "
        "`tests/test_audit.py`, then `tests/test_audit_corpus.py` if those pass",
        "",
        f"**{killed}/{len(rows)} mutations killed**",
        "",
        "| kind | mutation (what is removed) | result | failing test (pytest summary) |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['name']} | {r['result']} | {r['by'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write the table (markdown) here")
    ap.add_argument("--only", help="run only the mutations whose name contains this")
    args = ap.parse_args()
    rows = run(args.only)
    text = report(rows)
    print(text)
    if args.out:
        args.out.write_text(text)
    sys.exit(0 if rows and all(r["result"] == "KILLED" for r in rows) else 1)
