# Config validation, the parse-time index and the small input functions.
# Rules never parse anything themselves; all logic lives in src/neurodeid.
import json
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from neurodeid.inputs import bids as nd_bids_input
from neurodeid import index as nd_index
from neurodeid.inputs import dicom as nd_dicom_input
from neurodeid import kanon as nd_kanon
from neurodeid import keys as nd_keys
from neurodeid import plan as nd_plan
from neurodeid import review as nd_review
from neurodeid.convert import load_heuristics
from neurodeid.deid.quasi import QuasiError, QuasiPolicy
from neurodeid.deid.profile import ProfileError, check_options

from neurodeid.configcheck import ConfigError, check_config
from neurodeid.layout import Layout, series_ids

# Typed and checked first (one short message naming the key, values given as strings by
# --config turned into their types), then Snakemake's validator fills in the defaults.
try:
    config.update(
        check_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
    )
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, schema="../schemas/config.schema.yaml")

# Every path of the results folder comes from one Layout (neurodeid.layout).
L = Layout.of(config["output_dir"])
PROJECT = Path(workflow.basedir).parent  # workflow/Snakefile
EXAMPLE_DIR = (PROJECT / "example" / "dicom").resolve()

# An existing BIDS dataset (config input_bids) replaces the DICOM input: its images are
# imported (sanitised) in place of de-identification and conversion.
INPUT_BIDS = config.get("input_bids") or ""
try:
    DEID_OPTIONS = sorted(check_options(config["deid"]["options"]))
    ALLOW_DEMO_KEY = (
        not INPUT_BIDS and Path(config["input_dir"]).resolve() == EXAMPLE_DIR
    )
    # The key stays in memory: rules get its public fingerprint, never the key.
    KEY = nd_keys.load_key(
        config.get("key_file") or None,
        allow_demo=ALLOW_DEMO_KEY,
    )
    # Uncached headers are read by as many processes as the cores given (--cores).
    INDEX_WORKERS = workflow._cores if isinstance(workflow._cores, int) else 1
    # Parse-time index: a header scan cached by (path, size, mtime), so every
    # snakemake call (dry runs included) sees the current tree. Its files are
    # rewritten only when their content changes. Cluster jobs parse the workflow
    # again: only the main process writes.
    if INPUT_BIDS:
        INDEX = nd_bids_input.build_bids_index(
            INPUT_BIDS,
            L.private,
            KEY,
            crosswalk=config.get("crosswalk") or None,
            write=workflow.is_main_process,
        )
    else:
        INDEX = nd_dicom_input.build_index(
            config["input_dir"],
            L.private,
            KEY,
            crosswalk=config.get("crosswalk") or None,
            pixel_cleaning_modalities=tuple(
                config["index"]["pixel_cleaning_modalities"]
            ),
            write=workflow.is_main_process,
            workers=INDEX_WORKERS,
        )
except (nd_keys.KeyError_, nd_index.IndexError_, ProfileError) as exc:
    raise WorkflowError(str(exc)) from None

KEY_FINGERPRINT = nd_keys.fingerprint(KEY)
# Safe Harbor age cap and generalisation (config quasi), passed to every deid job as JSON.
QUASI_CONFIG = config.get("quasi") or {}
try:
    QUASI = QuasiPolicy.from_mapping(QUASI_CONFIG)
except QuasiError as exc:
    raise WorkflowError(str(exc)) from None
QUASI_ARG = shlex.quote(json.dumps(QUASI.to_mapping(), sort_keys=True))
# How jobs find the key themselves (NEURODEID_KEY is inherited from the environment).
KEY_ARGS = " ".join(
    (
        [f"--key-file {shlex.quote(config['key_file'])}"]
        if config.get("key_file")
        else []
    )
    + (["--allow-demo-key"] if ALLOW_DEMO_KEY else [])
)
try:
    BIDS_RULES = load_heuristics(config["convert"]["heuristics"])
except (OSError, ValueError) as exc:
    raise WorkflowError(f"convert.heuristics: {exc}") from None
PLAN = (
    nd_plan.plan_bids(INDEX)
    if INPUT_BIDS
    else nd_plan.make_plan(
        INDEX,
        release_dicom=config["deid"]["release_dicom"],
        rules=BIDS_RULES,
        redact=config["redact"]["enabled"],
        deface_enabled=config["deface"]["enabled"],
    )
)
# Redaction settings as JSON: a parameter, so a change reruns redaction.
REDACT_JSON = json.dumps(
    {k: v for k, v in config["redact"].items() if k not in ("enabled", "images")},
    sort_keys=True,
)
# Plain 2D images (JPEG/PNG) to redact, by position in config redact.images.
REDACT_IMAGES = (
    list(config["redact"].get("images", [])) if config["redact"]["enabled"] else []
)
DEFACE = config["deface"]["enabled"]
if workflow.is_main_process:
    nd_plan.write_plan(PLAN, L.private, INDEX, deface_enabled=DEFACE)
