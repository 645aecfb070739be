"""Incremental reprocessing: what a rerun does after nothing, a new subject, a new parameter, a crash.

All runs go through the Snakemake CLI with the repository as working directory (as a user
runs it), on a COPY of the bundled example with a fixed test key in ``NEURODEID_KEY``, into
temporary output folders. The assertions read the dry run's job list (rule and wildcards of
every job), so they hold whatever stages the workflow grows:

- nothing changed → "Nothing to be done";
- a parameter changed → only the rules whose params changed and the rules downstream of them
  in the rule graph run again (``audit.min_needle_length`` now; ``deface.*`` as soon as a
  deface rule exists, the test for it skips until then);
- a subject added → only jobs of that subject plus jobs without wildcards (aggregates:
  release skeleton, audit, gate, ...) run; no job of an existing subject does;
- a run killed with SIGKILL after its first finished job resumes (``--unlock``, then
  ``--rerun-incomplete``) to a release identical, file for file (sha256), to an
  uninterrupted run: no partial or temporary file is left in ``release/``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pydicom
import pytest
import yaml
from pydicom.uid import generate_uid

from conftest import EXAMPLE_DICOM, REPO, TEST_KEY, tree_sha256

pytestmark = pytest.mark.e2e

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
KEY_HEX = TEST_KEY.hex()
RUN_TIMEOUT = 1200
NEW_PATIENT_ID = "INCR-TEST-0001"


# --------------------------------------------------------------------------- helpers


def _env() -> dict:
    env = dict(os.environ)
    env["NEURODEID_KEY"] = KEY_HEX
    return env


def smk(*args, check: bool = True, cores: int = 2) -> subprocess.CompletedProcess:
    """Run snakemake from the repository; return the process (stdout + stderr in .stdout)."""
    proc = subprocess.run(
        [*SNAKEMAKE, "--cores", str(cores), *map(str, args)],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-8000:]}")
    return proc


def config_args(input_dir: Path, output_dir: Path) -> list[str]:
    return ["--config", f"input_dir={input_dir}", f"output_dir={output_dir}"]


_RULE_RE = re.compile(r"^\s*(?:local)?rule (\w+):\s*$")
_FIELD_RE = re.compile(r"^\s*(wildcards|reason): (.*)$")


def dry_run_jobs(text: str) -> list[dict]:
    """Jobs of a ``snakemake -n`` output: dicts with ``rule``, ``wildcards`` (dict), ``reason``."""
    jobs: list[dict] = []
    for line in text.splitlines():
        m = _RULE_RE.match(line)
        if m:
            jobs.append({"rule": m.group(1), "wildcards": {}, "reason": ""})
            continue
        m = _FIELD_RE.match(line)
        if m and jobs:
            if m.group(1) == "wildcards":
                jobs[-1]["wildcards"] = dict(kv.split("=", 1) for kv in m.group(2).split(", ") if "=" in kv)
            else:
                jobs[-1]["reason"] = m.group(2)
    return jobs


def dry_run(*args) -> tuple[str, list[dict]]:
    proc = smk("-n", *args)
    return proc.stdout, dry_run_jobs(proc.stdout)


def rule_graph(*args) -> dict[str, set[str]]:
    """Rule → rules that consume its outputs, from ``snakemake --rulegraph``."""
    dot = smk("--rulegraph", *args).stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, flags=re.M))
    graph: dict[str, set[str]] = {name: set() for name in names.values()}
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M):
        graph[names[a]].add(names[b])
    return graph


def downstream(graph: dict[str, set[str]], roots: set[str]) -> set[str]:
    """``roots`` and every rule that depends on them, directly or not."""
    seen, todo = set(roots), list(roots)
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def crosswalk_labels(private: Path) -> dict[str, str]:
    """patient_id → subject label (without ``sub-``) from the private crosswalk."""
    rows = (private / "crosswalk.tsv").read_text().splitlines()[1:]
    out = {}
    for row in rows:
        cols = row.split("\t")
        out[cols[0]] = cols[2].removeprefix("sub-")
    return out


def assert_nothing_to_do(input_dir: Path, output_dir: Path) -> None:
    out, jobs = dry_run(*config_args(input_dir, output_dir))
    assert "Nothing to be done" in out, f"a rerun with nothing changed would run {[j['rule'] for j in jobs]}"


def assert_params_rerun_only_downstream(base: dict, override: dict, tmp_path: Path) -> set[str]:
    """Dry run with ``override`` merged into the config; check the rerun set; return its rules."""
    cfg = tmp_path / "override.yaml"
    cfg.write_text(yaml.safe_dump(override))
    args = ["--configfile", cfg, *config_args(base["input"], base["output"])]
    _, jobs = dry_run(*args)
    assert jobs, f"changing {override} reruns nothing: the parameter does not reach any rule's params"
    roots = {j["rule"] for j in jobs if j["reason"].startswith("Params have changed")}
    assert roots, f"no job reruns because of changed params: {[(j['rule'], j['reason'][:80]) for j in jobs]}"
    graph = rule_graph(*args)
    allowed = downstream(graph, roots)
    ran = {j["rule"] for j in jobs}
    assert ran <= allowed, f"rules rerun though not downstream of {sorted(roots)}: {sorted(ran - allowed)}"
    untouched = set(graph) - allowed
    assert untouched, "every rule is downstream of the changed parameter: the test would prove nothing"
    return ran


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> dict:
    """A complete run on a copy of the example (the uninterrupted reference)."""
    if not EXAMPLE_DICOM.is_dir():
        pytest.fail("the bundled example is missing: run `python example/build_example.py`")
    root = tmp_path_factory.mktemp("incr_base")
    inp, out = root / "dicom", root / "results"
    shutil.copytree(EXAMPLE_DICOM, inp)
    smk(*config_args(inp, out))
    return {"input": inp, "output": out, "release": tree_sha256(out / "release")}


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> dict:
    """A run SIGKILLed (whole process group) after its first finished job, then resumed."""
    root = tmp_path_factory.mktemp("incr_killed")
    inp, out = root / "dicom", root / "results"
    shutil.copytree(EXAMPLE_DICOM, inp)
    cmd = [*SNAKEMAKE, "--cores", "1", *config_args(inp, out)]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # own process group: the kill takes the running job with it
    )
    watchdog = threading.Timer(RUN_TIMEOUT, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    log, killed = [], False
    try:
        for line in proc.stdout:
            log.append(line)
            if line.startswith("Finished jobid"):
                os.killpg(proc.pid, signal.SIGKILL)  # like a node that dies: no cleanup at all
                killed = True
                break
    finally:
        proc.wait()
        watchdog.cancel()
    assert killed, "the run ended before any job finished:\n" + "".join(log[-60:])
    assert not (out / "private" / "audit.ok").exists(), "the run completed before the kill: nothing was interrupted"
    after_kill = tree_sha256(out / "release") if (out / "release").exists() else {}
    # what a user does after a crash: release the stale lock, then rerun
    smk("--unlock", *config_args(inp, out))
    resumed = smk("--rerun-incomplete", *config_args(inp, out))
    return {
        "input": inp,
        "output": out,
        "after_kill": after_kill,
        "release": tree_sha256(out / "release"),
        "resume_log": resumed.stdout,
    }


# --------------------------------------------------------------------------- tests


def test_second_run_has_nothing_to_do(base_run):
    proc = smk(*config_args(base_run["input"], base_run["output"]))
    assert "Nothing to be done" in proc.stdout, proc.stdout[-3000:]
    assert tree_sha256(base_run["output"] / "release") == base_run["release"]


def test_needle_length_change_reruns_only_needles_and_downstream(base_run, tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    length = int(cfg["audit"]["min_needle_length"])
    ran = assert_params_rerun_only_downstream(base_run, {"audit": {"min_needle_length": length + 1}}, tmp_path)
    assert "audit" in ran  # the audit consumes the needles
    assert "release_skeleton" not in ran or "release_subject" in ran  # participants.tsv follows the released listings


def test_quasi_changes_rerun_what_they_should(base_run, tmp_path):
    """k_min only changes the k-anonymity report (and the summary that shows it); an age band changes the de-identification
    (and so everything made from de-identified DICOM), never the index."""
    ran = assert_params_rerun_only_downstream(base_run, {"quasi": {"k_min": 3}}, tmp_path)
    assert ran - {"all"} == {"quasi_report", "report_summary"}  # the summary shows k
    ran = assert_params_rerun_only_downstream(base_run, {"quasi": {"age_band_years": 10}}, tmp_path)
    assert "deid_series" in ran and "quasi_report" in ran


# ---- defacing: becomes a real test as soon as the workflow has a deface rule


def _schema_for(section: str) -> dict:
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    return schema.get("properties", {}).get(section, {}).get("properties", {})


@functools.lru_cache(maxsize=1)
def workflow_rules() -> tuple[str, ...]:
    """Rule names from ``snakemake --list-rules`` (example input, throw-away output folder)."""
    with tempfile.TemporaryDirectory(prefix="neurodeid-rules-") as tmp:
        proc = subprocess.run(
            [*SNAKEMAKE, "--list-rules", "--config", f"output_dir={tmp}/results"],
            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300,
        )
    if proc.returncode != 0:
        return ()
    # one rule a line: `name` or `name (docstring)`
    return tuple(m.group(1) for m in re.finditer(r"^(\w+)(?: \(.*\))?$", proc.stdout, flags=re.M))


def deface_rules() -> set[str]:
    return {r for r in workflow_rules() if "deface" in r.lower()}


def changed_value(spec: dict, value):
    """Another valid value for a config parameter, or None when the schema allows none."""
    if "enum" in spec:
        others = [v for v in spec["enum"] if v != value]
        return others[0] if others else None
    kind = spec.get("type")
    if kind == "boolean" or isinstance(value, bool):
        return not value
    if kind in ("integer", "number") or isinstance(value, (int, float)):
        step = 1 if kind == "integer" or isinstance(value, int) else max(abs(value) * 0.1, 0.1)
        new = value + step
        if "maximum" in spec and new > spec["maximum"]:
            new = value - step
        if "minimum" in spec and new < spec["minimum"]:
            return None
        return type(value)(new) if kind != "number" else new
    return None


@pytest.mark.skipif(not deface_rules(), reason="no deface rule in the workflow yet (snakemake --list-rules)")
def test_deface_parameter_change_reruns_only_defacing_and_downstream(base_run, tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    section = next((k for k in cfg if "deface" in k.lower() and isinstance(cfg[k], dict)), None)
    assert section, "the workflow has a deface rule but config/config.yaml has no `deface:` section"
    specs = _schema_for(section)
    # prefer parameters that tune the defacing over ones that switch it off
    names = sorted(cfg[section], key=lambda k: (k != "method", isinstance(cfg[section][k], bool), k))
    choice = next(((k, changed_value(specs.get(k, {}), cfg[section][k])) for k in names
                   if changed_value(specs.get(k, {}), cfg[section][k]) is not None), None)
    assert choice, f"no parameter of `{section}:` can be changed generically: {cfg[section]}"
    key, value = choice
    ran = assert_params_rerun_only_downstream(base_run, {section: {key: value}}, tmp_path)
    graph = rule_graph(*config_args(base_run["input"], base_run["output"]))
    allowed = downstream(graph, deface_rules())
    assert ran & deface_rules(), f"changing {section}.{key} to {value!r} reran no deface rule: {sorted(ran)}"
    assert ran <= allowed, f"changing {section}.{key} reran rules not downstream of defacing: {sorted(ran - allowed)}"


# ---- a crash midway


def test_killed_run_resumes_to_the_same_release(base_run, killed_run):
    assert "Finished jobid" in killed_run["resume_log"], "the resumed run had nothing left to do"
    ref, got = base_run["release"], killed_run["release"]
    extra, missing = sorted(set(got) - set(ref)), sorted(set(ref) - set(got))
    assert not extra, f"files in the resumed release that an uninterrupted run does not make (partial/temp?): {extra}"
    assert not missing, f"files missing from the resumed release: {missing}"
    differing = sorted(p for p in ref if got[p] != ref[p])
    assert not differing, f"files differing from the uninterrupted run's release: {differing}"
    assert (killed_run["output"] / "private" / "audit.ok").is_file()
    assert_nothing_to_do(killed_run["input"], killed_run["output"])


# ---- a new subject (runs last on the resumed run's folders: it changes their input)


def add_subject(input_dir: Path) -> str:
    """Copy the example's CT series as a new patient (new IDs, new UIDs); return the copied
    series' original SeriesInstanceUID."""
    ct = []
    for p in sorted(input_dir.rglob("*")):
        if p.is_file():
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=False)
            except Exception:
                continue
            if ds.get("Modality") == "CT" and "SeriesInstanceUID" in ds:
                ct.append(ds)
    assert ct, f"no CT series in {input_dir} to copy"
    series_uid = ct[0].SeriesInstanceUID
    ct = [ds for ds in ct if ds.SeriesInstanceUID == series_uid]
    study, series = generate_uid(), generate_uid()
    folder = input_dir / "INCR_NEW" / "CT"
    folder.mkdir(parents=True)
    for i, ds in enumerate(ct, start=1):
        ds.PatientID = NEW_PATIENT_ID
        ds.PatientName = "INCREMENTAL^NEWCOMER"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        if hasattr(ds, "file_meta"):
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"IM{i:04d}.dcm")
    return series_uid


