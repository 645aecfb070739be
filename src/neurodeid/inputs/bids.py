"""Input that is already BIDS: index, plan, import and audit needles of a NIfTI dataset.

With ``input_bids=DIR`` the DICOM stages (index, de-identification, conversion) are
replaced by this module; everything after conversion (defacing, QC, morphometry,
release, audit) runs unchanged on what it produces:

- :func:`build_bids_index` walks the dataset (header-only NIfTI reads) and returns a
  :class:`neurodeid.index.DatasetIndex` with one :class:`~neurodeid.index.Series` per
  image, labelled like the DICOM index: keyed subject pseudonyms (or a crosswalk),
  sessions ``1, 2, ...``, series ``s1, s2, ...``;
- the release plan is :func:`neurodeid.plan.plan_bids` (the BIDS name comes from the input
  name; the face rule is the DICOM input's), the release name
  :func:`neurodeid.convert.naming.bids_name`, the date spellings of the needles
  :func:`neurodeid.audit.needles.date_spellings`: one rule each for both inputs;
- :func:`import_series` is the "conversion" of one image: voxel data and affine are
  copied byte for byte, NIfTI header text is replaced, extensions are dropped, the JSON
  sidecar is rebuilt through the allow-list;
- :func:`bids_needles` collects the identifying values of one input image (labels,
  dropped sidecar values, NIfTI text, participants/sessions/scans rows) for the audit.

What is accepted and kept in release names is data: ``data/bids_input_names.tsv``
(datatypes, suffixes, kept entities, with the reason) and
``data/bids_input_participant_values.tsv`` (table values that identify nobody).

Input subject and session labels appear only in private files (``index.tsv``,
``crosswalk.tsv``, quarantine list, manifests' contents); never in a path, a
label, a release name or an imported file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .. import audit
from ..convert.naming import ENTITY_ORDER
from ..fileio import write_text_if_changed
from ..index import (DatasetIndex, FileEntry, IndexError_, Series, assign_subject_labels, load_cache, read_crosswalk,
                    write_outputs)
from ..audit.needles import date_spellings

__all__ = [
    "BidsInputError",
    "NiftiReadError",
    "BidsIndex",
    "BIDS_ISSUER",
    "STATUS_INDEXED",
    "BIDS_ENTITY_ORDER",
    "load_name_rules",
    "parse_bids_name",
    "read_nifti_header",
    "build_bids_index",
    "merged_sidecar",
    "input_labels",
    "bids_needles",
    "write_bids_needles",
]

#: Issuer given to input subject labels in the crosswalk (``patient_id`` = the input label).
BIDS_ISSUER = "bids"

#: Status of the files of an indexed image (the NIfTI and the sidecars that follow it).
STATUS_INDEXED = "bids"

#: Order of entities in a BIDS name (BIDS 1.10 entity table); the target's entities
#: are given in this order.
BIDS_ENTITY_ORDER = ENTITY_ORDER  # the one list (neurodeid.convert.naming)

#: Entities whose value is an index (digits).
INDEX_ENTITIES = frozenset({"run", "echo", "flip", "inv", "chunk", "split"})

#: Entities with a closed vocabulary.
ENTITY_VOCABULARY = {"mt": ("on", "off"), "part": ("mag", "phase", "real", "imag")}

#: Top-level folders that are part of a BIDS dataset but hold no raw images.
NON_RAW_FOLDERS = ("derivatives", "sourcedata", "code", "stimuli", "phenotype")

#: Files that follow an image (same stem, or inherited from a higher level).
SIDECAR_SUFFIXES = (".json", ".bval", ".bvec")

#: NIfTI-1 header text fields replaced on import (see :func:`neurodeid.convert.sanitise_nifti_header`).
NIFTI_TEXT_FIELDS = ("descrip", "aux_file", "intent_name", "db_name")

#: gzip level of imported images (the release copies them as they are).
IMPORT_COMPRESSLEVEL = 6

_LABEL = re.compile(r"[A-Za-z0-9]+\Z")
_COPY_CHUNK = 1 << 22


class BidsInputError(IndexError_):
    """The input BIDS dataset cannot be indexed (the message says why and what to do)."""


class NiftiReadError(ValueError):
    """A NIfTI file cannot be read (header or voxel data); the message names the file and the problem."""


# --------------------------------------------------------------------------- name rules


@dataclass(frozen=True)
class DatatypeRule:
    datatype: str
    modality: str
    entities: tuple[str, ...]
    suffixes: tuple[str, ...]
    reason: str


@lru_cache(maxsize=4)
def load_name_rules(path: str | None = None) -> dict[str, DatatypeRule]:
    """Datatype folder -> :class:`DatatypeRule` from ``data/bids_input_names.tsv`` (or ``path``)."""
    if path is None:
        text = resources.files("neurodeid").joinpath("data/bids_input_names.tsv").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    rules = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", "datatype\t")):
            continue
        parts = line.split("\t")
        if len(parts) < 5 or not parts[4].strip():
            raise ValueError(f"BIDS name rules {path or 'data/bids_input_names.tsv'}: line {line!r} needs "
                             "datatype, modality, entities, suffixes and reason")
        dt, modality, ents, sufs = (p.strip() for p in parts[:4])
        unknown = [e for e in ents.split(",") if e and e not in BIDS_ENTITY_ORDER]
        if unknown:
            raise ValueError(f"BIDS name rules: datatype {dt}: unknown entities {unknown}")
        rules[dt] = DatatypeRule(dt, modality, tuple(e for e in ents.split(",") if e),
                                 tuple(s for s in sufs.split(",") if s), parts[4].strip())
    return rules


@lru_cache(maxsize=4)
def _table_vocabulary(path: str | None = None) -> frozenset[str]:
    if path is None:
        text = resources.files("neurodeid").joinpath("data/bids_input_participant_values.tsv").read_text(
            encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    out = set()
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", "value\t")):
            continue
        out.add(line.split("\t")[0].strip().lower())
    return frozenset(out)


def _split_name(name: str) -> tuple[str, str] | None:
    """(stem, extension) for ``.nii.gz`` / ``.nii`` / one-dot extensions; None without extension."""
    if name.endswith(".nii.gz"):
        return name[: -len(".nii.gz")], ".nii.gz"
    stem, dot, ext = name.rpartition(".")
    return (stem, "." + ext) if dot and stem else None


def _parse_parts(stem: str) -> tuple[list[tuple[str, str]], str]:
    """``k1-v1_k2-v2_suffix`` -> ([(k1, v1), (k2, v2)], suffix); raises ValueError."""
    parts = stem.split("_")
    suffix = parts[-1]
    pairs = []
    for p in parts[:-1]:
        k, sep, v = p.partition("-")
        if not sep or not k or not v:
            raise ValueError(f"part {p!r} is not key-value")
        pairs.append((k, v))
    if not suffix or "-" in suffix:
        raise ValueError(f"no suffix (last part {suffix!r} is not a suffix)")
    return pairs, suffix


def parse_bids_name(name: str, datatype: str, rules: dict[str, DatatypeRule] | None = None) -> tuple[dict, str]:
    """Entities and suffix of an image name in a datatype folder.

    Parameters
    ----------
    name : str
        File name, e.g. ``sub-01_ses-2_task-rest_run-1_bold.nii.gz``.
    datatype : str
        The folder the file is in (``anat``, ``func``, ...).

    Returns
    -------
    (entities, suffix)
        ``entities`` holds every entity of the name (``sub`` and ``ses`` included), in
        :data:`BIDS_ENTITY_ORDER`.

    Raises
    ------
    ValueError
        The name is not ``sub-L[_ses-S](_key-value)*_suffix.nii[.gz]`` with entities and
        suffix allowed for ``datatype`` (the message says which part is wrong).
    """
    rules = rules or load_name_rules()
    rule = rules.get(datatype)
    if rule is None:
        raise ValueError(f"datatype folder {datatype!r} is not one of {sorted(rules)}")
    split = _split_name(name)
    if split is None or split[1] not in (".nii", ".nii.gz"):
        raise ValueError("extension is not .nii or .nii.gz")
    pairs, suffix = _parse_parts(split[0])
    if not pairs or pairs[0][0] != "sub":
        raise ValueError("name does not start with sub-<label>")
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"entity {k!r} given twice")
        if k not in ("sub", "ses") and k not in rule.entities:
            raise ValueError(f"entity {k!r} is not allowed for {datatype} (allowed: {', '.join(rule.entities)})")
        if not _LABEL.match(v):
            raise ValueError(f"entity {k!r} value is not letters and digits only")
        if k in INDEX_ENTITIES and not v.isdigit():
            raise ValueError(f"entity {k!r} value must be a number")
        if k in ENTITY_VOCABULARY and v not in ENTITY_VOCABULARY[k]:
            raise ValueError(f"entity {k!r} value must be one of {ENTITY_VOCABULARY[k]}")
        seen[k] = v
    if "ses" in seen and pairs[1][0] != "ses":
        raise ValueError("ses-<label> must follow sub-<label>")
    if suffix not in rule.suffixes:
        raise ValueError(f"suffix {suffix!r} is not a BIDS {datatype} suffix")
    return {k: seen[k] for k in BIDS_ENTITY_ORDER if k in seen}, suffix


def _kept_entities(entities: dict) -> dict:
    return {k: v for k, v in entities.items() if k not in ("sub", "ses")}


# --------------------------------------------------------------------------- NIfTI header


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _parse_header_block(raw: bytes, name: str):
    """(nibabel header, version, endian) of the first 348/540 bytes; raises NiftiReadError."""
    import nibabel as nib

    if len(raw) < 348:
        raise NiftiReadError(f"{name}: file too short for a NIfTI header ({len(raw)} bytes)")
    for endian in ("<", ">"):
        size = struct.unpack(endian + "i", raw[:4])[0]
        if size in (348, 540):
            break
    else:
        raise NiftiReadError(f"{name}: not NIfTI (sizeof_hdr is not 348 or 540)")
    if size == 540 and len(raw) < 540:
        raise NiftiReadError(f"{name}: file too short for a NIfTI-2 header")
    cls = nib.Nifti1Header if size == 348 else nib.Nifti2Header
    try:
        hdr = cls(raw[:size], endianness=endian, check=False)
        magic = bytes(hdr["magic"]).rstrip(b"\0")
        if magic not in (b"n+1", b"n+2"):
            raise NiftiReadError(f"{name}: NIfTI magic {magic!r} is not single-file n+1/n+2 "
                                 "(a .hdr/.img pair renamed?)")
        shape = hdr.get_data_shape()
        dtype = hdr.get_data_dtype()
        zooms = hdr.get_zooms()
        affine = hdr.get_best_affine()
    except NiftiReadError:
        raise
    except Exception as exc:  # nibabel raises several types on garbage headers
        raise NiftiReadError(f"{name}: NIfTI header cannot be decoded ({type(exc).__name__}: {exc})") from None
    if not shape or any(int(s) < 1 for s in shape):
        raise NiftiReadError(f"{name}: NIfTI header gives an empty image (shape {tuple(shape)})")
    if not all(math.isfinite(float(x)) for x in affine.ravel()):
        raise NiftiReadError(f"{name}: NIfTI affine is not finite")
    vox_offset = int(hdr["vox_offset"])
    if vox_offset < size:
        raise NiftiReadError(f"{name}: vox_offset {vox_offset} points inside the header")
    return hdr, (1 if size == 348 else 2), endian, shape, dtype, zooms, vox_offset


def read_nifti_header(path: str | os.PathLike) -> dict:
    """Header-only read of a ``.nii`` / ``.nii.gz`` file, with a cheap completeness check.

    The voxel data are not decompressed: a ``.nii`` must be at least ``vox_offset +``
    data bytes long; a single-member ``.nii.gz`` stores its uncompressed size (mod 2**32)
    in its last 4 bytes, which must match. Only when it does not (multi-member gzip,
    trailing bytes) is the whole stream decompressed to check.

    Returns
    -------
    dict
        ``nifti_version`` (1 or 2), ``shape`` (voxel axes i, j, k[, t, ...]), ``zooms``
        (mm, and s for a time axis when the header says so), ``dtype``, ``vox_offset``,
        ``nbytes`` (voxel data bytes).

    Raises
    ------
    NiftiReadError
        Not NIfTI, header undecodable, or voxel data truncated.
    """
    path = Path(path)
    name = path.name
    try:
        with _open(path) as fh:
            raw = fh.read(540)
    except (OSError, EOFError, zlib.error) as exc:
        raise NiftiReadError(f"{name}: cannot be read ({type(exc).__name__}: {exc})") from None
    _hdr, version, _endian, shape, dtype, zooms, vox_offset = _parse_header_block(raw, name)
    nbytes = int(math.prod(int(s) for s in shape)) * int(dtype.itemsize)
    need = vox_offset + nbytes
    size = path.stat().st_size
    if name.endswith(".gz"):
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 4))
            isize = struct.unpack("<I", fh.read(4).rjust(4, b"\0"))[0]
        if isize != need % (1 << 32):
            total = _gunzipped_size(path, name)
            if total < need:
                raise NiftiReadError(f"{name}: voxel data truncated ({total - vox_offset} of {nbytes} bytes)")
    elif size < need:
        raise NiftiReadError(f"{name}: voxel data truncated ({max(0, size - vox_offset)} of {nbytes} bytes)")
    return {
        "nifti_version": version,
        "shape": [int(s) for s in shape],
        "zooms": [round(float(z), 6) for z in zooms],
        "dtype": str(dtype),
        "vox_offset": vox_offset,
        "nbytes": nbytes,
    }


def _gunzipped_size(path: Path, name: str) -> int:
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while True:
                block = fh.read(_COPY_CHUNK)
                if not block:
                    break
                total += len(block)
    except (OSError, EOFError, zlib.error) as exc:
        raise NiftiReadError(f"{name}: gzip stream is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    return total


# --------------------------------------------------------------------------- walking


@dataclass
class _Image:
    rel: str
    size: int
    mtime_ns: int
    sub: str
    ses: str | None  # None: no ses level
    datatype: str


@dataclass
class _Meta:
    """A JSON / bval / bvec file that may follow images (same stem or inherited)."""

    rel: str
    size: int
    mtime_ns: int
    depth: int  # path components of its folder
    entities: dict
    suffix: str
    ext: str


class BidsIndex(DatasetIndex):
    """A :class:`~neurodeid.index.DatasetIndex` of a BIDS input.

    Its indexed files have status :data:`STATUS_INDEXED` (not ``"dicom"``), so
    :attr:`quarantined` lists every other file (skipped or quarantined).
    """

    @property
    def quarantined(self) -> list[FileEntry]:
        return [e for e in self.entries if e.status != STATUS_INDEXED]


def _scandir(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise BidsInputError(f"cannot list folder {folder}: {exc.strerror}") from None


def _stat(entry: os.DirEntry) -> tuple[int, int] | None:
    try:
        st = entry.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class _Walker:
    """One pass over the dataset: images, sidecar candidates and everything else (with a reason)."""

    def __init__(self, root: Path, rules: dict[str, DatatypeRule]):
        self.root = root
        self.rules = rules
        self.images: list[_Image] = []
        self.metas: list[_Meta] = []
        self.other: dict[str, FileEntry] = {}  # rel -> skipped / quarantined entry

    def note(self, rel: str, status: str, reason: str, entry: os.DirEntry | None = None) -> None:
        size, mtime = (_stat(entry) or (0, 0)) if entry is not None and not entry.is_dir() else (0, 0)
        self.other[rel] = FileEntry(rel, size, mtime, status, reason)

    def _link_problem(self, entry: os.DirEntry, rel: str) -> bool:
        """Symlinked folders are not followed; broken links are quarantined."""
        if entry.is_symlink():
            if entry.is_dir():
                self.note(rel + "/", "skipped", "symbolic link to a folder: not followed")
                return True
            if not entry.is_file():
                self.note(rel, "quarantined", "broken symbolic link (content not present; for a DataLad "
                          "dataset run `datalad get` first)")
                return True
        return False

    def walk(self) -> None:
        entries = _scandir(self.root)
        names = {e.name for e in entries}
        if "dataset_description.json" not in names and not any(n.startswith("sub-") for n in names):
            raise BidsInputError(f"input_bids {str(self.root)!r} does not look like a BIDS dataset (no "
                                 "dataset_description.json and no sub-* folder); give the dataset's root folder")
        for e in entries:
            rel = e.name
            if e.name.startswith("."):
                self.note(rel + ("/" if e.is_dir() else ""), "skipped", "hidden file or folder (dot-name)", e)
            elif self._link_problem(e, rel):
                continue
            elif e.is_dir():
                if e.name in NON_RAW_FOLDERS:
                    self.note(rel + "/", "skipped", f"BIDS {e.name} folder: no raw images (not read)")
                elif e.name.startswith("sub-"):
                    self.subject(Path(e.path), rel, e.name[4:])
                else:
                    self.note(rel + "/", "skipped", "top-level folder that is not a BIDS subject folder (not read)")
            else:
                self.meta_or_skip(e, rel, 0, "top-level file: not an image (not released)")

    def meta_or_skip(self, e: os.DirEntry, rel: str, depth: int, reason: str) -> None:
        """A file above the datatype level: an inheritable sidecar candidate, or skipped."""
        split = _split_name(e.name)
        if split and split[1].lower() in (".nii", ".nii.gz"):
            status = "skipped" if depth == 0 else "quarantined"
            self.note(rel, status, "NIfTI outside a datatype folder (anat, func, ...)", e)
            return
        if split and split[1] in SIDECAR_SUFFIXES:
            try:
                pairs, suffix = _parse_parts(split[0])
            except ValueError:
                pairs, suffix = None, ""
            st = _stat(e)
            if pairs is not None and st is not None:
                self.metas.append(_Meta(rel, st[0], st[1], depth, dict(pairs), suffix, split[1]))
                self.other[rel] = FileEntry(rel, st[0], st[1], "skipped", reason + " (metadata for no indexed image)")
                return
        self.note(rel, "skipped", reason, e)

    def subject(self, folder: Path, rel: str, sub: str) -> None:
        entries = _scandir(folder)
        has_sessions = any(e.is_dir() and e.name.startswith("ses-") for e in entries)
        for e in entries:
            r = f"{rel}/{e.name}"
            if e.name.startswith("."):
                self.note(r + ("/" if e.is_dir() else ""), "skipped", "hidden file or folder (dot-name)", e)
            elif self._link_problem(e, r):
                continue
            elif e.is_dir() and e.name.startswith("ses-"):
                self.session(Path(e.path), r, sub, e.name[4:])
            elif e.is_dir() and e.name in self.rules:
                self.datatype(Path(e.path), r, sub, None, e.name, outside_session=has_sessions)
            elif e.is_dir():
                self.note(r + "/", "skipped", f"folder {e.name!r} is not a datatype neurodeid handles "
                          f"({', '.join(self.rules)}): not read")
            else:
                self.meta_or_skip(e, r, 1, "subject-level file: not released")

    def session(self, folder: Path, rel: str, sub: str, ses: str) -> None:
        for e in _scandir(folder):
            r = f"{rel}/{e.name}"
            if e.name.startswith("."):
                self.note(r + ("/" if e.is_dir() else ""), "skipped", "hidden file or folder (dot-name)", e)
            elif self._link_problem(e, r):
                continue
            elif e.is_dir() and e.name in self.rules:
                self.datatype(Path(e.path), r, sub, ses, e.name)
            elif e.is_dir():
                self.note(r + "/", "skipped", f"folder {e.name!r} is not a datatype neurodeid handles "
                          f"({', '.join(self.rules)}): not read")
            else:
                self.meta_or_skip(e, r, 2, "session-level file: not released")

    def datatype(self, folder: Path, rel: str, sub: str, ses: str | None, datatype: str,
                 outside_session: bool = False) -> None:
        depth = rel.count("/") + 1
        for e in _scandir(folder):
            r = f"{rel}/{e.name}"
            if e.name.startswith("."):
                self.note(r + ("/" if e.is_dir() else ""), "skipped", "hidden file or folder (dot-name)", e)
                continue
            if self._link_problem(e, r):
                continue
            if e.is_dir():
                self.note(r + "/", "skipped", "folder inside a datatype folder: not read")
                continue
            split = _split_name(e.name)
            ext = split[1] if split else ""
            st = _stat(e)
            if st is None:
                self.note(r, "quarantined", "cannot stat file")
                continue
            if ext.lower() in (".nii", ".nii.gz"):
                if outside_session:
                    self.other[r] = FileEntry(r, st[0], st[1], "quarantined",
                                              "image outside a session folder although the subject has ses-* folders")
                elif ext != ext.lower():
                    self.other[r] = FileEntry(r, st[0], st[1], "quarantined", "extension must be lowercase .nii or .nii.gz")
                else:
                    self.images.append(_Image(r, st[0], st[1], sub, ses, datatype))
            elif ext in SIDECAR_SUFFIXES:
                try:
                    pairs, suffix = _parse_parts(split[0])
                except ValueError:
                    self.other[r] = FileEntry(r, st[0], st[1], "skipped", "sidecar name is not BIDS: not used")
                    continue
                self.metas.append(_Meta(r, st[0], st[1], depth, dict(pairs), suffix, ext))
                self.other[r] = FileEntry(r, st[0], st[1], "skipped", "sidecar of no indexed image: not released")
            else:
                self.other[r] = FileEntry(r, st[0], st[1], "skipped", "not an image or its sidecar (events, "
                                          "physiology and other tables are not released from a BIDS input)")


# --------------------------------------------------------------------------- indexing

#: Format of ``index_cache_bids.json`` (header fields per image).
BIDS_CACHE_VERSION = 1

_DATE_IN_TEXT = re.compile(
    r"(?<!\d)((?:19|20)\d\d)([-/.]?)(0[1-9]|1[0-2])\2(0[1-9]|[12]\d|3[01])(?!\d)"
    r"|(?<!\d)(0[1-9]|[12]\d|3[01])([./])(0[1-9]|1[0-2])\6((?:19|20)\d\d)(?!\d)"
)


def _natural_key(text: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t)


def _label_problem(entities: dict, sub: str, ses: str | None) -> str:
    """Why a name's kept entity values could identify (empty when they cannot)."""
    for k, v in _kept_entities(entities).items():
        if _DATE_IN_TEXT.search(v):
            return f"entity {k!r} value looks like a date"
        for what, label in (("subject", sub), ("session", ses or "")):
            if label and audit._keep_needle(label, 3) and label.lower() in v.lower():
                return f"entity {k!r} value repeats the input {what} label"
    return ""