# Plans by subject: a dict lookup, so input functions stay O(1) per job at thousands
# of subjects.
PLANS_BY_SUBJECT = {}
for _p in PLAN:
    PLANS_BY_SUBJECT.setdefault(_p.subject, []).append(_p)
SUBJECTS = sorted(PLANS_BY_SUBJECT)
# Defacing parameters as JSON: a parameter, so a change reruns defacing and what follows.
DEFACE_PARAMS_JSON = json.dumps(config["deface"]["params"], sort_keys=True)
MORPHOMETRY_JSON = json.dumps(config["morphometry"]["thresholds"], sort_keys=True)

# The reviewer's decisions (config review.decisions: an edited copy of review.tsv),
# checked against the last review sheet and split into one small file per subject,
# each rewritten only when its content changes: editing a decision reruns only the
# release job of the subject it concerns.
REVIEW_SHEET = L.private_file("review.tsv")
REVIEW_DECISIONS = L.private_file("review/decisions")
REVIEW_SCHEMA = Path(workflow.basedir) / "schemas" / "review.schema.yaml"
# Cluster jobs parse the workflow again: only the main process reads and writes.
if workflow.is_main_process:
    try:
        DECISIONS = (
            nd_review.read_decisions(
                config["review"]["decisions"],
                nd_review.read_sheet(REVIEW_SHEET),
                schema=REVIEW_SCHEMA,
            )
            if config.get("review", {}).get("decisions")
            else {}
        )
    except nd_review.ReviewError as exc:
        raise WorkflowError(f"review.decisions: {exc}") from None
    nd_review.split_decisions(DECISIONS, REVIEW_DECISIONS, subjects=SUBJECTS)


wildcard_constraints:
    subject="[0-9a-zA-Z]+",
    session="[0-9a-zA-Z]+",
    series="s[0-9a-z]+",
    n="[0-9]{2}",


def series_manifest(wildcards):
    return L.index_files(**series_ids(wildcards))


def all_series(pattern):
    """``pattern`` formatted for every series of the index."""
    return [
        pattern.format(subject=s.subject, session=s.session, series=s.series)
        for s in INDEX.series
    ]


def get_needle_files():
    """Needles of every series, and of the raw path words (DICOM input only: a BIDS
    input's path words are its entities, and its labels are in the series' needles)."""
    paths = [] if INPUT_BIDS else [L.private_file("needles/paths.json")]
    return all_series(L.result("needles")) + paths


def deid_reports():
    """The de-identification report of every series (none for a BIDS input)."""
    if INPUT_BIDS:
        return []
    return all_series(L.result("deid"))


# Plans by series: the text stage's mode and where conversion reads its DICOM.
PLANS_BY_SERIES = {(p.subject, p.session, p.series): p for p in PLAN}


def text_mode(w):
    """How the text stage reads a series (read: every image and frame; screen: a volume's slices)."""
    return PLANS_BY_SERIES[(w.subject, w.session, w.series)].text_mode or "read"


def face_screen(w):
    """``--text-face-screen`` for a series whose DICOM is released without conversion."""
    return (
        "--text-face-screen"
        if PLANS_BY_SERIES[(w.subject, w.session, w.series)].face_screen
        else ""
    )


def pixel_source(w):
    """The DICOM that the defaced DICOM reads (and that the series job converted): the text
    stage's output (every pixel object is read first), or the de-identified series when
    redaction is off.
    """
    p = PLANS_BY_SERIES[(w.subject, w.session, w.series)]
    return L.work_dir("redact" if p.redact else "deid", **series_ids(w))


def convert_args(w):
    """The series job's conversion flags from the plan: ``--not-converted REASON`` for a
    series the plan does not convert; ``--no-face-check`` for one planned for defacing (its
    defacing job looks for the face; the face record lists its images as skipped)."""
    p = PLANS_BY_SERIES[(w.subject, w.session, w.series)]
    if not p.convert:
        return "--not-converted 'not planned for conversion: see the release plan'"
    return "--no-face-check" if p.deface else ""


