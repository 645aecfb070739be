"""The bundled example on a real SLURM cluster gives the same release as a local run.

Runs only when both hold (else skips, saying which is missing):

- a SLURM controller answers (``scontrol ping`` says UP);
- ``NEURODEID_SLURM_SNAKEMAKE`` names a ``snakemake`` executable from a separate
  virtualenv that has ``snakemake-executor-plugin-slurm`` (and neurodeid) installed.
  The plugin stays out of the test venv: with it installed, every snakemake call
  runs ``scontrol`` and loses about 9 s when no controller is up.

``bash .ci/slurm/with-slurm.sh python -m pytest`` provides both (single-node SLURM,
venv ``.venv-slurm``) and stops the daemons afterwards.

Both runs use the same secret key through ``NEURODEID_KEY``; the SLURM jobs see it only
because the executor submits with ``sbatch --export=ALL``. Each job parses the workflow
again (and so re-runs the parse-time index): a job with another key would label
subjects differently and the release would differ or the run would fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLE_DICOM, REPO, TEST_KEY, tree_sha256

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm"
KEY_HEX = TEST_KEY.hex()


def _slurm_snakemake() -> Path:
    """The plugin-enabled snakemake, or skip saying what is missing."""
    value = os.environ.get("NEURODEID_SLURM_SNAKEMAKE", "")
    if not value:
        pytest.skip(
            "NEURODEID_SLURM_SNAKEMAKE is not set: point it to a snakemake of a separate venv with "
            "snakemake-executor-plugin-slurm (`bash .ci/slurm/with-slurm.sh python -m pytest` does it)"
        )
    exe = Path(value)
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        pytest.skip(f"NEURODEID_SLURM_SNAKEMAKE={value} is not an executable file")
    return exe


def _require_controller() -> None:
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        pytest.skip("no SLURM: `scontrol` is not installed (start one with .ci/slurm/start-slurm.sh)")
    try:
        proc = subprocess.run([scontrol, "ping"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.skip("no SLURM: `scontrol ping` timed out")
    if "UP" not in proc.stdout:
        pytest.skip(f"no SLURM controller answers: `scontrol ping` says {proc.stdout.strip() or proc.stderr.strip()!r}")


def _smallest_node_cpus() -> int:
    proc = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=30)
    cpus = [int(v.rstrip("+")) for v in proc.stdout.split() if v.rstrip("+").isdigit()]
    assert cpus, f"`sinfo -h -o %c` gave no CPU count: {proc.stdout!r} {proc.stderr!r}"
    return min(cpus)


def _env(bin_dir: Path | None = None) -> dict:
    env = dict(os.environ)
    env["NEURODEID_KEY"] = KEY_HEX
    if bin_dir is not None:
        # the jobs' shell commands call `neurodeid`: take it from the same venv
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(cmd: list[str], env: dict, log: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    log.write_text(proc.stdout + "\n" + proc.stderr)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd[:3])}... failed ({proc.returncode}), full log {log}:\n{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def slurm_snakemake() -> Path:
    exe = _slurm_snakemake()
    _require_controller()
    return exe


def test_slurm_release_equals_local_release(slurm_snakemake, tmp_path):
    assert EXAMPLE_DICOM.is_dir(), "the bundled example is missing: run `python example/build_example.py`"
    out_slurm = tmp_path / "slurm" / "results"
    out_local = tmp_path / "local" / "results"

    slurm = _run(
        [
            str(slurm_snakemake),
            "--workflow-profile",
            str(SLURM_PROFILE),
            # the CI cluster has no accounts; real clusters usually want one (see docs/cluster.md)
            "--slurm-no-account",
            # the profile's `cores:` is for real nodes; here: the CPUs of this cluster's smallest node
            "--cores",
            str(_smallest_node_cpus()),
            "--config",
            f"output_dir={out_slurm}",
        ],
        _env(slurm_snakemake.parent),
        tmp_path / "slurm.log",
    )
    slurm_text = slurm.stdout + slurm.stderr
    # really went through SLURM, and the jobs saw the exported key (no demo-key fallback)
    assert "submitted with SLURM jobid" in slurm_text
    assert "DEMO KEY" not in slurm_text

    _run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--config", f"output_dir={out_local}"],
        _env(),
        tmp_path / "local.log",
    )

    rel_slurm = tree_sha256(out_slurm / "release")
    rel_local = tree_sha256(out_local / "release")
    assert rel_slurm, "the SLURM run produced an empty release"
    assert sorted(rel_slurm) == sorted(rel_local), "the two releases hold different files"
    differing = [p for p in rel_local if rel_slurm[p] != rel_local[p]]
    assert not differing, f"files differ between the SLURM and the local release: {differing[:10]}"
    assert (out_slurm / "private" / "audit.ok").is_file()
