"""The results layout (neurodeid.layout): one definition of every path of results/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neurodeid.layout import PRIVATE_FILES, RESULT_SUFFIX, WORK_STAGES, Layout, released_dicom_series, series_ids

REPO = Path(__file__).resolve().parents[1]
IDS = {"subject": "ab12", "session": "1", "series": "s003"}


def test_patterns_keep_wildcards_and_jobs_get_paths():
    lay = Layout.of("results/")
    assert (lay.private, lay.work, lay.release) == ("results/private", "results/work", "results/release")
    assert lay.result("deface") == "results/private/deface/sub-{subject}/ses-{session}/{series}.json"
    assert lay.result("deid", **IDS) == "results/private/deid/sub-ab12/ses-1/s003.tsv"
    assert lay.work_dir("convert", **IDS) == "results/work/convert/sub-ab12/ses-1/s003"
    assert lay.convert_result(**IDS) == "results/work/convert/sub-ab12/ses-1/s003.json"
    assert lay.qc_picture("deface", "render", **IDS) == "results/private/qc/deface/sub-ab12_ses-1_s003_render.png"
    assert lay.log("deid_series", lay.job()) == "results/private/logs/deid_series/sub-{subject}_ses-{session}_{series}.log"
    assert lay.benchmark("audit") == "results/private/benchmarks/audit.tsv"
    assert lay.subject_file("names", "ab12") == "results/private/bids/sub-ab12.names.json"
    assert lay.subject_folder("applied") == "results/private/review/applied"
    assert lay.index_files(**IDS) == "results/private/index/sub-ab12/ses-1/s003.files.tsv"
    assert released_dicom_series(**IDS) == "sourcedata/dicom/sub-ab12/ses-1/s003"


def test_pattern_formatted_equals_the_concrete_path():
    """What a rule declares (a pattern) is what a job or the library computes."""
    lay = Layout.of("/tmp/out")
    for stage in WORK_STAGES:
        assert lay.work_dir(stage).format(**IDS) == lay.work_dir(stage, **IDS)
    for stage in RESULT_SUFFIX:
        assert lay.result(stage).format(**IDS) == lay.result(stage, **IDS)


def test_series_ids_of_any_object_with_the_three_labels():
    class W:
        subject, session, series = "ab12", "1", "s003"

    assert series_ids(W()) == IDS


@pytest.mark.parametrize("call", [lambda L: L.work_dir("qc"), lambda L: L.result("deface_dicom_x"),
                                  lambda L: L.subject_file("nope"), lambda L: L.private_file("index2.tsv"),
                                  lambda L: L.image_file("pdf")])
def test_an_unknown_name_is_an_error_not_a_new_path(call):
    with pytest.raises(ValueError, match="unknown"):
        call(Layout.of("results"))


def test_rules_spell_no_results_path():
    """Every results path of the workflow comes from the Layout: no rule file spells one."""
    spelled = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for n, line in enumerate(smk.read_text().splitlines(), 1):
            if re.search(r'f"[^"]*(\{(PRIVATE|WORK|RELEASE|OUT|LOGS|BENCH)\}|sub-\{)', line) or \
                    re.search(r'"[^"]*/(private|work|release)/', line):
                spelled.append(f"{smk.name}:{n}: {line.strip()}")
    assert not spelled, "\n".join(spelled)


def test_private_files_are_unique():
    assert len(PRIVATE_FILES) == len(set(PRIVATE_FILES))
