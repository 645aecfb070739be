"""The release of the bundled example passes the official BIDS validator with 0 errors.

Needs the npm package ``bids-validator`` (1.15.x, the last release for Node.js):
``bash .ci/bids-validator.sh`` installs it. Set ``BIDS_VALIDATOR`` to use another
binary. Skips with the reason when it is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from report_helpers import example_report

pytestmark = pytest.mark.e2e


def validator() -> str:
    exe = os.environ.get("BIDS_VALIDATOR") or shutil.which("bids-validator")
    if not exe:
        pytest.skip("bids-validator is not installed (bash .ci/bids-validator.sh installs it from npm)")
    return exe


def validate(release) -> dict:
    proc = subprocess.run([validator(), "--json", str(release)], capture_output=True, text=True, timeout=300)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"bids-validator printed no JSON (exit {proc.returncode}):\n"
                             f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}") from None


def describe(issues: list[dict]) -> str:
    out = []
    for i in issues:
        files = [(f.get("file") or {}).get("relativePath") or f.get("reason", "") for f in i.get("files", [])]
        out.append(f"{i['key']} (code {i['code']}): {i.get('reason', '')} {files[:5]}")
    return "\n".join(out)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    validator()  # skip before the example run when there is no validator
    run = example_report(tmp_path_factory)
    return validate(run["out"] / "release")


def test_release_has_no_bids_error(result):
    errors = result["issues"]["errors"]
    assert not errors, "BIDS validator errors:\n" + describe(errors)


def test_release_holds_bids_data(result):
    """0 errors must not come from an empty release: the validator saw subjects and images."""
    summary = result["summary"]
    assert summary["subjects"] and summary["totalFiles"] > 0 and summary["modalities"]


def test_validator_catches_a_broken_release(tmp_path):
    """The check can fail: a release without dataset_description.json is an error."""
    (tmp_path / "sub-01" / "anat").mkdir(parents=True)
    (tmp_path / "sub-01" / "anat" / "sub-01_T1w.nii.gz").write_bytes(b"not a nifti")
    errors = validate(tmp_path)["issues"]["errors"]
    assert errors, "the validator reported no error for a broken dataset"