def _applies(meta: _Meta, img_entities: dict, suffix: str, img_rel: str) -> bool:
    """BIDS inheritance: same suffix, entities a subset of the image's, folder an ancestor."""
    if meta.suffix != suffix:
        return False
    folder = meta.rel.rpartition("/")[0]
    if folder and not (img_rel.startswith(folder + "/")):
        return False
    return all(img_entities.get(k) == v for k, v in meta.entities.items())


def build_bids_index(
    bids_dir: str | os.PathLike,
    private_dir: str | os.PathLike,
    key: bytes,
    crosswalk: str | os.PathLike | None = None,
    write: bool = True,
) -> BidsIndex:
    """Index a BIDS dataset: one series per NIfTI image, labelled like the DICOM index.

    Images are ``sub-<L>/[ses-<S>/]<datatype>/<name>.nii[.gz]`` for the datatypes of
    ``data/bids_input_names.tsv``. Everything else is listed with a reason: folders
    that hold no raw images (``derivatives``, ``sourcedata``, ``code``, dot-folders,
    unhandled datatypes) as one entry each (not read), other files as ``skipped``,
    images that cannot be used as ``quarantined`` (name not BIDS or inconsistent with
    its folders, entity value shaped like a date or repeating an input label, NIfTI
    unreadable or truncated, a ``.nii`` beside a ``.nii.gz`` of the same name).

    Labels: ``subject`` is the keyed pseudonym of (``"bids"``, input label) through
    :func:`neurodeid.index.assign_subject_labels` (a crosswalk's ``patient_id`` is the
    input label without ``sub-``); ``session`` is ``1, 2, ...`` in natural sort order of
    the subject's input session labels (``1`` without a ses level); ``series`` is
    ``s1, s2, ...`` in sorted order of the images' input paths within the session.
    Only sessions and images that are indexed are numbered.

    Series ``files``: the NIfTI first, then every JSON sidecar that applies to it by
    the BIDS inheritance principle (least specific first), then the most specific
    ``.bval`` / ``.bvec``. NIfTI headers are read header-only and cached in
    ``private_dir/index_cache_bids.json`` by (path, size, mtime).

    Parameters
    ----------
    bids_dir : path
        Root of the input dataset (read only; nothing in it is modified).
    private_dir : path
        Where the private index files go (as :func:`neurodeid.index.write_outputs`).
    key : bytes
        The secret key.
    crosswalk : path, optional
        A crosswalk TSV (``patient_id`` = input subject label, ``label``).
    write : bool
        Write the private files and the cache (each only when its content changed);
        False only reads.

    Raises
    ------
    BidsInputError
        ``bids_dir`` is not a folder or not a BIDS dataset; a folder cannot be listed.
    """
    root = Path(bids_dir).resolve()
    if not root.is_dir():
        raise BidsInputError(f"input_bids {str(bids_dir)!r} is not a folder; set `input_bids` to a BIDS dataset")
    private_dir = Path(private_dir)
    rules = load_name_rules()
    walker = _Walker(root, rules)
    walker.walk()
    cache_path = private_dir / "index_cache_bids.json"
    cache = load_cache(cache_path, root, BIDS_CACHE_VERSION)
    new_cache: dict[str, list] = {}
    entries: dict[str, FileEntry] = dict(walker.other)

    # images: name, folders, header
    good: list[tuple[_Image, dict, str, dict]] = []  # image, entities, suffix, header
    by_bids_name: dict[str, str] = {}
    for im in sorted(walker.images, key=lambda i: (i.rel.endswith(".nii"), i.rel)):  # .nii.gz first
        name = im.rel.rpartition("/")[2]
        try:
            ents, suffix = parse_bids_name(name, im.datatype, rules)
            if not _LABEL.match(im.sub):
                raise ValueError("subject folder label is not letters and digits only")
            if ents["sub"] != im.sub:
                raise ValueError("sub entity does not match the subject folder")
            if im.ses is not None and not _LABEL.match(im.ses):
                raise ValueError("session folder label is not letters and digits only")
            if ents.get("ses") != im.ses:
                raise ValueError("ses entity does not match the session folder" if im.ses is not None
                                 else "ses entity given but the image is not in a session folder")
            why = _label_problem(ents, im.sub, im.ses)
            if why:
                raise ValueError(why)
        except ValueError as exc:
            entries[im.rel] = FileEntry(im.rel, im.size, im.mtime_ns, "quarantined", f"name is not usable BIDS: {exc}")
            continue
        stem = im.rel[: -len(".nii.gz")] if im.rel.endswith(".nii.gz") else im.rel[: -len(".nii")]
        if stem in by_bids_name:
            entries[im.rel] = FileEntry(im.rel, im.size, im.mtime_ns, "quarantined",
                                        f"same BIDS name as {by_bids_name[stem]} (that one is used)")
            continue
        hit = cache.get(im.rel)
        if hit is not None and hit[0] == im.size and hit[1] == im.mtime_ns:
            record = hit
        else:
            try:
                record = [im.size, im.mtime_ns, "", read_nifti_header(root / im.rel)]
            except NiftiReadError as exc:
                record = [im.size, im.mtime_ns, str(exc), {}]
            except OSError as exc:
                record = [im.size, im.mtime_ns, f"{name}: cannot read file: {exc.strerror}", {}]
        new_cache[im.rel] = record
        if record[2]:
            entries[im.rel] = FileEntry(im.rel, im.size, im.mtime_ns, "quarantined", f"NIfTI unreadable: {record[2]}")
            continue
        by_bids_name[stem] = im.rel
        good.append((im, ents, suffix, record[3]))

    # sidecars that follow each image
    metas_by_key: dict[tuple[str, str, str], list[_Meta]] = {}  # (folder, suffix, ext) -> files
    for m in walker.metas:
        metas_by_key.setdefault((m.rel.rpartition("/")[0], m.suffix, m.ext), []).append(m)

    def follow(im: _Image, ents: dict, suffix: str) -> list[_Meta]:
        parts = im.rel.split("/")[:-1]
        folders = [""] + ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        out: list[_Meta] = []
        for ext in SIDECAR_SUFFIXES:
            cands = [m for f in folders for m in metas_by_key.get((f, suffix, ext), ())
                     if _applies(m, ents, suffix, im.rel)]
            cands.sort(key=lambda m: (m.depth, len(m.entities), m.rel))
            if ext == ".json":
                out += cands
            elif cands:
                out.append(cands[-1])  # the most specific bval/bvec
        return out

    subjects = assign_subject_labels(key, [(BIDS_ISSUER, im.sub) for im, *_ in good],
                                     read_crosswalk(crosswalk) if crosswalk else None)
    sessions: dict[str, set] = {}
    for im, *_ in good:
        sessions.setdefault(im.sub, set()).add(im.ses or "")
    ses_number = {(sub, s): str(n) for sub, labels in sessions.items()
                  for n, s in enumerate(sorted(labels, key=_natural_key), start=1)}
    grouped: dict[tuple[str, str], list] = {}
    for item in good:
        im = item[0]
        grouped.setdefault((subjects[(BIDS_ISSUER, im.sub)], ses_number[(im.sub, im.ses or "")]), []).append(item)
    rule_modality = {dt: r.modality for dt, r in rules.items()}
    series: list[Series] = []
    for (sub_label, ses_label) in sorted(grouped, key=lambda k: (k[0], int(k[1]))):
        items = sorted(grouped[(sub_label, ses_label)], key=lambda it: it[0].rel)
        for n, (im, ents, suffix, hdr) in enumerate(items, start=1):
            img_entry = FileEntry(im.rel, im.size, im.mtime_ns, STATUS_INDEXED, "", dict(hdr))
            entries[im.rel] = img_entry
            files = [img_entry]
            for m in follow(im, ents, suffix):
                e = entries.get(m.rel)
                if e is None or e.status != STATUS_INDEXED:
                    e = FileEntry(m.rel, m.size, m.mtime_ns, STATUS_INDEXED, "")
                    entries[m.rel] = e
                files.append(e)
            shape = hdr["shape"]
            fields = {
                "Modality": rule_modality[im.datatype],
                "BidsDatatype": im.datatype,
                "BidsSuffix": suffix,
                "BidsEntities": _kept_entities(ents),
                "BidsPath": im.rel,
                "BidsInputSubject": im.sub,
                "BidsInputSession": im.ses or "",
                "PatientID": im.sub,
                "IssuerOfPatientID": BIDS_ISSUER,
                "SeriesDescription": "",
                "ProtocolName": "",
                "ImageType": "",
                "SeriesNumber": "",
                "Columns": str(shape[0]),
                "Rows": str(shape[1]) if len(shape) > 1 else "1",
                "shape": list(shape),
                "n_slices": shape[2] if len(shape) > 2 else 1,
                "n_volumes": int(math.prod(shape[3:])) if len(shape) > 3 else 1,
                "zooms": hdr["zooms"],
                "dtype": hdr["dtype"],
                "nifti_version": hdr["nifti_version"],
            }
            series.append(Series(sub_label, ses_label, f"s{n}", fields, files, ""))
    index = BidsIndex(root, series, [entries[k] for k in sorted(entries)], subjects)
    if write:
        if new_cache != cache:
            payload = {"version": BIDS_CACHE_VERSION, "input_dir": str(root), "entries": new_cache}
            write_text_if_changed(cache_path, json.dumps(payload, separators=(",", ":"), sort_keys=True))
        write_outputs(index, private_dir)
    return index


