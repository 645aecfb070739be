"""The DICOM input: a raw DICOM tree indexed by a header-only scan, cached, grouped into series
with pseudonyms (:class:`neurodeid.index.DatasetIndex`).

The index is the first stage and the only one that looks at the raw tree as a
whole. It reads headers only (never pixel data), remembers every file it read
in a cache keyed by (relative path, size, mtime) so that rescanning an
unchanged tree costs one ``stat`` per file, groups files into
subject → session → series, and gives each a label that carries no identifier:

- subject: ``HMAC(key, issuer + PatientID)`` shortened to 8 hex digits and
  lengthened on collision, or a label from a user crosswalk TSV;
- session: ``1, 2, ...`` in study date order within the subject;
- series: ``s<SeriesNumber:03d>`` within the session (``s003b`` for a second
  series with the same number).

Files that are not DICOM, DICOMDIRs and files that cannot be read are listed
with a reason and do not stop the scan.
"""

from __future__ import annotations

import json
import os
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial

from .. import keys
from ..dicomfast import raw_elements
from ..fileio import write_text_atomic
from ..index import (DatasetIndex, FileEntry, IndexError_, Series, _int_or, assign_subject_labels, load_cache,
                     read_crosswalk, subject_identity, write_outputs)
from ..layout import Layout

#: Bump when the cached fields or their meaning change: the cache is then rebuilt.
CACHE_VERSION = 2


#: Header attributes read by the index (keywords). Everything else is left unread.
HEADER_KEYWORDS = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "ProtocolName",
    "Modality",
    "ImageType",
    "BurnedInAnnotation",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "Manufacturer",
    "ManufacturerModelName",
)


#: The same attributes as tags, and the last of them: a header read stops at the first
#: top-level element after it (the large private blocks, overlays and pixel data that
#: follow are never parsed).
HEADER_TAGS = tuple(tag_for_keyword(kw) for kw in HEADER_KEYWORDS)


LAST_HEADER_TAG = max(HEADER_TAGS)


#: An uncached scan of at least this many files reads headers in a process pool.
PARALLEL_MIN_FILES = 256


_FORK = multiprocessing.get_context("fork")


#: SOP class of a DICOMDIR (Media Storage Directory Storage).
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


#: SOP classes that are secondary captures (pixel cleaning always needed).
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


#: Modalities whose images are checked for burned-in text by default.
DEFAULT_PIXEL_CLEANING_MODALITIES = ("US", "SC", "OT", "XC", "ES", "GM", "DX", "CR")


#: SOP classes of objects that hold no patient (PS3.3: no Patient module): skipped with
#: their name, never quarantined as damaged (they have no series or study to file).
NO_PATIENT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.38.1": "a hanging protocol",
    "1.2.840.10008.5.1.4.39.1": "a colour palette",
    "1.2.840.10008.5.1.4.43.1": "a generic implant template",
    "1.2.840.10008.5.1.4.44.1": "an implant assembly template",
    "1.2.840.10008.5.1.4.45.1": "an implant template group",
}


class NotDicomError(ValueError):
    """A file is not a DICOM file (reason in the message)."""


class NothingToReleaseError(NotDicomError):
    """A DICOM object with nothing to release: a DICOMDIR (its images are indexed on their
    own) or an object that holds no patient (:data:`NO_PATIENT_SOP_CLASSES`). Skipped, never
    quarantined."""


def _value_to_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def read_header(path: str | os.PathLike) -> dict:
    """Read the index fields of one file, header only.

    Returns a dict of keyword → text (multi-values joined by backslash), plus
    ``_preamble`` (``"yes"``/``"no"``) and ``_transfer_syntax``.

    Raises
    ------
    NotDicomError
        The file is not DICOM, is a DICOMDIR, or lacks the UIDs that identify an
        image (the message says which).
    """
    path = os.fspath(path)
    fast = _fast_fields(path)
    return fast if fast is not None else _pydicom_fields(path)


