# Config validation, the parse-time index and the small input functions.
# Rules never parse anything themselves; all logic lives in src/neurodeid.
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from neurodeid import index as nd_index
from neurodeid import keys as nd_keys
from neurodeid.profile import ProfileError, check_options

validate(config, schema="../schemas/config.schema.yaml")

OUT = config["output_dir"].rstrip("/")
PRIVATE = f"{OUT}/private"
RELEASE = f"{OUT}/release"
LOGS = f"{PRIVATE}/logs"
BENCH = f"{PRIVATE}/benchmarks"
EXAMPLE_DIR = (Path(workflow.basedir) / "example" / "dicom").resolve()

try:
    DEID_OPTIONS = sorted(check_options(config["deid"]["options"]))
    # The key stays in memory: rules get its public fingerprint, never the key.
    KEY = nd_keys.load_key(
        config.get("key_file") or None,
        allow_demo=Path(config["input_dir"]).resolve() == EXAMPLE_DIR,
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
    )
except (nd_keys.KeyError_, nd_index.IndexError_, ProfileError) as exc:
    raise WorkflowError(str(exc)) from None

KEY_FINGERPRINT = nd_keys.fingerprint(KEY)


wildcard_constraints:
    subject="[0-9a-zA-Z]+",
    session="[0-9a-zA-Z]+",
    series="s[0-9a-z]+",


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


def get_release_files():
    """Every file the release will hold (grows with each stage)."""
    return [
        f"{RELEASE}/dataset_description.json",
        f"{RELEASE}/participants.tsv",
        f"{RELEASE}/README",
    ]


def get_final_output():
    return get_release_files() + [f"{PRIVATE}/audit.ok"]
