"""The outcome vocabularies of a run and the one typed stage result.

Three small enums name every state a record holds (their values are what the files say):

* :class:`StageStatus`: what a stage did with a series, a file or an image (``ok``,
  ``failed``, ...), in the stage results, the de-identification report and the release notes;
* :class:`Check`: the verdict of a check (``PASS`` / ``WARN`` / ``FAIL``): the text stage,
  the morphometry, the quasi-identifiers;
* :class:`Release`: what the review sheet says of an item that no check judged
  (``RELEASED`` / ``WITHHELD``).

:class:`StageResult` is the private JSON a stage job leaves for one series (or one listed
image). Every job writes it with :func:`write_stage_result` and every reader reads it with
:func:`read_stage_result`; :data:`RECORD_KEYS` is the file's layout, stage by stage.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class StageStatus(str, Enum):
    """What a stage did with a series, a file or an image."""

    OK = "ok"
    FAILED = "failed"  # no output: the item is withheld with the reason
    FACE = "face"  # the face check saw a face: not released as it is
    QUARANTINED = "quarantined"  # de-identification refused the file
    SKIPPED = "skipped"  # not an image (DICOMDIR, notes, ...)
    WITHHELD = "withheld"  # the release kept it out (release notes)

    def __str__(self) -> str:
        return self.value


class Check(str, Enum):
    """The verdict of a check, worst last."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"

    def __str__(self) -> str:
        return self.value


class Release(str, Enum):
    """The review verdict of an item that no check judged: released as it is, or kept out."""

    RELEASED = "RELEASED"
    WITHHELD = "WITHHELD"

    def __str__(self) -> str:
        return self.value


#: A status as a record holds it.
Status = StageStatus | Check

#: The keys of each stage's result file, in file order. ``status``, ``reason``, ``images``,
#: ``files`` and ``qc`` are :class:`StageResult` fields; every other key is one of its
#: ``measures``, written only when present.
RECORD_KEYS: dict[str, tuple[str, ...]] = {
    "convert": ("status", "reason", "source", "images"),
    "redact": ("status", "mode", "reason", "files", "screened", "face_screen", "qc"),
    "redact_image": ("status", "reasons", "method", "boxes", "pixels_changed", "output"),
    "deface": ("method", "images"),
    "face": ("images",),
    "deface_dicom": ("status", "reason", "summary"),
}

_FIELDS = ("status", "reason", "images", "files", "qc")


class StageResultError(ValueError):
    """A stage result that cannot be written or read as its stage's record."""


def parse_status(value: str) -> Status:
    """The enum member of a status as a file spells it (:class:`StageStatus` or :class:`Check`).

    Raises
    ------
    StageResultError
        For a value neither vocabulary holds.
    """
    for kind in (StageStatus, Check):
        try:
            return kind(value)
        except ValueError:
            pass
    raise StageResultError(f"unknown status {value!r} (expected one of "
                           f"{', '.join(s.value for s in (*StageStatus, *Check))})")


def passed(status: Status | str | None) -> bool:
    """Whether a status lets its series, file or image go on (``ok`` or ``PASS``)."""
    return status in (StageStatus.OK, Check.PASS)


@dataclass(frozen=True)
class StageResult:
    """The outcome of one stage job for one series (or one listed image).

    Attributes
    ----------
    stage : str
        A key of :data:`RECORD_KEYS` (the :mod:`neurodeid.layout` stage name).
    status : StageStatus, Check or None
        The series' outcome; None for the stages that judge each image only (defacing,
        the face check).
    reason : str
        Why it is not ``ok`` / ``PASS``, for the reader ("" otherwise).
    images, files : list of dict
        One entry per image (``images``) or per DICOM file (``files``, the text stage),
        each with its own ``status`` where the stage judges it, and its QC pictures under
        ``qc`` where it has any (as the series' ``qc``).
    qc : list of str
        The series' own QC pictures (the face screen's renders), as paths relative to the
        stage's QC folder of the series (:meth:`neurodeid.layout.Layout.qc_dir`): private,
        they may show a face or burned-in text. See :func:`qc_pictures`.
    measures : dict
        The stage's other keys (:data:`RECORD_KEYS`): ``method``, ``mode``, ``source``,
        ``screened``, ``summary``, ...
    """

    stage: str
    status: Status | None = None
    reason: str = ""
    images: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    qc: list[str] = field(default_factory=list)
    measures: dict = field(default_factory=dict)

    def __post_init__(self):
        keys = RECORD_KEYS.get(self.stage)
        if keys is None:
            raise StageResultError(f"unknown stage {self.stage!r} (expected one of {', '.join(RECORD_KEYS)})")
        unknown = sorted(set(self.measures) - set(keys) - set(_FIELDS))
        if unknown:
            raise StageResultError(f"{self.stage} result: unknown key(s) {', '.join(unknown)}")

    @property
    def ok(self) -> bool:
        """The series passed its stage (:func:`passed`)."""
        return passed(self.status)

    def to_dict(self) -> dict:
        """The record as its file holds it (keys in :data:`RECORD_KEYS` order)."""
        fields = {"status": self.status, "reason": self.reason, "images": self.images, "files": self.files,
                  "qc": self.qc}
        return {k: fields[k] if k in _FIELDS else self.measures[k]
                for k in RECORD_KEYS[self.stage] if (k in _FIELDS and (k != "qc" or self.qc)) or k in self.measures}

    @classmethod
    def from_dict(cls, stage: str, record: dict) -> "StageResult":
        """The typed record of a dict as :meth:`to_dict` gives it (statuses parsed)."""
        status = record.get("status")
        return cls(stage, parse_status(status) if status is not None else None, record.get("reason", ""),
                   [_typed_entry(e) for e in record.get("images", [])],
                   [_typed_entry(e) for e in record.get("files", [])], list(record.get("qc", [])),
                   {k: v for k, v in record.items() if k not in _FIELDS})


def by_image(result: StageResult | None) -> dict[str, dict]:
    """``{image file name: entry}`` of a stage result's ``images`` (empty without a result)."""
    return {im["image"]: im for im in (result.images if result else [])}


def qc_pictures(qc_dir: str | os.PathLike, entry: StageResult | dict | None) -> list[Path]:
    """The QC pictures a stage result (its series' ``qc``) or one of its entries (an image's
    or a file's ``qc``) lists, under ``qc_dir`` (the stage's QC folder of the series), that
    exist. The stage that wrote the pictures names them; nobody else guesses their names."""
    names = entry.qc if isinstance(entry, StageResult) else (entry or {}).get("qc", [])
    return [p for p in (Path(qc_dir) / n for n in names) if p.is_file()]


def _typed_entry(entry: dict) -> dict:
    if "status" not in entry:
        return entry
    return dict(entry, status=parse_status(entry["status"]))


def write_stage_result(path: str | os.PathLike, result: StageResult) -> None:
    """Write a stage result atomically: indented JSON, one trailing newline, the keys in
    :data:`RECORD_KEYS` order, statuses as their values."""
    from .fileio import write_json_atomic

    write_json_atomic(path, result.to_dict())


def read_stage_result(path: str | os.PathLike, stage: str,
                      error: type[Exception] = StageResultError) -> StageResult:
    """The ``stage`` result in ``path`` (written by :func:`write_stage_result`).

    Raises
    ------
    error
        When the file cannot be read as JSON or holds an unknown status or key (naming the
        file and what to do).
    """
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"{path}: cannot read as JSON ({exc}); rerun the step that writes it") from None
    try:
        return StageResult.from_dict(stage, record)
    except StageResultError as exc:
        raise error(f"{path}: {exc}; rerun the step that writes it") from None
