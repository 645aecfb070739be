# Config validation, the parse-time index and the small input functions.
# Rules never parse anything themselves; all logic lives in src/neurodeid.
import json
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from neurodeid import index as nd_index
from neurodeid import keys as nd_keys
from neurodeid import plan as nd_plan
from neurodeid import review as nd_review
from neurodeid.convert import load_heuristics
from neurodeid.profile import ProfileError, check_options

validate(config, schema="../schemas/config.schema.yaml")

OUT = config["output_dir"].rstrip("/")
PRIVATE = f"{OUT}/private"
RELEASE = f"{OUT}/release"
WORK = f"{OUT}/work"
LOGS = f"{PRIVATE}/logs"
BENCH = f"{PRIVATE}/benchmarks"
EXAMPLE_DIR = (Path(workflow.basedir) / "example" / "dicom").resolve()

try:
    DEID_OPTIONS = sorted(check_options(config["deid"]["options"]))
    ALLOW_DEMO_KEY = Path(config["input_dir"]).resolve() == EXAMPLE_DIR
    # The key stays in memory: rules get its public fingerprint, never the key.
    KEY = nd_keys.load_key(
        config.get("key_file") or None,
        allow_demo=ALLOW_DEMO_KEY,
    )
    # Parse-time index: a header scan cached by (path, size, mtime), so every
    # snakemake call (dry runs included) sees the current tree. Its files are
    # rewritten only when their content changes.
    INDEX = nd_index.build_index(
        config["input_dir"],
        PRIVATE,
        KEY,
        crosswalk=config.get("crosswalk") or None,
        pixel_cleaning_modalities=tuple(config["index"]["pixel_cleaning_modalities"]),
        # Cluster jobs parse the workflow again: only the main process writes.
        write=workflow.is_main_process,
    )
except (nd_keys.KeyError_, nd_index.IndexError_, ProfileError) as exc:
    raise WorkflowError(str(exc)) from None