# --------------------------------------------------------------------------- one image's files


def _image_info(image: Path) -> tuple[str, dict, str]:
    """(datatype, kept entities, suffix) of an indexed image from its path; raises ValueError."""
    datatype = image.parent.name
    ents, suffix = parse_bids_name(image.name, datatype)
    return datatype, _kept_entities(ents), suffix


def _sort_files(files: list[Path]) -> tuple[list[Path], list[Path], Path | None, Path | None]:
    """(images, JSONs least specific first, bval, bvec) of a series' files."""
    images = [f for f in files if f.name.endswith((".nii", ".nii.gz"))]

    def specificity(p: Path) -> tuple:
        stem = _split_name(p.name)[0]
        return (len(p.parts), stem.count("_"), str(p))

    jsons = sorted((f for f in files if f.suffix == ".json"), key=specificity)
    bvals = sorted((f for f in files if f.suffix == ".bval"), key=specificity)
    bvecs = sorted((f for f in files if f.suffix == ".bvec"), key=specificity)
    return images, jsons, (bvals[-1] if bvals else None), (bvecs[-1] if bvecs else None)


def merged_sidecar(json_files: list[Path]) -> dict:
    """The image's metadata by the BIDS inheritance principle (later files override earlier).

    Raises
    ------
    NiftiReadError
        A JSON file is not a JSON object (message names the file).
    """
    merged: dict = {}
    for p in json_files:
        try:
            data = json.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NiftiReadError(f"sidecar {p}: not readable JSON ({type(exc).__name__}: {exc})") from None
        if not isinstance(data, dict):
            raise NiftiReadError(f"sidecar {p}: not a JSON object")
        merged.update(data)
    return merged


