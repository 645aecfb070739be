"""The records a run leaves in ``private/``, read one way.

Every stage writes its outcome to a private record (:mod:`neurodeid.layout` says where);
the release job, the review sheet (:mod:`neurodeid.review`) and the report
(:mod:`neurodeid.report`) all read them through this module: one TSV reader, one JSON
reader, the stage results typed (:func:`neurodeid.results.read_stage_result`), the plan as
typed rows (its flags, never its prose), and :class:`RunRecords`, which reads each record
of a run at most once.

Statuses as the stages write them (the enums of :mod:`neurodeid.results`):

* de-identification report (TSV, per file): :class:`~neurodeid.results.StageStatus`
  ``ok`` / ``quarantined`` / ``skipped``;
* conversion, defacing, face check, defaced DICOM (stage results): ``ok`` / ``failed`` (the
  face check: ``ok`` / ``face`` / ``failed``), per image under ``images`` where there are images;
* text stage (stage result): :class:`~neurodeid.results.Check` ``PASS`` / ``FAIL`` for the
  series and for each file under ``files``;
* morphometry (TSV, per image): verdict ``PASS`` / ``WARN`` / ``FAIL``.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .layout import Layout, series_ids
from .results import read_stage_result


class RecordError(ValueError):
    """A private record is missing where it must exist, or cannot be read."""


def tsv_cell(value) -> str:
    """One TSV cell: the value as text (None: empty), each tab, carriage return and newline a
    space (so a row stays one line and its columns stay put). No quoting: :func:`read_tsv`
    reads back exactly what was written."""
    if value is None:
        return ""
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def tsv_text(columns, rows, *, header: bool = True, comments=()) -> str:
    """The text of a private TSV: ``comments`` (each a ``#`` line, as given), the header
    (``columns``) unless ``header`` is False, then one line per row (a mapping read by
    ``columns``, missing keys empty, or a sequence in column order), every cell through
    :func:`tsv_cell`."""
    lines = [*comments]
    if header:
        lines.append("\t".join(columns))
    for r in rows:
        cells = [r.get(c, "") for c in columns] if isinstance(r, dict) else r
        lines.append("\t".join(tsv_cell(v) for v in cells))
    return "\n".join(lines) + "\n" if lines else ""


def write_tsv(path: str | os.PathLike, columns, rows, *, comments=(), if_changed: bool = False) -> Path:
    """Write a private TSV (:func:`tsv_text`) atomically; with ``if_changed`` only when its
    text differs (so Snakemake sees no new file). Returns the path."""
    from .fileio import write_text_atomic, write_text_if_changed

    text = tsv_text(columns, rows, comments=comments)
    (write_text_if_changed if if_changed else write_text_atomic)(path, text)
    return Path(path)


def read_tsv(path: str | os.PathLike, error: type[Exception] = RecordError) -> list[dict]:
    """Rows of a TSV with a header (:func:`write_tsv`); lines starting with ``#`` are skipped,
    and quotes are text (no quoting, as the writer writes).

    Raises ``error`` (naming the file and what to do) when the file cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            lines = [ln for ln in fh if not ln.startswith("#")]
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror}); run the workflow first") from None
    return list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))


def read_json(path: str | os.PathLike, error: type[Exception] = RecordError):
    """A JSON record; raises ``error`` (naming the file and what to do) when unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"{path}: cannot read as JSON ({exc}); rerun the step that writes it") from None


@dataclass(frozen=True)
class PlanRow:
    """One series of ``release_plan.tsv`` (:func:`neurodeid.plan.write_plan`), typed.

    ``bids`` and ``withheld_reason`` are text for the reader; decisions use the flags.
    """

    subject: str  # without "sub-"
    session: str  # without "ses-"
    series: str
    modality: str
    release_dicom: bool
    withheld_reason: str
    bids: str
    convert: bool
    deface: bool
    dicom: str  # a stage of neurodeid.plan.DICOM_STAGES, "withheld" or "none"

    @classmethod
    def from_row(cls, r: dict) -> "PlanRow":
        return cls(r["subject"].removeprefix("sub-"), r["session"].removeprefix("ses-"), r["series"],
                   r.get("modality", ""), r.get("release_dicom") == "yes", r.get("withheld_reason", ""),
                   r.get("bids", ""), r.get("convert") == "yes", r.get("deface") == "yes", r.get("dicom", ""))

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subject, self.session, self.series)

    @property
    def ids(self) -> dict[str, str]:
        """Keyword arguments of :class:`neurodeid.layout.Layout`'s methods."""
        return series_ids(self)