def _pydicom_fields(path: str) -> dict:
    """:func:`read_header` by pydicom (every file the fast reader is unsure of)."""
    with open(path, "rb") as fh:  # an OSError here is the caller's (cannot read the file)
        head = fh.read(132)
        preamble = len(head) == 132 and head[128:132] == b"DICM"
        if not head:
            raise NotDicomError("empty file (0 bytes)")
        try:
            ds = _read_index_elements(fh, preamble, stop_when=_past_header)
            if not all(t in ds for t in _REQUIRED_TAGS):  # elements out of order?
                ds = _read_index_elements(fh, preamble, stop_when=_at_pixels)
        except InvalidDicomError as exc:
            raise NotDicomError(f"not DICOM ({exc})") from None
        except Exception as exc:  # pydicom raises many types on garbage input
            kind = "not DICOM" if not preamble else "unreadable DICOM header"
            raise NotDicomError(f"{kind} ({type(exc).__name__}: {exc})") from None
    fields: dict[str, str] = {}
    try:  # values are decoded lazily: a damaged element fails here, not in dcmread
        meta = getattr(ds, "file_meta", None)
        media_class = str(getattr(meta, "MediaStorageSOPClassUID", "") or "") if meta else ""
        transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta else ""
        for kw in HEADER_KEYWORDS:
            fields[kw] = _value_to_text(ds.get(kw))
    except Exception as exc:
        raise NotDicomError(f"header cannot be decoded ({type(exc).__name__}: {exc})") from None
    if media_class == DICOMDIR_SOP_CLASS:
        raise NothingToReleaseError("DICOMDIR (a media directory, not an image; its images are indexed on their own)")
    sop_class = fields["SOPClassUID"] or media_class
    if sop_class in NO_PATIENT_SOP_CLASSES:
        raise NothingToReleaseError(f"{NO_PATIENT_SOP_CLASSES[sop_class]} (SOP class {sop_class}): it holds no "
                                    "patient and nothing to release")
    for required in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        if not fields[required]:
            what = "not DICOM (no preamble and no" if not preamble else "unusable DICOM (no"
            raise NotDicomError(f"{what} {required})")
    fields["_preamble"] = "yes" if preamble else "no"
    fields["_transfer_syntax"] = transfer_syntax
    return fields


_FAST_WANTED = dict(zip(HEADER_TAGS, HEADER_KEYWORDS))


_FAST_US = {tag_for_keyword("Rows"), tag_for_keyword("Columns")}


_FAST_IS = {tag_for_keyword(kw) for kw in ("SeriesNumber", "InstanceNumber", "NumberOfFrames")}


_FAST_READ_BYTES = 1 << 16


_FAST_TEXT_BYTES = bytes(range(32, 127)) + b"\0"


_FAST_SPLIT_STRIP = {t for t in HEADER_TAGS if dictionary_VR(t) in ("SH", "LO")}


_FAST_SPLIT_KEEP = {t for t in HEADER_TAGS if dictionary_VR(t) in ("CS", "UI", "DA", "TM")}