# --------------------------------------------------------------------------- needles


def _date_variants(text: str) -> list[str]:
    """Every date inside ``text`` in every spelling the audit knows for a DICOM date
    (:func:`neurodeid.audit.needles.date_spellings`: one list for both inputs)."""
    out = []
    for m in _DATE_IN_TEXT.finditer(text):
        if m.group(1):
            y, mo, d = m.group(1), m.group(3), m.group(4)
        else:
            d, mo, y = m.group(5), m.group(7), m.group(8)
        out += date_spellings(f"{y}{mo}{d}")
    return out


def _text_needles(text: str, source: str) -> list[audit.Needle]:
    text = text.strip().rstrip("\x00").strip()
    if not text:
        return []
    out = [audit.Needle(text, source)]
    if "^" in text:  # a DICOM person name copied into a sidecar: its components too
        out += [audit.Needle(w, source) for w in re.split(r"[\^=]+", text) if w.strip()]
    out += [audit.Needle(v, source + " (date)") for v in _date_variants(text)]
    return out


def _value_needles(value, source: str) -> list[audit.Needle]:
    if isinstance(value, str):
        return _text_needles(value, source)
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int):
        return [audit.Needle(str(value), source)]  # only long digit runs survive _keep_needle
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _value_needles(v, source)]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _value_needles(v, f"{source}.{k}")]
    return []