def redaction_results():
    return [L.result("redact", **series_ids(p)) for p in PLAN if p.redact]


def subject_release_inputs(w):
    """What one subject's release job reads: every series' de-identification report
    (so that all the subject's jobs form one cluster job, group "subject"), the
    conversions, the defaced images with their results and morphometry, and the
    DICOM folders to release (de-identified, redacted or defaced)."""
    out = []
    for p in PLANS_BY_SUBJECT[w.subject]:
        ids = series_ids(p)
        if not INPUT_BIDS:
            out.append(L.result("deid", **ids))
        if p.convert:
            out += [L.work_dir("convert", **ids), L.convert_result(**ids)]
            if p.deface and DEFACE:
                out += [
                    L.work_dir("deface", **ids),
                    L.result("deface", **ids),
                    L.work_dir("morphometry", **ids),
                ]
            elif not p.deface:
                out.append(L.result("face", **ids))
        stage = nd_plan.dicom_stage(p)
        if stage:
            out.append(L.work_dir(stage, **ids))
    return out


def subject_decisions(w):
    return nd_review.subject_decisions_path(REVIEW_DECISIONS, w.subject)


def released_listings():
    """Every private listing of released files (one per subject)."""
    return [L.subject_file("released", s) for s in SUBJECTS]


def applied_decisions():
    """What every release job did with the reviewer's decisions (private JSON)."""
    return [L.subject_file("applied", s) for s in SUBJECTS]


def bids_names():
    """The BIDS names of every subject's converted images (private JSON)."""
    return [L.subject_file("names", s) for s in SUBJECTS]


def get_release_files():
    """Every release file, or the private listing of a released folder (grows with each stage)."""
    return (
        [
            L.release_file("dataset_description.json"),
            L.release_file("participants.tsv"),
            L.release_file("README"),
            L.release_file(".bidsignore"),
        ]
        + released_listings()
        + redacted_image_results()
    )


def get_final_output():
    out = get_release_files() + [
        L.private_file("audit.ok"),
        L.private_file("quarantine.tsv"),
        REVIEW_SHEET,
        L.private_file("review/release_state.tsv"),
    ]
    return out + morphometry_summary() + report_outputs() + quasi_outputs()


def quasi_outputs():
    """The k-anonymity page and summary, and its gate when quasi.gate is on."""
    out = [
        L.private_file("report/quasi.html"),
        L.private_file("quasi/k_anonymity.json"),
    ]
    return out + (
        [L.private_file("quasi.ok")] if QUASI_CONFIG.get("gate", False) else []
    )


def morphometry_tables():
    return [
        L.result("morphometry", **series_ids(p))
        for p in PLAN
        if p.deface and p.convert and DEFACE
    ]


def deface_results():
    """Defacing result (JSON) of every series planned for defacing (empty when defacing is off)."""
    return [
        L.result("deface", **series_ids(p))
        for p in PLAN
        if DEFACE and p.deface and p.convert
    ]


def morphometry_summary():
    """The morphometry summary TSV, as a list (empty when nothing is defaced)."""
    return [L.private_file("morphometry/summary.tsv")] if morphometry_tables() else []


def report_summary_inputs(wildcards):
    """What the report summary reads: the audit table, not the gate, so a failed audit is reported too."""
    return {
        "index": L.private_file("index.tsv"),
        "plan": L.private_file("release_plan.tsv"),
        "names": bids_names(),
        "release": get_release_files(),
        "redact": redaction_results(),
        "quarantine": L.private_file("quarantine.tsv"),
        "audit": L.private_file("audit.tsv"),
        "deface": deface_results(),
        "morphometry": morphometry_summary(),
        "review": [REVIEW_SHEET, L.private_file("review/release_state.tsv")],
        "quasi": L.private_file("quasi/k_anonymity.json"),
    }


def report_outputs():
    """The report's summary page, for `rule all` (so that `snakemake --report` finds every page)."""
    return [L.private_file("report/summary.html")]


def deface_dicom_results():
    """Result (JSON) of every defaced-DICOM rewrite (status and reason)."""
    return [L.result("deface_dicom", **series_ids(p)) for p in PLAN if p.defaced_dicom]


def image_suffix(w):
    """The released file's extension: the listed image's own (.png stays lossless)."""
    suffix = Path(REDACT_IMAGES[int(w.n)]).suffix.lower()
    return suffix if suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff") else ".png"


def redacted_image_results():
    return [L.image_file("result", f"{n:02d}") for n in range(len(REDACT_IMAGES))]
