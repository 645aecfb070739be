"""The index: subjects, sessions and series with pseudonymous labels, the one model both
inputs produce (:mod:`neurodeid.inputs.dicom` from a DICOM tree,
:mod:`neurodeid.inputs.bids` from a BIDS dataset), and its private files.

- subject: ``HMAC(key, issuer + PatientID)`` shortened to 8 hex digits and
  lengthened on collision, or a label from a user crosswalk TSV;
- session: ``1, 2, ...`` in study date order within the subject;
- series: ``s<SeriesNumber:03d>`` within the session (``s003b`` for a second
  series with the same number).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import keys
from .fileio import write_text_if_changed
from .layout import Layout, series_ids
from .records import tsv_text

SUBJECT_LABEL_LENGTH = 8


class IndexError_(ValueError):
    """The input tree or a crosswalk cannot be indexed."""


@dataclass
class FileEntry:
    """One file of the input tree.

    ``status`` is ``"dicom"`` (indexed), ``"skipped"`` (not an image to process:
    non-DICOM, DICOMDIR) or ``"quarantined"`` (looks like DICOM but cannot be used).
    ``path`` is relative to the input directory, with ``/`` separators.
    """

    path: str
    size: int
    mtime_ns: int
    status: str
    reason: str = ""
    fields: dict = field(default_factory=dict)


@dataclass
class Series:
    subject: str
    session: str
    series: str
    fields: dict  # header fields of the first file (private: may identify)
    files: list[FileEntry]
    pixel_cleaning: str = ""  # reason, empty when not needed


@dataclass
class DatasetIndex:
    """The grouped index of one input tree."""

    input_dir: Path
    series: list[Series]
    entries: list[FileEntry]
    subjects: dict[tuple[str, str], str]  # (issuer, patient_id) -> label

    @property
    def quarantined(self) -> list[FileEntry]:
        return [e for e in self.entries if e.status != "dicom"]

    def subject_labels(self) -> list[str]:
        return sorted({s.subject for s in self.series})


# --------------------------------------------------------------------------- reading


def load_cache(cache_path: Path, input_dir: Path, version: int) -> dict:
    """The entries of a header cache written for ``input_dir`` in format ``version``
    (``{}`` when the file is missing, unreadable, or of another input or format)."""
    try:
        data = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if data.get("version") != version or data.get("input_dir") != str(input_dir):
        return {}
    return data.get("entries", {})


def read_crosswalk(path: str | os.PathLike) -> dict[tuple[str, str], str]:
    """Read a user crosswalk TSV (columns ``patient_id``, ``label``, optional ``issuer``).

    Labels must be BIDS labels: letters and digits only.
    """
    path = Path(path)
    out: dict[tuple[str, str], str] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        missing = {"patient_id", "label"} - set(reader.fieldnames or ())
        if missing:
            raise IndexError_(f"crosswalk {path}: missing column(s) {sorted(missing)}; need patient_id, label [, issuer]")
        for lineno, row in enumerate(reader, start=2):
            label = (row["label"] or "").strip()
            if label.startswith("sub-"):
                label = label[4:]
            if not label.isalnum() or not label.isascii():
                raise IndexError_(f"crosswalk {path} line {lineno}: label {label!r} is not a BIDS label (letters, digits)")
            k = ((row.get("issuer") or "").strip(), (row["patient_id"] or "").strip())
            if k in out and out[k] != label:
                raise IndexError_(f"crosswalk {path} line {lineno}: patient listed twice with different labels")
            out[k] = label
    labels = list(out.values())
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise IndexError_(f"crosswalk {path}: label(s) {dup} given to more than one patient")
    return out


def subject_identity(fields: dict) -> tuple[str, str]:
    """(issuer, patient id) of a file; falls back to name + birth date when PatientID is empty."""
    pid = fields.get("PatientID", "")
    if not pid:
        pid = "name:" + fields.get("PatientName", "") + "|" + fields.get("PatientBirthDate", "")
    return fields.get("IssuerOfPatientID", ""), pid


def assign_subject_labels(
    key: bytes, identities: list[tuple[str, str]], crosswalk: dict[tuple[str, str], str] | None = None
) -> dict[tuple[str, str], str]:
    """Give every (issuer, patient id) a subject label.

    Crosswalk entries win (also matched without issuer); others get the first
    :data:`SUBJECT_LABEL_LENGTH` hex digits of their keyed hash, lengthened
    (for the colliding subjects only) until unique.
    """
    crosswalk = crosswalk or {}
    labels: dict[tuple[str, str], str] = {}
    hashed: dict[tuple[str, str], str] = {}
    for ident in sorted(set(identities)):
        cw = crosswalk.get(ident) or crosswalk.get(("", ident[1]))
        if cw:
            labels[ident] = cw
        else:
            hashed[ident] = keys.subject_hash(key, ident[1], ident[0])
    taken = set(labels.values())
    length = SUBJECT_LABEL_LENGTH
    pending = dict(hashed)
    while pending:
        prefixes: dict[str, list] = {}
        for ident, h in pending.items():
            prefixes.setdefault(h[:length], []).append(ident)
        nxt = {}
        for prefix, idents in prefixes.items():
            if len(idents) == 1 and prefix not in taken:
                labels[idents[0]] = prefix
            else:
                nxt.update({i: pending[i] for i in idents})
        pending = nxt
        length += 4
        if length > 64:
            raise IndexError_("subject label collision that a full HMAC cannot resolve (crosswalk label equals a hash?)")
    return labels


def _int_or(value: str, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


INDEX_COLUMNS = (
    "subject",
    "session",
    "series",
    "n_files",
    "modality",
    "pixel_cleaning",
    "series_number",
    "series_description",
    "protocol_name",
    "image_type",
    "manufacturer",
    "model",
    "rows",
    "columns",
    "sop_class_uid",
    "study_date",
    "patient_id",
    "issuer",
    "study_uid",
    "series_uid",
    "first_file",
)


def _tsv(rows: list[list], header) -> str:
    return tsv_text(header, rows)


def series_row(s: Series) -> list:
    f = s.fields
    return [
        s.subject,
        s.session,
        s.series,
        len(s.files),
        f.get("Modality", ""),
        s.pixel_cleaning,
        f.get("SeriesNumber", ""),
        f.get("SeriesDescription", ""),
        f.get("ProtocolName", ""),
        f.get("ImageType", ""),
        f.get("Manufacturer", ""),
        f.get("ManufacturerModelName", ""),
        f.get("Rows", ""),
        f.get("Columns", ""),
        f.get("SOPClassUID", ""),
        f.get("StudyDate", ""),
        f.get("PatientID", ""),
        f.get("IssuerOfPatientID", ""),
        f.get("StudyInstanceUID", ""),
        f.get("SeriesInstanceUID", ""),
        s.files[0].path,
    ]


def manifest_path(private_dir: str | os.PathLike, subject: str, session: str, series: str) -> Path:
    """Where the file list of one series is kept (private: it names input paths)."""
    return Path(Layout(os.fspath(private_dir)).index_files(subject=subject, session=session, series=series))


def write_outputs(index: DatasetIndex, private_dir: str | os.PathLike) -> None:
    """Write ``index.tsv``, ``crosswalk.tsv``, ``index/quarantine.tsv``, ``index/subjects.tsv``,
    ``index/paths.tsv`` (every raw relative path) and one manifest per series under
    ``private_dir`` (:class:`neurodeid.layout.Layout`).

    Every file is rewritten only when its content changed, so its mtime tells
    Snakemake exactly which series changed.
    """
    lay = Layout(os.fspath(private_dir))
    write_text_if_changed(lay.private_file("index.tsv"), _tsv([series_row(s) for s in index.series], INDEX_COLUMNS))
    cw_rows = sorted([[pid, issuer, f"sub-{label}"] for (issuer, pid), label in index.subjects.items()], key=lambda r: r[2])
    write_text_if_changed(lay.private_file("crosswalk.tsv"), _tsv(cw_rows, ("patient_id", "issuer", "subject")))
    q_rows = [[e.path, e.status, e.reason] for e in index.quarantined]
    write_text_if_changed(lay.private_file("index/quarantine.tsv"), _tsv(q_rows, ("file", "status", "reason")))
    write_text_if_changed(
        lay.private_file("index/subjects.tsv"),
        _tsv([[f"sub-{s}"] for s in index.subject_labels()], ("participant_id",)),
    )
    write_text_if_changed(lay.private_file("index/paths.tsv"), _tsv([[e.path] for e in index.entries], ("path",)))
    for s in index.series:
        rows = [[str(index.input_dir / e.path), e.size, e.mtime_ns] for e in s.files]
        write_text_if_changed(lay.index_files(**series_ids(s)), _tsv(rows, ("path", "size", "mtime_ns")))


def read_manifest(path: str | os.PathLike) -> list[Path]:
    """The input files of one series, from its manifest."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [Path(row["path"]) for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