def _nifti_text_needles(path: Path, min_length: int) -> list[audit.Needle]:
    """Needles of a NIfTI's header text fields and extensions (header and extensions only)."""
    try:
        with _open(path) as fh:
            head = fh.read(540)
            hdr, version, endian, *_rest, vox_offset = _parse_header_block(head, path.name)
            size = 348 if version == 1 else 540
            ext_block = head[size:vox_offset] if vox_offset <= len(head) else head[size:] + fh.read(vox_offset - len(head))
    except (NiftiReadError, OSError, EOFError, zlib.error):
        return []  # an unreadable image is not imported: nothing of it can be released
    out = []
    for field in NIFTI_TEXT_FIELDS + ("data_type",):
        try:
            raw = bytes(hdr[field]).split(b"\0", 1)[0]
        except (KeyError, ValueError):  # NIfTI-2 has no db_name / data_type
            continue
        out += _text_needles(raw.decode("latin-1"), f"NIfTI {field}")
    if len(ext_block) >= 4 and ext_block[0] != 0:
        pos = 4
        while pos + 8 <= len(ext_block):
            esize, ecode = struct.unpack(endian + "ii", ext_block[pos:pos + 8])
            if esize < 8 or pos + esize > len(ext_block):
                content, esize = ext_block[pos + 8:], len(ext_block) - pos
            else:
                content = ext_block[pos + 8:pos + esize]
            out += _extension_needles(content, ecode, min_length)
            pos += esize
    return out


