"""Every command the README shows runs as written (issue: documented commands failed).

Each ``bash`` block of README.md is split into commands (continuation lines joined). A
``snakemake`` command runs as a dry run on the bundled example (``-n``, the output in a
temporary folder, paths under ``/data`` or ``/scratch`` replaced by the example): that is
where a documented form failed before (dotted ``--config`` keys, nested values, a wrong
key); the report command runs for real, on a copy of the session's example run
(``report_helpers.example_report``, the same run without the report). Commands proved
elsewhere are named with where.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import EXAMPLE_DICOM, REPO
from report_helpers import example_report

pytestmark = pytest.mark.e2e

#: command prefixes proved by another test or by CI, and where
PROVED_ELSEWHERE = {
    "python3 -m venv": "CI (.ci/run runs the README's test command on a fresh clone)",
    "pip install": "CI (.ci/run installs from scratch)",
    "snakemake --workflow-profile workflow/profiles/slurm": "tests/test_slurm.py on a real SLURM in CI",
    "export NEURODEID_KEY": "set in this test's environment instead",
}


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("   #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


def test_readme_has_commands():
    cmds = readme_commands()
    assert any(c.startswith("snakemake") for c in cmds) and len(cmds) >= 6, cmds


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if c.startswith("snakemake")])
def test_snakemake_command_parses_and_plans(cmd, tmp_path, tmp_path_factory):
    for prefix, where in PROVED_ELSEWHERE.items():
        if cmd.startswith(prefix):
            pytest.skip(f"proved by {where}")
    words = shlex.split(cmd)
    for i, w in enumerate(words):
        if w.startswith(("input_dir=/data", "input_dir=/scratch")):
            words[i] = f"input_dir={EXAMPLE_DICOM}"
        elif w.startswith("input_bids=/data"):
            pytest.skip("input_bids runs in tests/test_bids_workflow.py (it needs a BIDS dataset)")
        elif w.startswith("output_dir="):
            words[i] = f"output_dir={tmp_path / 'out'}"
    if "--report" in words and "--report-after-run" not in words:
        pytest.skip("a report of a finished run: tests/test_report.py builds it with this command")
    if "--config" in words:
        if not any(w.startswith("output_dir=") for w in words):
            words.append(f"output_dir={tmp_path / 'out'}")
    else:
        words += ["--config", f"output_dir={tmp_path / 'out'}"]
    env = dict(os.environ)
    env.pop("NEURODEID_KEY", None)  # the example runs on its demo key
    full = "--report-after-run" in words  # a report needs the run: this one runs for real,
    if full:  # on a copy of the session's example run (the same command without the report)
        shutil.copytree(example_report(tmp_path_factory)["out"], tmp_path / "out", symlinks=True)
    for i, w in enumerate(words):
        if w.endswith("report.html"):
            words[i] = str(tmp_path / "report.html")
    proc = subprocess.run([sys.executable, "-m", *words, *([] if full else ["-n"])], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    if full:
        assert (tmp_path / "report.html").stat().st_size > 10_000
    else:
        assert "This was a dry-run" in proc.stdout + proc.stderr


def test_wrong_key_is_one_short_message(tmp_path):
    env = dict(os.environ)
    env.pop("NEURODEID_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--config", f"output_dir={tmp_path}",
                           "deface={params: {min_hed_dice: 0.8}}"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "config deface.params.min_hed_dice: not a parameter" in err
    assert "$schema" not in err and len(err.splitlines()) < 30


def test_nested_config_values_are_typed(tmp_path):
    from neurodeid.configcheck import ConfigError, check_config

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["deface"]["params"] = {"min_head_dice": "0.8", "multistart": "false"}
    cfg["audit"]["min_needle_length"] = "4"
    typed = check_config(cfg, schema)
    assert typed["deface"]["params"] == {"min_head_dice": 0.8, "multistart": False}
    assert typed["audit"]["min_needle_length"] == 4
    cfg["deface"]["params"] = {"min_head_dice": "high"}
    with pytest.raises(ConfigError, match="deface.params.min_head_dice"):
        check_config(cfg, schema)
    # a nullable field whose default is null takes its annotation's type
    cfg["deface"]["params"] = {"max_registration_mi": "null", "max_registration_mi_ct": "-0.6"}
    assert check_config(cfg, schema)["deface"]["params"] == {"max_registration_mi": None,
                                                             "max_registration_mi_ct": -0.6}
    cfg["deface"]["params"] = {"max_registration_mi_ct": "low"}
    with pytest.raises(ConfigError, match="deface.params.max_registration_mi_ct"):
        check_config(cfg, schema)


def test_morphometry_thresholds_are_checked_against_their_dataclass():
    """The keys, types and defaults of morphometry.thresholds are the dataclass's fields
    (issue 20: one definition); config.yaml shows exactly those defaults."""
    from dataclasses import asdict

    import yaml

    from neurodeid.configcheck import ConfigError, check_config
    from neurodeid.morphometry import MorphometryThresholds

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert cfg["morphometry"]["thresholds"] == asdict(MorphometryThresholds())
    cfg["morphometry"]["thresholds"] = {"fail_brain_dice": "0.97", "warn_brain_dice": "null",
                                        "fail_brain_voxels_changed": "3"}
    typed = check_config(cfg, schema)["morphometry"]["thresholds"]
    assert typed == {"fail_brain_dice": 0.97, "warn_brain_dice": None, "fail_brain_voxels_changed": 3}
    for bad, match in (({"fail_brain_dise": 0.9}, r"thresholds\.fail_brain_dise: not a known key"),
                       ({"fail_brain_dice": "high"}, r"thresholds\.fail_brain_dice: 'high' is not a float"),
                       ({"fail_brain_voxels_changed": -1}, r"fail_brain_voxels_changed: -1 is a voxel count")):
        cfg["morphometry"]["thresholds"] = bad
        with pytest.raises(ConfigError, match=match):
            check_config(cfg, schema)
