"""The one definition of the results folder: where every stage writes and reads.

The workflow's rules (through ``workflow/rules/common.smk``) and the library both take
their paths from a :class:`Layout`; nothing else spells a results path. Three areas::

    <output_dir>/release/   what is shared (BIDS images, de-identified DICOM)
    <output_dir>/private/   everything that may identify: index, plan, needles, stage
                            results, QC pictures, logs, benchmarks, the report
    <output_dir>/work/      stage outputs that are copied into the release

A series is named by ``(subject, session, series)``: the pseudonymous subject and
session labels and the series label (``s<number>``). Every method that names a series'
file takes them as keywords; left out, they stay Snakemake wildcards (``{subject}``...),
so the same method gives a rule its pattern and a job its concrete path::

    >>> lay = Layout.of("results")
    >>> lay.result("deface")
    'results/private/deface/sub-{subject}/ses-{session}/{series}.json'
    >>> lay.result("deface", subject="01", session="01", series="s3")
    'results/private/deface/sub-01/ses-01/s3.json'

Paths are returned as ``str`` (what Snakemake takes); wrap them in :class:`pathlib.Path`
where the library reads or writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Wildcards of a series' paths, as Snakemake spells them.
SUBJECT, SESSION, SERIES = "{subject}", "{session}", "{series}"

#: Stages that write one folder per series under ``work/`` (their outputs are released
#: or read by the next stage).
WORK_STAGES = ("deid", "redact", "convert", "deface", "morphometry", "deface_dicom")

#: Stages that write one private result per series, with its extension.
RESULT_SUFFIX = {
    "deid": ".tsv",  # de-identification report: one row per file
    "needles": ".json",  # the raw series' identifying values (the audit's needles)
    "redact": ".json",  # the text stage's result
    "deface": ".json",  # defacing result per image
    "face": ".json",  # face check of a series not planned for defacing
    "morphometry": ".tsv",  # morphometry table per image
    "deface_dicom": ".json",  # the defaced DICOM rewrite's status
}

#: Per-subject private files: kind -> (folder under private/, file name after sub-<S>).
SUBJECT_FILES = {
    "plan": ("plan", ".json"),  # the subject plan (plan.write_plan)
    "names": ("bids", ".names.json"),  # the BIDS names of its converted images
    "released": ("released", ".tsv"),  # the private listing of released files
    "applied": ("review/applied", ".json"),  # what its release job did with the decisions
}


def _series(subject: str, session: str, series: str) -> str:
    return f"sub-{subject}/ses-{session}/{series}"


def released_dicom_series(subject: str, session: str, series: str) -> str:
    """Where a de-identified DICOM series is released, relative to ``release/``."""
    return f"sourcedata/dicom/{_series(subject, session, series)}"


def series_ids(obj) -> dict[str, str]:
    """``{"subject", "session", "series"}`` of anything that has those attributes (a
    :class:`neurodeid.plan.SeriesPlan`, an index :class:`neurodeid.index.Series`,
    Snakemake wildcards), for the keyword arguments of :class:`Layout`'s methods."""
    return {"subject": obj.subject, "session": obj.session, "series": obj.series}