def _extension_needles(content: bytes, ecode: int, min_length: int) -> list[audit.Needle]:
    source = f"NIfTI extension (ecode {ecode})"
    if ecode == 2:  # an embedded DICOM header
        try:
            import pydicom

            ds = pydicom.dcmread(io.BytesIO(content), force=True)
            found = audit.dataset_needles(ds, (), min_length=min_length)
            if found:
                return [audit.Needle(n.text, f"{source} {n.source}") for n in found]
        except Exception:  # noqa: BLE001 - not parseable: fall back to its text runs
            pass
    out = []
    for run in re.findall(rb"[\x20-\x7e\xa0-\xff]{4,}", content):
        out += _text_needles(run.decode("latin-1"), source)
    return out


def _read_tsv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _row_needles(row: dict, skip_columns: tuple[str, ...], source: str) -> list[audit.Needle]:
    """Needles of one table row: values that are not numbers and not vocabulary."""
    vocab = _table_vocabulary()
    out = []
    for col, value in row.items():
        if col is None or col in skip_columns or not isinstance(value, str):
            continue
        v = value.strip()
        if not v or v.lower() in vocab or audit._is_number(v):
            continue
        src = f"{source} column {col}"
        out += _text_needles(v, src)
        if "name" in col.lower():  # a person's name: its words too
            out += [audit.Needle(w, src) for w in re.split(r"[\s,;^]+", v) if w]
    return out