def index_row(private: Path, series_uid: str) -> dict:
    """The private index.tsv row of one series."""
    lines = (private / "index.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t")))
        if row["series_uid"] == series_uid:
            return row
    raise AssertionError(f"series {series_uid} not in {private / 'index.tsv'}")


def test_added_subject_runs_only_its_jobs_and_the_aggregates(killed_run):
    inp, out = killed_run["input"], killed_run["output"]
    old = crosswalk_labels(out / "private")
    _, all_jobs = dry_run("-F", *config_args(inp, out))
    src_uid = add_subject(inp)
    # the new subject has one session holding a copy of this CT series: it must get the jobs
    # that series and its session got (which rules apply depends on the modality)
    src = index_row(out / "private", src_uid)
    per_subject_rules = {
        j["rule"]
        for j in all_jobs
        if j["wildcards"].get("subject") == src["subject"]
        and j["wildcards"].get("session", src["session"]) == src["session"]
        and j["wildcards"].get("series", src["series"]) == src["series"]
    }
    assert per_subject_rules, f"no job has the wildcards of the copied series {src['subject']}/{src['series']}"
    _, jobs = dry_run(*config_args(inp, out))
    new = crosswalk_labels(out / "private")  # the dry run's parse-time index updated it
    assert NEW_PATIENT_ID in new and set(new) - {NEW_PATIENT_ID} == set(old)
    label = new[NEW_PATIENT_ID]
    old_labels = set(old.values())
    assert label not in old_labels

    leaked = [(j["rule"], j["wildcards"]) for j in jobs if set(j["wildcards"].values()) & old_labels]
    assert not leaked, f"jobs of existing subjects rerun after adding one: {leaked}"
    mine = [j for j in jobs if j["wildcards"].get("subject") == label]
    assert {j["rule"] for j in mine} == per_subject_rules, (sorted({j["rule"] for j in mine}), sorted(per_subject_rules))
    others = [j for j in jobs if j not in mine]
    # everything else is an aggregate over all subjects: no wildcards at all
    assert all(not j["wildcards"] for j in others), [(j["rule"], j["wildcards"]) for j in others if j["wildcards"]]
    assert {"audit", "audit_gate", "all"} <= {j["rule"] for j in others}