KEY_FINGERPRINT = nd_keys.fingerprint(KEY)
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
PLAN = nd_plan.make_plan(
    INDEX,
    release_dicom=config["deid"]["release_dicom"],
    rules=BIDS_RULES,
    redact=config["redact"]["enabled"],
    deface_enabled=config["deface"]["enabled"],
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
if workflow.is_main_process:
    nd_plan.write_plan(PLAN, PRIVATE, INDEX)
# Plans by (subject, session, series) and by (subject, session): dict lookups, so input
# functions stay O(1) per job at thousands of subjects.
PLAN_BY_SERIES = {(p.subject, p.session, p.series): p for p in PLAN}
PLANS_BY_SESSION = {}
for _p in PLAN:
    PLANS_BY_SESSION.setdefault((_p.subject, _p.session), []).append(_p)
DEFACE = config["deface"]["enabled"]
# Defacing parameters as JSON: a parameter, so a change reruns defacing and what follows.
DEFACE_PARAMS_JSON = json.dumps(config["deface"]["params"], sort_keys=True)
MORPHOMETRY_JSON = json.dumps(config["morphometry"]["thresholds"], sort_keys=True)
# Sessions with at least one series to convert, as (subject, session).
CONVERT_SESSIONS = sorted({(p.subject, p.session) for p in PLAN if p.convert})

# The reviewer's decisions (config review.decisions: an edited copy of review.tsv),
# checked against the last review sheet and split into one small file per session and
# per DICOM series, each rewritten only when its content changes: editing a decision
# reruns only the release job it concerns.
REVIEW_SHEET = f"{PRIVATE}/review.tsv"
REVIEW_DECISIONS = f"{PRIVATE}/review/decisions"
REVIEW_SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "review.schema.yaml"
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
    nd_review.split_decisions(
        DECISIONS,
        REVIEW_DECISIONS,
        sessions=CONVERT_SESSIONS,
        series=[(p.subject, p.session, p.series) for p in PLAN if p.release_dicom],
    )


wildcard_constraints:
    subject="[0-9a-zA-Z]+",
    session="[0-9a-zA-Z]+",
    series="s[0-9a-z]+",
    n="[0-9]{2}",


def series_manifest(wildcards):
    return nd_index.manifest_path(
        PRIVATE, wildcards.subject, wildcards.session, wildcards.series
    )


def all_series(pattern):
    """``pattern`` formatted for every series of the index."""
    return [
        pattern.format(subject=s.subject, session=s.session, series=s.series)
        for s in INDEX.series
    ]


def get_needle_files():
    series_needles = (
        f"{PRIVATE}/needles/sub-{{subject}}/ses-{{session}}/{{series}}.json"
    )
    return all_series(series_needles) + [f"{PRIVATE}/needles/paths.json"]


def _plan_of(w):
    return PLAN_BY_SERIES[(w.subject, w.session, w.series)]


def released_dicom_source(w):
    """The redacted folder for series with burned-in text, the defaced DICOM for defaced
    head series, the de-identified one otherwise."""
    p = _plan_of(w)
    stage = "redact" if p.redact else "deface_dicom" if p.defaced_dicom else "deid"
    return f"{WORK}/{stage}/sub-{w.subject}/ses-{w.session}/{w.series}"


def redaction_results():
    return [
        f"{PRIVATE}/redact/sub-{p.subject}/ses-{p.session}/{p.series}.json"
        for p in PLAN
        if p.redact
    ]


def released_dicom_listings():
    """Private listings of the released DICOM series (the copies live in release/)."""
    return [
        f"{PRIVATE}/released/sourcedata/dicom/sub-{p.subject}/ses-{p.session}/{p.series}.tsv"
        for p in PLAN
        if p.release_dicom
    ]


def _session_plans(w):
    return [p for p in PLANS_BY_SESSION.get((w.subject, w.session), []) if p.convert]


def session_series_json(w):
    return nd_plan.session_series_path(PRIVATE, w.subject, w.session)


def _convert_dir(w, p):
    return f"{WORK}/convert/sub-{w.subject}/ses-{w.session}/{p.series}"


def session_conversions(w):
    return [f"{_convert_dir(w, p)}.json" for p in _session_plans(w)]


def _released_plans(w):
    """Series of the session whose images may be released: no face, or defaced."""
    return [p for p in _session_plans(w) if DEFACE or not p.deface]


def _deface_dir(w, p):
    return f"{WORK}/deface/sub-{w.subject}/ses-{w.session}/{p.series}"


def _source_dir(w, p):
    return _deface_dir(w, p) if p.deface else _convert_dir(w, p)


def _deface_result(w, p):
    return f"{PRIVATE}/deface/sub-{w.subject}/ses-{w.session}/{p.series}.json"


def session_release_sources(w):
    out = [_source_dir(w, p) for p in _released_plans(w)]
    defaced = [p for p in _released_plans(w) if p.deface]
    return (
        out
        + [_deface_result(w, p) for p in defaced]
        + [_morphometry_dir(w, p) for p in defaced]
    )


def session_source_args(w):
    return " ".join(f"{p.series}={_source_dir(w, p)}" for p in _released_plans(w))


def _morphometry_dir(w, p):
    return f"{WORK}/morphometry/sub-{w.subject}/ses-{w.session}/{p.series}"


def session_morphometry_args(w):
    return " ".join(
        f"{p.series}={_morphometry_dir(w, p)}" for p in _released_plans(w) if p.deface
    )


def morphometry_tables():
    return [
        f"{PRIVATE}/morphometry/sub-{p.subject}/ses-{p.session}/{p.series}.tsv"
        for p in PLAN
        if p.deface and DEFACE
    ]


def session_deface_args(w):
    return " ".join(
        f"{p.series}={_deface_result(w, p)}" for p in _released_plans(w) if p.deface
    )


def session_converted_args(w):
    return " ".join(f"{p.series}={_convert_dir(w, p)}" for p in _session_plans(w))


def session_decisions(w):
    return nd_review.session_decisions_path(REVIEW_DECISIONS, w.subject, w.session)


def series_decisions(w):
    return nd_review.series_decisions_path(
        REVIEW_DECISIONS, w.subject, w.session, w.series
    )


def released_listings():
    """Every private listing of released files (DICOM series and BIDS sessions)."""
    return released_dicom_listings() + released_session_listings()


def applied_decisions():
    """What every release job did with the reviewer's decisions (private JSON)."""
    return [
        f"{PRIVATE}/review/applied/dicom/sub-{p.subject}/ses-{p.session}/{p.series}.json"
        for p in PLAN
        if p.release_dicom
    ] + [
        f"{PRIVATE}/review/applied/bids/sub-{sub}/ses-{ses}.json"
        for sub, ses in CONVERT_SESSIONS
    ]


def released_session_listings():
    return [
        f"{PRIVATE}/released/bids/sub-{sub}/ses-{ses}.tsv"
        for sub, ses in CONVERT_SESSIONS
    ]


def get_release_files():
    """Every release file, or the private listing of a released folder (grows with each stage)."""
    return (
        [
            f"{RELEASE}/dataset_description.json",
            f"{RELEASE}/participants.tsv",
            f"{RELEASE}/README",
            f"{RELEASE}/.bidsignore",
        ]
        + released_dicom_listings()
        + released_session_listings()
        + redacted_image_results()
    )


def get_final_output():
    out = get_release_files() + [
        f"{PRIVATE}/audit.ok",
        f"{PRIVATE}/quarantine.tsv",
        REVIEW_SHEET,
        f"{PRIVATE}/review/release_state.tsv",
    ]
    return out + morphometry_summary() + report_outputs() + subject_done_flags()


def deface_results():
    """Defacing result (JSON) of every series planned for defacing (empty when defacing is off)."""
    return [
        f"{PRIVATE}/deface/sub-{p.subject}/ses-{p.session}/{p.series}.json"
        for p in PLAN
        if DEFACE and p.deface and p.convert
    ]


def morphometry_summary():
    """The morphometry summary TSV, as a list (empty when nothing is defaced)."""
    return [f"{PRIVATE}/morphometry/summary.tsv"] if morphometry_tables() else []


def report_summary_inputs(wildcards):
    """What the report summary reads: the audit table, not the gate, so a failed audit is reported too."""
    return {
        "index": f"{PRIVATE}/index.tsv",
        "plan": f"{PRIVATE}/release_plan.tsv",
        "names": [
            f"{PRIVATE}/bids/sub-{sub}/ses-{ses}.names.json"
            for sub, ses in CONVERT_SESSIONS
        ],
        "release": get_release_files(),
        "redact": redaction_results(),
        "quarantine": f"{PRIVATE}/quarantine.tsv",
        "audit": f"{PRIVATE}/audit.tsv",
        "deface": deface_results(),
        "morphometry": morphometry_summary(),
        "review": [REVIEW_SHEET, f"{PRIVATE}/review/release_state.tsv"],
    }


def report_outputs():
    """The report's summary page, for `rule all` (so that `snakemake --report` finds every page)."""
    return [f"{PRIVATE}/report/summary.html"]


def subject_outputs(w):
    """Every per-series and per-session output of one subject: the inputs of the
    subject's join job, which ties them into one cluster job (group "subject")."""
    out = []
    for p in PLAN:
        if p.subject != w.subject:
            continue
        base = f"sub-{p.subject}/ses-{p.session}/{p.series}"
        out += [f"{PRIVATE}/needles/{base}.json", f"{PRIVATE}/deid/{base}.tsv"]
        if p.release_dicom:
            out.append(f"{PRIVATE}/released/sourcedata/dicom/{base}.tsv")
        if p.redact:
            out.append(f"{PRIVATE}/redact/{base}.json")
        if p.deface and DEFACE:
            out += [
                f"{PRIVATE}/deface/{base}.json",
                f"{PRIVATE}/morphometry/{base}.tsv",
            ]
        if p.defaced_dicom:
            out.append(f"{PRIVATE}/deface_dicom/{base}.json")
    out += [
        f"{PRIVATE}/released/bids/sub-{sub}/ses-{ses}.tsv"
        for sub, ses in CONVERT_SESSIONS
        if sub == w.subject
    ]
    return out


def subject_done_flags():
    return [f"{PRIVATE}/done/sub-{s}.ok" for s in INDEX.subject_labels()]


def deface_dicom_results():
    """Result (JSON) of every defaced-DICOM rewrite (status and reason)."""
    return [
        f"{PRIVATE}/deface_dicom/sub-{p.subject}/ses-{p.session}/{p.series}.json"
        for p in PLAN
        if p.defaced_dicom
    ]


def image_suffix(w):
    """The released file's extension: the listed image's own (.png stays lossless)."""
    suffix = Path(REDACT_IMAGES[int(w.n)]).suffix.lower()
    return suffix if suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff") else ".png"


def redacted_image_results():
    return [
        f"{PRIVATE}/redact/images/image{n:02d}.json" for n in range(len(REDACT_IMAGES))
    ]