def input_labels(image: str | os.PathLike, bids_dir: str | os.PathLike) -> tuple[str, str]:
    """(subject, session) input labels of an image from its path (session ``""`` without a ses level).

    So that a job can collect needles from its manifest alone, without the input labels
    on its command line (command lines end up in logs).
    """
    root = Path(bids_dir).resolve()
    p = Path(image)
    rel = (p if not p.is_absolute() else Path(os.path.abspath(p)).relative_to(root)).parts
    if len(rel) < 3 or not rel[0].startswith("sub-"):
        raise BidsInputError(f"{image}: not a sub-<label>/[ses-<label>/]<datatype>/ image of {root}")
    ses = rel[1][4:] if len(rel) >= 4 and rel[1].startswith("ses-") else ""
    return rel[0][4:], ses


def bids_needles(files, subject_input_label: str | None, session_input_label: str | None, bids_dir,
                 min_length: int = 2, allowlist: dict | None = None) -> set[audit.Needle]:
    """The identifying values of one input image, for the release audit (private).

    Collected:

    - the input subject and session labels (and, for a session label that is a date,
      its other spellings);
    - every value of the image's raw sidecar(s) that the allow-list drops, at any depth
      (DICOM-style person names also split on ``^``), with the other spellings of every
      date found inside a value;
    - the NIfTI text fields (``descrip``, ``aux_file``, ``intent_name``, ``db_name``) and
      the text of header extensions (an embedded DICOM header: its needles as for raw
      DICOM);
    - the subject's row of ``participants.tsv``, the session's row of
      ``sub-<L>_sessions.tsv`` and the image's row of the ``_scans.tsv`` (``acq_time``
      ...): every value that is not a number and not in
      ``data/bids_input_participant_values.tsv`` (words of ``*name*`` columns too).

    A needle that also occurs in what the import keeps (allowed sidecar values, the
    kept entity values, suffix and datatype of the release name) is dropped, as
    :func:`neurodeid.audit.dataset_needles` does for kept attributes; the input labels
    are always kept. Needle ``source`` names where a value came from, never the value.

    Parameters
    ----------
    files : list of path
        The series' files (absolute, or relative to ``bids_dir``).
    subject_input_label, session_input_label : str or None
        Input labels without ``sub-`` / ``ses-`` (session ``""``: no ses level). ``None``:
        taken from the image's path (:func:`input_labels`).
    bids_dir : path
        The input dataset root.
    min_length : int
        Shortest needle kept (see :func:`neurodeid.audit._keep_needle`); the audit applies
        its own, usually higher, bound when it loads the needles.
    """
    from ..convert import sanitise_sidecar

    root = Path(bids_dir).resolve()
    paths = [Path(f) if Path(f).is_absolute() else root / f for f in files]
    images, jsons, _bval, _bvec = _sort_files(paths)
    if subject_input_label is None or session_input_label is None:
        if len(images) != 1:
            raise BidsInputError(f"bids_needles: input labels not given and {len(images)} images among the files")
        sub_from_path, ses_from_path = input_labels(images[0], root)
        subject_input_label = sub_from_path if subject_input_label is None else subject_input_label
        session_input_label = ses_from_path if session_input_label is None else session_input_label
    found: list[audit.Needle] = []
    kept_text: list[str] = []
    raw: dict = {}
    try:
        raw = merged_sidecar(jsons)
    except NiftiReadError:
        # not importable either; still collect what each readable file holds
        for p in jsons:
            try:
                found += _value_needles(json.loads(p.read_text(encoding="utf-8")), "sidecar")
            except (OSError, ValueError):
                pass
    clean, dropped = sanitise_sidecar(raw, allowlist) if raw else ({}, [])
    for k in dropped:
        found += _value_needles(raw[k], f"sidecar {k}")
    kept_text += [json.dumps(v) if not isinstance(v, str) else v for v in clean.values()]
    ses = session_input_label or ""
    for img in images:
        found += _nifti_text_needles(img, min_length)
        try:
            datatype, entities, suffix = _image_info(img)
            kept_text += [datatype, suffix, *entities.values()]
        except ValueError:
            pass
    sub_dir = root / f"sub-{subject_input_label}"
    for row in _read_tsv(root / "participants.tsv"):
        if row.get("participant_id", "").strip() in (f"sub-{subject_input_label}", subject_input_label):
            found += _row_needles(row, ("participant_id",), "participants.tsv")
    if ses:
        for row in _read_tsv(sub_dir / f"sub-{subject_input_label}_sessions.tsv"):
            if row.get("session_id", "").strip() in (f"ses-{ses}", ses):
                found += _row_needles(row, ("session_id",), "sessions.tsv")
    scans_dir = sub_dir / f"ses-{ses}" if ses else sub_dir
    scans = scans_dir / (f"sub-{subject_input_label}" + (f"_ses-{ses}" if ses else "") + "_scans.tsv")
    targets = set()
    for img in images:
        try:
            targets.add(Path(os.path.abspath(img)).relative_to(Path(os.path.abspath(scans_dir))).as_posix())
        except ValueError:
            pass
    for row in _read_tsv(scans):
        if row.get("filename", "").strip() in targets:
            found += _row_needles(row, ("filename",), "scans.tsv")
    # missing-value markers ("None", "n/a": dcm2niix writes "None" for absent fields) identify nobody
    vocab = _table_vocabulary()
    found = [n for n in found if audit._keep_needle(n.text, min_length) and n.text.strip().lower() not in vocab]
    if found and kept_text:
        expected = {n for _, n in audit.Matcher(found).find("\x00".join(kept_text))}
        found = [n for n in found if n not in expected]
    labels = [audit.Needle(subject_input_label, "input subject label")]
    if ses:
        labels += _text_needles(ses, "input session label")
    found += [n for n in labels if audit._keep_needle(n.text, min_length)]
    return set(found)


def write_bids_needles(out, files, subject_input_label: str | None, session_input_label: str | None, bids_dir,
                       min_length: int = 2, allowlist: dict | None = None) -> int:
    """:func:`bids_needles` saved with :func:`neurodeid.audit.save_needles` (private); returns how many."""
    needles = bids_needles(files, subject_input_label, session_input_label, bids_dir, min_length, allowlist)
    audit.save_needles(out, needles)
    return len(needles)