def _fast_fields(path: str) -> dict | None:
    """The fields of :func:`read_header` straight from the file's bytes
    (:func:`neurodeid.dicomfast.raw_elements`), or None whenever pydicom's reading could
    differ: no preamble, an unusual transfer syntax or encoding, a value with a byte
    outside printable ASCII (its decoding depends on the character set), an integer
    string that is not an integer, a DICOMDIR, or a missing UID (pydicom then gives the
    message)."""
    head = raw_elements(path, _FAST_WANTED, LAST_HEADER_TAG + 1, _FAST_READ_BYTES)
    if head is None or head.media_sop_class in (DICOMDIR_SOP_CLASS, *NO_PATIENT_SOP_CLASSES):
        return None
    fields: dict[str, str] = {}
    for tag, kw in _FAST_WANTED.items():
        raw = head.values.get(tag)
        if not raw:
            fields[kw] = ""
        elif tag in _FAST_US:
            if len(raw) != 2:
                return None
            fields[kw] = str(int.from_bytes(raw, "little" if head.little else "big"))
        else:
            if raw.translate(None, _FAST_TEXT_BYTES):  # a byte that is not printable ASCII
                return None
            parts = raw.decode("ascii").rstrip("\0 ").split("\\")
            if tag in _FAST_IS and not all(p.strip().lstrip("+-").isdigit() for p in parts):
                return None
            if len(parts) == 1:
                fields[kw] = parts[0].strip()
            elif tag in _FAST_SPLIT_STRIP:  # pydicom strips each value of SH and LO only
                fields[kw] = "\\".join(p.rstrip("\0 ") for p in parts)
            elif tag in _FAST_SPLIT_KEEP:
                fields[kw] = "\\".join(parts)
            else:  # several person names or integers in a one-value attribute
                return None
    if not all(fields[kw] for kw in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")) \
            or fields["SOPClassUID"] in NO_PATIENT_SOP_CLASSES:
        return None
    fields["_preamble"] = "yes"
    fields["_transfer_syntax"] = head.transfer_syntax
    return fields


_REQUIRED_TAGS = tuple(tag_for_keyword(kw) for kw in
                       ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"))


def _read_index_elements(fh, preamble: bool, stop_when):
    """The index attributes of an open file (what ``dcmread(stop_before_pixels=True,
    specific_tags=...)`` gives), read from the start up to where ``stop_when`` says."""
    fh.seek(0)
    return read_partial(fh, stop_when=stop_when, force=not preamble,
                        specific_tags=list(HEADER_TAGS))


def _past_header(tag, vr, length) -> bool:
    """``stop_when`` of :func:`read_header`: True past the last index attribute."""
    return tag > LAST_HEADER_TAG


_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)  # Float, DoubleFloat, Pixel Data


def _at_pixels(tag, vr, length) -> bool:
    """``stop_when`` of the retry in :func:`read_header`: True at the pixel data."""
    return tag in _PIXEL_TAGS


# --------------------------------------------------------------------------- scanning


def walk_files(input_dir: Path) -> list[tuple[str, int, int]]:
    """All regular files below ``input_dir`` as (relative path, size, mtime_ns).

    Symbolic links to files are followed; symbolic links to directories are not
    (no cycles). Sorted by path so that the order never depends on the file system.
    """
    out: list[tuple[str, int, int]] = []
    stack = [(input_dir, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            raise IndexError_(f"cannot list folder {folder}: {exc.strerror}") from None
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), rel + "/"))
            elif entry.is_file():
                st = entry.stat()
                out.append((rel, st.st_size, st.st_mtime_ns))
    out.sort()
    return out