@dataclass(frozen=True)
class Layout:
    """Where a run's files are; see the module docstring.

    Attributes
    ----------
    private, work, release : str
        The three areas. :meth:`of` puts them under one ``output_dir``; a job that is
        given only some of them (tests, the CLI) builds the layout from those.
    """

    private: str
    work: str = ""
    release: str = ""

    @classmethod
    def of(cls, output_dir: str | os.PathLike) -> "Layout":
        """The layout of one ``output_dir`` (config ``output_dir``)."""
        out = os.fspath(output_dir).rstrip("/") or "/"
        return cls(private=f"{out}/private", work=f"{out}/work", release=f"{out}/release")

    # -- folders -----------------------------------------------------------------
    @property
    def logs(self) -> str:
        return f"{self.private}/logs"

    @property
    def benchmarks(self) -> str:
        return f"{self.private}/benchmarks"

    @property
    def tmp(self) -> str:
        """Where a release job builds a session before renaming it into the release."""
        return f"{self.work}/tmp"

    # -- one series ----------------------------------------------------------------
    def work_dir(self, stage: str, *, subject: str = SUBJECT, session: str = SESSION,
                 series: str = SERIES) -> str:
        """``work/<stage>/sub-S/ses-T/<series>``: one series' output folder of a stage."""
        if stage not in WORK_STAGES:
            raise ValueError(f"unknown work stage {stage!r} (one of {', '.join(WORK_STAGES)})")
        return f"{self.work}/{stage}/{_series(subject, session, series)}"

    def convert_result(self, *, subject: str = SUBJECT, session: str = SESSION, series: str = SERIES) -> str:
        """The conversion's result (JSON) next to its folder of images."""
        return self.work_dir("convert", subject=subject, session=session, series=series) + ".json"

    def result(self, stage: str, *, subject: str = SUBJECT, session: str = SESSION,
               series: str = SERIES) -> str:
        """``private/<stage>/sub-S/ses-T/<series>.<ext>``: one series' private result."""
        try:
            suffix = RESULT_SUFFIX[stage]
        except KeyError:
            raise ValueError(f"unknown result {stage!r} (one of {', '.join(RESULT_SUFFIX)})") from None
        return f"{self.private}/{stage}/{_series(subject, session, series)}{suffix}"

    def qc_dir(self, stage: str, *, subject: str = SUBJECT, session: str = SESSION, series: str = SERIES) -> str:
        """``private/qc/<stage>/sub-S/ses-T/<series>``: a series' QC pictures, one folder."""
        return f"{self.private}/qc/{stage}/{_series(subject, session, series)}"

    def qc_picture(self, stage: str, view: str = "", *, subject: str = SUBJECT, session: str = SESSION,
                   series: str = SERIES) -> str:
        """``private/qc/<stage>/sub-S_ses-T_<series>[_<view>].png``: a series' report picture."""
        view = f"_{view}" if view else ""
        return f"{self.private}/qc/{stage}/sub-{subject}_ses-{session}_{series}{view}.png"

    def index_files(self, *, subject: str = SUBJECT, session: str = SESSION, series: str = SERIES) -> str:
        """The private list of one series' input files (the de-identification's manifest)."""
        return f"{self.private}/index/{_series(subject, session, series)}.files.tsv"

    # -- one subject ---------------------------------------------------------------
    def subject_file(self, kind: str, subject: str = SUBJECT) -> str:
        """A per-subject private file (:data:`SUBJECT_FILES`)."""
        try:
            folder, suffix = SUBJECT_FILES[kind]
        except KeyError:
            raise ValueError(f"unknown subject file {kind!r} (one of {', '.join(SUBJECT_FILES)})") from None
        return f"{self.private}/{folder}/sub-{subject}{suffix}"

    # -- plain 2D images (config redact.images) -------------------------------------
    def image_file(self, kind: str, n: str = "{n}") -> str:
        """The text stage's ``"result"`` (JSON) or ``"qc"`` picture of listed image ``n``."""
        if kind == "result":
            return f"{self.private}/redact/images/image{n}.json"
        if kind == "qc":
            return f"{self.private}/qc/redact/images/image{n}.png"
        raise ValueError(f"unknown image file {kind!r} (result or qc)")

    def released_image(self, n: str, suffix: str) -> str:
        """Where listed image ``n`` is released (``suffix``: its own extension)."""
        return f"{self.release}/sourcedata/images/image{n}{suffix}"

    def subject_folder(self, kind: str) -> str:
        """The folder of every subject's :meth:`subject_file` of ``kind``."""
        return os.path.dirname(self.subject_file(kind, ""))

    # -- logs and benchmarks -------------------------------------------------------
    def log(self, rule: str, what: str = "") -> str:
        """``private/logs/<rule>[/<what>].log``; ``what`` names the job (:meth:`job`)."""
        return f"{self.logs}/{rule}/{what}.log" if what else f"{self.logs}/{rule}.log"

    def benchmark(self, rule: str, what: str = "") -> str:
        """``private/benchmarks/<rule>[/<what>].tsv``, next to :meth:`log`."""
        return f"{self.benchmarks}/{rule}/{what}.tsv" if what else f"{self.benchmarks}/{rule}.tsv"

    @staticmethod
    def job(subject: str = SUBJECT, session: str | None = SESSION, series: str | None = SERIES) -> str:
        """A job's flat name in logs and benchmarks: ``sub-S_ses-T_<series>`` or ``sub-S``."""
        if session is None:
            return f"sub-{subject}"
        return f"sub-{subject}_ses-{session}_{series}"

    # -- one file per run ----------------------------------------------------------
    def private_file(self, name: str) -> str:
        """``private/<name>``: a run-wide private file (the names are in :data:`PRIVATE_FILES`)."""
        if name not in PRIVATE_FILES:
            raise ValueError(f"unknown private file {name!r} (one of {', '.join(PRIVATE_FILES)})")
        return f"{self.private}/{name}"

    def release_file(self, name: str) -> str:
        """``release/<name>``."""
        return f"{self.release}/{name}"


#: Every run-wide private file, relative to ``private/``.
PRIVATE_FILES = (
    "index.tsv",  # the index: one row per series
    "index/quarantine.tsv",  # files the index could not read
    "index/subjects.tsv",
    "index/paths.tsv",  # every raw input path (for the path needles)
    "index_cache.json",  # the header cache of the index (by path, size and mtime)
    "crosswalk.tsv",  # patient ID -> subject label (the key to re-identification)
    "release_plan.tsv",
    "needles/paths.json",
    "quarantine.tsv",  # every input file that did not make it, with stage and reason
    "audit.tsv",
    "audit.ok",
    "review.tsv",  # the review sheet
    "review/decisions",  # the reviewer's decisions, one file per subject
    "review/release_state.tsv",
    "release_log.tsv",  # every item that entered or left the release, run by run
    "morphometry/summary.tsv",
    "morphometry/summary.png",
    "morphometry/failed.tsv",
    "quasi/k_anonymity.json",
    "quasi/k_anonymity.tsv",
    "quasi.ok",
    "released",  # the per-subject listings of released files
    "report/summary.html",
    "report/summary_counts.rst",
    "report/withheld.html",
    "report/quarantine.html",
    "report/audit.html",
    "report/review.html",
    "report/quasi.html",
    "report/subjects",
)