class RunRecords:
    """The private records of one run, each read at most once.

    Parameters
    ----------
    private_dir : path-like
        The run's ``private/`` folder.
    error : exception class
        Raised (with the file and what to do) for a record that cannot be read.
    """

    def __init__(self, private_dir: str | os.PathLike, error: type[Exception] = RecordError):
        self.private = Path(private_dir)
        self.layout = Layout(os.fspath(private_dir))
        self.error = error
        self._cache: dict = {}

    def _once(self, key, read):
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    def path(self, name: str) -> Path:
        """A run-wide private file (:data:`neurodeid.layout.PRIVATE_FILES`)."""
        return Path(self.layout.private_file(name))

    def tsv(self, name: str, missing_ok: bool = False) -> list[dict]:
        """Rows of a run-wide private TSV (``[]`` for a missing file with ``missing_ok``)."""
        p = self.path(name)
        if missing_ok and not p.is_file():
            return []
        return self._once(("tsv", name), lambda: read_tsv(p, self.error))

    def plan(self) -> list[PlanRow]:
        """The release plan's series, in file order."""
        return self._once("plan", lambda: [PlanRow.from_row(r) for r in self.tsv("release_plan.tsv")])

    def names(self, subject: str) -> dict | None:
        """The BIDS names of a subject's images (``{session: {series: [entries] | {"failed"}}}``),
        None before its release job ran."""
        p = Path(self.layout.subject_file("names", subject))
        return self._once(("names", subject), lambda: read_json(p, self.error) if p.is_file() else None)

    def defacing_enabled(self, subject: str) -> bool:
        """Whether the run defaces (config ``deface.enabled``), as the subject's plan records it
        (:func:`neurodeid.plan.subject_plans`); True without that file."""
        p = Path(self.layout.subject_file("plan", subject))
        data = self._once(("plan", subject), lambda: read_json(p, self.error) if p.is_file() else {})
        return bool(data.get("deface_enabled", True))

    def result(self, stage: str, ids: dict[str, str]):
        """A series' private result of ``stage`` (a :class:`neurodeid.results.StageResult`, a TSV
        as rows), None when absent."""
        p = Path(self.layout.result(stage, **ids))

        def read():
            if not p.is_file():
                return None
            return read_tsv(p, self.error) if p.suffix == ".tsv" else read_stage_result(p, stage, self.error)

        return self._once(("result", stage, p), read)

    def series(self) -> list["SeriesRecords"]:
        """Every series of the plan, in file order, with its records (:class:`SeriesRecords`)."""
        return self._once("series", lambda: [SeriesRecords(p, self) for p in self.plan()])


class SeriesRecords:
    """What a run recorded about one series: its plan row and its stages' results, each read
    at most once (through its :class:`RunRecords`). The review sheet and the report both
    render these; neither reads a stage's file itself.

    A result is None when its stage has not run (or does not run for this series: defacing
    and the morphometry only for a series planned for defacing).
    """

    def __init__(self, plan: PlanRow, run: RunRecords):
        self.plan = plan
        self._run = run

    @property
    def key(self) -> tuple[str, str, str]:
        return self.plan.key

    @property
    def names(self):
        """The series' entry in its subject's BIDS names: a list of ``{"image", "bids", ...}``,
        ``{"failed": reason}``, or None (not converted or named yet)."""
        subject = self._run.names(self.plan.subject)
        return None if subject is None else subject.get(self.plan.session, {}).get(self.plan.series)

    def result(self, stage: str):
        return self._run.result(stage, self.plan.ids)

    @property
    def text(self):
        """The text stage's result (:class:`neurodeid.results.StageResult`)."""
        return self.result("redact")

    @property
    def defacing(self) -> bool:
        """The run defaces this series' images: planned for conversion and defacing, with
        defacing enabled."""
        return self.plan.convert and self.plan.deface and self._run.defacing_enabled(self.plan.subject)

    @property
    def deface(self):
        """The defacing result, for a series planned for defacing."""
        return self.result("deface") if self.plan.deface else None

    @property
    def face(self):
        """The face check's result (images not planned for defacing)."""
        return self.result("face")

    @property
    def deface_dicom(self):
        """The defaced DICOM's result."""
        return self.result("deface_dicom")

    @property
    def morphometry(self) -> dict[str, dict]:
        """``{image file name: row}`` of the series' morphometry table (defaced series only)."""
        rows = (self.result("morphometry") or []) if self.plan.deface else []
        return {Path(r.get("image", "")).name: r for r in rows}

    def qc_dir(self, stage: str) -> str:
        """The stage's QC folder of this series (:meth:`neurodeid.layout.Layout.qc_dir`)."""
        return self._run.layout.qc_dir(stage, **self.plan.ids)