def scan(input_dir: str | os.PathLike, cache_path: str | os.PathLike | None = None,
         write_cache: bool = True, workers: int = 1) -> list[FileEntry]:
    """Scan ``input_dir`` recursively; read the headers of new or changed files.

    A file whose (path, size, mtime_ns) is in the cache is not opened. The cache
    is rewritten (atomically) only when something changed, and never when
    ``write_cache`` is False. With ``workers`` > 1 and at least
    :data:`PARALLEL_MIN_FILES` files to read, headers are read in a pool of that many
    processes (never more than the machine's CPUs); the result is the same.
    """
    input_dir = Path(input_dir).resolve()
    if not input_dir.is_dir():
        raise IndexError_(f"input_dir {str(input_dir)!r} is not a folder; set `input_dir` in the config")
    cache = load_cache(Path(cache_path), input_dir, CACHE_VERSION) if cache_path else {}
    files = walk_files(input_dir)
    records: dict[str, list] = {}
    todo: list[tuple[str, int, int]] = []
    for rel, size, mtime_ns in files:
        hit = cache.get(rel)
        if hit is not None and hit[0] == size and hit[1] == mtime_ns:
            records[rel] = hit
        else:
            todo.append((rel, size, mtime_ns))
    paths = [str(input_dir / rel) for rel, _, _ in todo]
    workers = max(1, min(int(workers or 1), os.cpu_count() or 1))
    read = None
    if workers > 1 and len(todo) >= PARALLEL_MIN_FILES:
        # forked workers (spawned ones re-import the caller's main module, which a
        # workflow or an interactive caller may not have as a file)
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=_FORK) as pool:
                read = list(pool.map(_read_record, paths,
                                     chunksize=max(1, min(64, len(paths) // (8 * workers)))))
        except (BrokenProcessPool, OSError):  # no processes here: read in this one
            read = None
    if read is None:
        read = [_read_record(p) for p in paths]
    for (rel, size, mtime_ns), (status, reason, fields) in zip(todo, read):
        records[rel] = [size, mtime_ns, status, reason, fields]
    new_cache = {rel: records[rel] for rel, _, _ in files}
    entries = [FileEntry(rel, r[0], r[1], r[2], r[3], r[4]) for rel, r in new_cache.items()]
    if cache_path and write_cache and (todo or len(new_cache) != len(cache)):
        payload = {"version": CACHE_VERSION, "input_dir": str(input_dir), "entries": new_cache}
        write_text_atomic(Path(cache_path), json.dumps(payload, separators=(",", ":")))
    return entries


def _read_record(path: str) -> tuple[str, str, dict]:
    """``(status, reason, fields)`` of one file: ``("dicom", "", header fields)``, or
    ``"quarantined"`` / ``"skipped"`` with the reason (see :func:`_looks_like_dicom`)."""
    try:
        return "dicom", "", read_header(path)
    except NotDicomError as exc:
        skipped = isinstance(exc, NothingToReleaseError) or not _looks_like_dicom(Path(path))
        return ("skipped" if skipped else "quarantined"), str(exc), {}
    except OSError as exc:
        return "quarantined", f"cannot read file: {exc.strerror}", {}


#: Extensions of files that are expected to be DICOM: when such a file cannot be
#: read it is quarantined (a user expects it in the release), not skipped.
DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic", ".ima")


_TEXT_BYTES = bytes(range(32, 127)) + b"\t\n\r\f"


def _looks_like_dicom(path: Path) -> bool:
    """Should an unreadable file be quarantined (True) or skipped (False)?

    Quarantined: a DICOM extension, or no extension and binary content (DICOM
    exports often have names like ``IM0001``). Skipped: other extensions and
    text files without extension (``LICENSE``, ``README``).
    """
    name = path.name.lower()
    if name.endswith(DICOM_EXTENSIONS):
        return True
    if "." in name.lstrip("."):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return True
    return bool(head) and bool(head.translate(None, _TEXT_BYTES))


# --------------------------------------------------------------------------- grouping


def pixel_cleaning_reason(fields: dict, modalities=DEFAULT_PIXEL_CLEANING_MODALITIES) -> str:
    """Why a file's pixels must be checked for burned-in text ('' when not needed)."""
    if fields.get("BurnedInAnnotation", "").upper() == "YES":
        return "BurnedInAnnotation YES"
    if fields.get("Modality", "") in modalities:
        return f"modality {fields['Modality']}"
    if fields.get("SOPClassUID", "").startswith(SECONDARY_CAPTURE_PREFIX):
        return "secondary capture"
    image_type = fields.get("ImageType", "").upper().split("\\")
    if "SECONDARY" in image_type or "SCREEN" in " ".join(image_type):
        return "derived screen capture (ImageType)"
    return ""


def mark_duplicates(entries: list[FileEntry]) -> int:
    """Skip every file whose SOPInstanceUID an earlier file (in path order) already has.

    Real exports often hold the same image twice (two folders, a DICOMDIR copy).
    The first file is kept; the others are marked ``skipped`` with the path of
    the kept one in the reason. Returns the number of files marked.
    """
    seen: dict[str, str] = {}
    n = 0
    for e in entries:
        if e.status != "dicom":
            continue
        uid = e.fields.get("SOPInstanceUID", "")
        if uid in seen:
            e.status = "skipped"
            e.reason = f"duplicate SOPInstanceUID: the same image as {seen[uid]} (kept)"
            n += 1
        else:
            seen[uid] = e.path
    return n


def group(
    entries: list[FileEntry],
    key: bytes,
    crosswalk: dict[tuple[str, str], str] | None = None,
    pixel_cleaning_modalities=DEFAULT_PIXEL_CLEANING_MODALITIES,
) -> tuple[list[Series], dict[tuple[str, str], str]]:
    """Group DICOM entries into labelled series (subject → session → series)."""
    mark_duplicates(entries)
    dicom = [e for e in entries if e.status == "dicom"]
    subjects = assign_subject_labels(key, [subject_identity(e.fields) for e in dicom], crosswalk)
    by_subject: dict[str, dict[str, dict[tuple[str, str], list[FileEntry]]]] = {}
    for e in dicom:
        f = e.fields
        sub = subjects[subject_identity(f)]
        by_subject.setdefault(sub, {}).setdefault(f["StudyInstanceUID"], {}).setdefault(
            (f["SeriesInstanceUID"], f.get("SeriesNumber", "")), []
        ).append(e)
    out: list[Series] = []
    for sub in sorted(by_subject):
        studies = by_subject[sub]

        def study_order(uid: str) -> tuple:
            first = next(iter(studies[uid].values()))[0].fields
            return (first.get("StudyDate", ""), first.get("StudyTime", ""), keys.remap_uid(key, uid))

        for ses_n, study_uid in enumerate(sorted(studies, key=study_order), start=1):
            series_map = studies[study_uid]
            ordered = sorted(
                series_map, key=lambda k: (_int_or(k[1], 10**9), keys.remap_uid(key, k[0]), k[1])
            )
            used: dict[str, int] = {}
            for skey in ordered:
                files = sorted(series_map[skey], key=lambda e: e.path)
                number = _int_or(skey[1], -1)
                base = f"s{number:03d}" if number >= 0 else "sx"
                used[base] = used.get(base, 0) + 1
                label = base if used[base] == 1 else base + chr(ord("a") + used[base] - 1)
                fields = files[0].fields
                reasons = {pixel_cleaning_reason(e.fields, pixel_cleaning_modalities) for e in files} - {""}
                out.append(Series(sub, str(ses_n), label, fields, files, "; ".join(sorted(reasons))))
    return out, subjects


# --------------------------------------------------------------------------- outputs


def build_index(
    input_dir: str | os.PathLike,
    private_dir: str | os.PathLike,
    key: bytes,
    crosswalk: str | os.PathLike | None = None,
    pixel_cleaning_modalities=DEFAULT_PIXEL_CLEANING_MODALITIES,
    write: bool = True,
    workers: int = 1,
) -> DatasetIndex:
    """Scan, group, label and write the private index files. The one call the workflow makes.

    ``write=False`` (a cluster job re-reading the workflow) only reads: the
    cache and the private files are left as the main process wrote them.
    ``workers``: processes that read uncached headers (see :func:`scan`).
    """
    entries = scan(input_dir, Layout(os.fspath(private_dir)).private_file("index_cache.json"), write_cache=write,
                   workers=workers)
    cw = read_crosswalk(crosswalk) if crosswalk else None
    series, subjects = group(entries, key, cw, pixel_cleaning_modalities)
    index = DatasetIndex(Path(input_dir).resolve(), series, entries, subjects)
    if write:
        write_outputs(index, private_dir)
    return index
