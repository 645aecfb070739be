"""One run of the bundled example, with its review report, shared by the report tests.

``example_report(tmp_path_factory)`` runs ``snakemake`` once per test session (the
repository as working directory, as a user does; output in a temporary folder),
then ``snakemake --report``; later calls reuse it. The run uses the demo key (the
bundled example), so the summary must say NO.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DICOM = REPO / "example" / "dicom"
STYLESHEET = REPO / "workflow" / "report" / "report.css"

_RUN: dict = {}


#: Another Snakefile that includes the report rules (for trying them before the
#: repository's Snakefile does); it runs with the demo key given explicitly.
ALT_SNAKEFILE = os.environ.get("NEURODEID_REPORT_SNAKEFILE", "")


def report_is_wired() -> bool:
    """Whether the Snakefile includes the report rules."""
    return bool(ALT_SNAKEFILE) or \
        'include: "rules/report.smk"' in (REPO / "workflow" / "Snakefile").read_text(encoding="utf-8")


def _snakemake(*args: str) -> subprocess.CompletedProcess:
    from neurodeid import keys

    env = dict(os.environ)
    env.pop("NEURODEID_KEY", None)  # the bundled example runs on the demo key
    if ALT_SNAKEFILE:
        env["NEURODEID_KEY"] = keys.DEMO_KEY.decode()
        args = ("-s", ALT_SNAKEFILE, "-d", str(REPO), *args)
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def example_report(tmp_path_factory) -> dict:
    """``{"out": results dir, "report": report.html, "stderr": the run's standard error,
    "before"/"after": sha256 of every example input before and after}`` of one example run,
    made once per test session: under pytest-xdist the first worker to ask runs it (a lock
    file in the session's shared temporary folder) and the others read its record."""
    if "out" in _RUN:
        return _RUN
    if "error" in _RUN:
        raise AssertionError(_RUN["error"])
    if not EXAMPLE_DICOM.is_dir():
        pytest.fail("the bundled example is missing: run `python example/build_example.py`")
    if not report_is_wired():
        pytest.skip("Snakefile does not include workflow/rules/report.smk yet")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    record = shared / "example_run.json"
    with open(shared / "example_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not record.exists():
            record.write_text(json.dumps(_run_example(shared / "example_run" / "results")))
        _RUN.update(json.loads(record.read_text()))
    if "error" in _RUN:  # fail every test that needs the run, without running it again
        raise AssertionError(_RUN["error"])
    _RUN.update(out=Path(_RUN["out"]), report=Path(_RUN["report"]))
    return _RUN


def _run_example(out: Path) -> dict:
    """The example run and its report into ``out``; what :func:`example_report` records."""
    from conftest import tree_sha256

    summary = out / "private" / "report" / "summary.html"
    targets = ["all", str(summary)]
    report = out / "private" / "report.html"
    before = tree_sha256(EXAMPLE_DICOM)
    try:  # targets before --config, which takes every following word
        proc = _snakemake(*targets, "--cores", "2", "--config", f"output_dir={out}")
        after = tree_sha256(EXAMPLE_DICOM)
        _snakemake(*targets, "--report", str(report), "--report-stylesheet", str(STYLESHEET),
                   "--config", f"output_dir={out}")
    except AssertionError as exc:
        return {"error": str(exc)}
    return {"out": str(out), "report": str(report), "stderr": proc.stderr, "before": before, "after": after}
