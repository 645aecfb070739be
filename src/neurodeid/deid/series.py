"""De-identify the files of one series: the thin file I/O edge of the engine.

Output names carry no identifiers (``00001.dcm``, ...), each file is written
atomically (a temporary name in the output folder, then :func:`os.replace`),
the transfer syntax is preserved (pixel data is never decoded) and the output
is deterministic: the same key and input give byte-identical files.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from neurodeid import __version__
from neurodeid.audit import needles as _needles
from neurodeid.deid import bytesmemo, crosscheck
from neurodeid.deid.crosscheck import clean_kept_values
from neurodeid.deid.fastwrite import encode_file
from neurodeid.deid.reread import uid_bytes, written_sop_uids
from neurodeid.deid.engine import DeidConfig, DeidError, deidentify_dataset
from neurodeid.deid.rules import plan_for_tag
from neurodeid.audit.needles import dataset_needles
from neurodeid.results import StageStatus
from neurodeid.records import write_tsv

#: The columns of the per-series de-identification report.
REPORT_COLUMNS = ("source", "output", "status", "reason")

_TMP_PREFIX = ".neurodeid-tmp-"


class NotAnInstanceError(ValueError):
    """The file is not a composite SOP instance that can be de-identified."""


#: The implementation that writes the de-identified files (PS3.10 7.1: the file meta names
#: the implementation that wrote the file): pydicom's class UID, neurodeid's version name.
#: The input's (a site's PACS or export tool, which may name the site) is not carried over.
IMPLEMENTATION_CLASS_UID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
IMPLEMENTATION_VERSION_NAME = f"NEURODEID_{__version__}"[:16]


def _ensure_file_meta(ds) -> None:
    """Give ``ds`` a valid file meta group matching its encoding, written by neurodeid
    (:data:`IMPLEMENTATION_CLASS_UID`, :data:`IMPLEMENTATION_VERSION_NAME`)."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        if implicit is None:
            implicit, little = True, True
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        )
    for meta_keyword, keyword in (("MediaStorageSOPClassUID", "SOPClassUID"),
                                  ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
        value = getattr(ds, keyword)
        if meta.get(meta_keyword) != value:  # equal: setting it again changes nothing
            setattr(meta, meta_keyword, value)
    if "FileMetaInformationVersion" not in meta:
        meta.FileMetaInformationVersion = b"\x00\x01"
    if meta.get("ImplementationClassUID") != IMPLEMENTATION_CLASS_UID:
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    if meta.get("ImplementationVersionName") != IMPLEMENTATION_VERSION_NAME:
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME


def _check_complete(ds, src: Path) -> None:
    """Raise if parsing stopped before the end of the file (a truncated file reads silently)."""
    if not ds._dict:
        return
    if str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "")) == "1.2.840.10008.1.2.1.99":
        return  # deflated: element offsets refer to the inflated stream
    last = ds._dict[max(ds._dict, key=int)]  # ints compare in C, tags in Python
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    if tell is None or length is None or length == 0xFFFFFFFF:
        return
    size = os.path.getsize(src)
    if tell + length != size:
        raise NotAnInstanceError(
            f"{src}: the last element ends at byte {tell + length} but the file has {size} bytes: truncated, or trailing data"
        )


#: Every VR of DICOM PS3.5 (what pydicom knows); any other two letters mean a corrupt file.
_KNOWN_VRS = frozenset(v.value for v in pydicom.valuerep.VR)
#: Short-text VRs: a value that swallowed the elements after it (a wrong length field) holds
#: their binary headers; free text may hold CR, LF or TAB (RIS systems write them) and is fine.
_SHORT_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UI"})
#: VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2).
_LONG_HEADER_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
#: Plan actions whose element never reaches the output as read: removed, emptied, replaced
#: by a dummy or pseudonym, or a UID remapped by a keyed hash. A value with a corrupt length
#: in such an element is harmless: whatever it swallowed goes with it.
_VALUE_NOT_KEPT = frozenset({"X", "Z", "D", "N", "PSEUDO", "U"})


#: A value made of text bytes (0x09 and above, one NUL pad at the end) holds an element
#: header only if it is at least this long: its length field then reads 0x0909 or more
#: (an explicit-VR long header needs two zero reserved bytes before its length).
_SHORTEST_TEXT_EMBEDDING = 8 + 0x0909


def embedded_element_offset(value: bytes, explicit_vr: bool = True, little_endian: bool = True) -> int | None:
    """The offset in ``value`` where the bytes parse as a following data element, or None.

    A short text value whose length field is wrong swallows the elements behind it, and
    then holds their headers: a tag (group >= 0008, in the dictionary when even), in
    explicit VR a known VR and its length, in implicit VR a 4-byte length, and a value that
    fits in what is left. Text cannot hold such a header: a length made of printable or
    CR/LF/TAB bytes is at least 0x0909, longer than any short text value.
    """
    n = len(value)
    if n < _SHORTEST_TEXT_EMBEDDING and min(value[:-1] if value.endswith(b"\x00") else value, default=0x09) >= 0x09:
        return None
    endian = "<" if little_endian else ">"
    for p in range(0, n - 7):
        group, elem = struct.unpack_from(f"{endian}HH", value, p)
        if group < 0x0008 or group == 0xFFFE:
            continue
        if not group & 1 and not pydicom.datadict.dictionary_has_tag((group << 16) | elem):
            continue
        if explicit_vr:
            try:
                vr = value[p + 4 : p + 6].decode("ascii")
            except UnicodeDecodeError:
                continue
            if vr not in _KNOWN_VRS:
                continue
            if vr in _LONG_HEADER_VRS:
                if p + 12 > n or value[p + 6 : p + 8] != b"\x00\x00":
                    continue
                (length,) = struct.unpack_from(f"{endian}L", value, p + 8)
                start = p + 12
                if length == 0xFFFFFFFF and vr in ("SQ", "UN"):
                    return p
            else:
                (length,) = struct.unpack_from(f"{endian}H", value, p + 6)
                start = p + 8
        else:
            (length,) = struct.unpack_from(f"{endian}L", value, p + 4)
            start = p + 8
        if start + length <= n:
            return p
    return None


def _check_structure(ds, src: Path, kept=None, where: str = "") -> None:
    """Raise :class:`NotAnInstanceError` when an element's VR is unknown, or when a short text
    value that is kept holds what parses as the elements after it (its length field is
    wrong): the element boundaries cannot be trusted, and the kept element would carry the
    bytes of removed ones.

    ``kept(tag) -> bool`` says whether the profile keeps an element's value (None: all kept).
    Judged by structure, not by control bytes: CR/LF/TAB in free text (RIS comments) are not
    corruption, and a value that the profile removes anyway is removed and the file goes on.
    """
    _check_items(ds, src, kept, (where,) if where else ())


def _where(path: tuple) -> str:
    """The element path of an error message: ``"(gggg,eeee)[i] "`` per enclosing item."""
    return "".join(p if isinstance(p, str) else f"{p[0]}[{p[1]}] " for p in path)


def _check_items(ds, src: Path, kept, path: tuple) -> None:
    """:func:`_check_structure` of ``ds`` inside the items ``path`` (formatted only in an error)."""
    implicit, little = ds.original_encoding if hasattr(ds, "original_encoding") else (False, True)
    explicit = implicit is False
    little = little is not False
    known, short_text = _KNOWN_VRS, _SHORT_TEXT_VRS
    sound = _sound_values(explicit, little)
    for tag, raw in list(ds._dict.items()):
        vr = raw.VR
        if vr is not None and vr not in known:
            raise NotAnInstanceError(
                f"{src}: element {_where(path)}{tag} has an unknown VR {vr!r}: the file is corrupt "
                "(element boundaries cannot be trusted); re-export it from the source")
        is_sq = vr == "SQ" or (
            vr is None and pydicom.datadict.dictionary_has_tag(tag) and pydicom.datadict.dictionary_VR(tag) == "SQ")
        if is_sq:
            for i, item in enumerate(ds[tag].value or []):
                _check_items(item, src, kept, path + ((tag, i),))
            continue
        value = raw.value if getattr(raw, "is_raw", False) else None
        if not isinstance(value, bytes) or (vr or _dict_vr(tag)) not in short_text:
            continue
        if kept is not None and not kept(int(tag)):
            continue
        if value in sound:
            continue
        at = embedded_element_offset(value, explicit, little)
        if at is None and len(value) < _SHORTEST_TEXT_EMBEDDING:
            sound.add(value)
        if at is not None:
            raise NotAnInstanceError(
                f"{src}: element {_where(path)}{tag} ({vr}, {len(value)} bytes) holds what parses as a following "
                f"data element at byte {at} of its value: its length field is wrong and the file is corrupt; "
                "re-export it from the source")


#: ``{(explicit VR, little endian): values}``: short text values in which
#: :func:`embedded_element_offset` found no element (the files of a series repeat most).
_SOUND: dict[tuple[bool, bool], set] = {}
#: Values held at most per encoding (then forgotten; each shorter than
#: ``_SHORTEST_TEXT_EMBEDDING``): a bound on the memory of a long run.
_SOUND_MAX = 20_000


def _sound_values(explicit: bool, little: bool) -> set:
    """The set of short text values found to hold no element header in this encoding."""
    sound = _SOUND.get((explicit, little))
    if sound is None or len(sound) > _SOUND_MAX:
        sound = _SOUND[(explicit, little)] = set()
    return sound


def forget_series_memos() -> None:
    """Forget every result remembered from the values of earlier files, so that the next
    file is de-identified as the first file of a series in a fresh process (the workflow
    runs one process per series; a benchmark that repeats files in one process calls this
    before each pass to time what the workflow pays). The outputs never depend on it.

    Forgotten: every :func:`neurodeid.deid.bytesmemo.memo_by_bytes` memo (CSA sanitising,
    quasi generalisation, cross-check of CSA items, GE blocks), the cross-check's clear
    values and matchers, the structure check's sound values, the needle walk's judged
    values, needles made and needle-free tags, and the needle texts and spellings judged.
    Kept: what depends on the table and options only (plans per tag, vocabulary, VRs).
    """
    from neurodeid.audit import scan  # imported here: the de-identification may not need it

    bytesmemo.forget_all()
    crosscheck.forget_memos()
    _SOUND.clear()
    _needles.forget_memos()
    scan.forget_memos()


def _dict_vr(tag) -> str:
    try:
        return pydicom.datadict.dictionary_VR(tag)
    except KeyError:
        return ""


#: ``{options: {tag: kept}}``, shared by every file (the same tags recur).
_KEPT: dict[frozenset, dict[int, bool]] = {}


def _kept_by(cfg: DeidConfig):
    """``kept(tag)``: whether the profile under ``cfg.options`` writes the element's value out."""
    cache = _KEPT.setdefault(cfg.options, {})

    def kept(tag: int) -> bool:
        k = cache.get(tag)
        if k is None:
            k = cache[tag] = plan_for_tag(tag, cfg.options).action not in _VALUE_NOT_KEPT
        return k

    return kept


def _resolve_missing_vrs(ds) -> None:
    """Give raw elements read without a VR (an implicit-VR body under an
    explicit-VR transfer syntax) their dictionary VR so they can be written."""
    for tag in list(ds._dict):
        raw = ds._dict[tag]
        if getattr(raw, "is_raw", False) and raw.VR is None:
            elem = ds[tag]  # converts, looking the VR up in the dictionary
            if elem.VR == "SQ":
                for item in elem.value:
                    _resolve_missing_vrs(item)
        elif not getattr(raw, "is_raw", True) and raw.VR == "SQ":
            for item in raw.value:
                _resolve_missing_vrs(item)


def _has_raw_without_vr(ds) -> bool:
    """Whether a top-level element of ``ds`` is raw and was read without a VR."""
    for elem in ds._dict.values():
        if elem.VR is None and getattr(elem, "is_raw", False):
            return True
    return False


def _instance_number(ds) -> tuple[int, int]:
    try:
        return (0, int(ds.get("InstanceNumber")))
    except (TypeError, ValueError):
        return (1, 0)


def _write(dst: Path, ds) -> None:
    """Write ``ds`` as ``pydicom.dcmwrite(dst, ds, enforce_file_format=True)`` does: the
    same bytes, built by :func:`neurodeid.deid.fastwrite.encode_file` when it can."""
    data = encode_file(ds)
    if data is None:
        pydicom.dcmwrite(dst, ds, enforce_file_format=True)
        return
    with open(dst, "wb") as fh:
        fh.write(data)


#: Files larger than this (bytes) are parsed from disk, not from a copy in memory.
IN_MEMORY_MAX = 64 * 1024 * 1024


def _read(src: Path):
    """``pydicom.dcmread(src, force=True)``, parsed from the file's bytes in memory (the
    same dataset; pydicom's many small reads and position queries on a file object cost
    a quarter of the parse). A file over :data:`IN_MEMORY_MAX` is read from disk, so a
    large multi-frame object is not held twice."""
    if src.stat().st_size > IN_MEMORY_MAX:
        return pydicom.dcmread(src, force=True)
    with open(src, "rb") as fh:
        data = fh.read()
    return pydicom.dcmread(io.BytesIO(data), force=True)


def _verify_written(src: Path, dst: Path, ds) -> None:
    """Raise unless the file written to ``dst`` re-reads with the SOP UIDs of ``ds``.

    Its bytes are walked strictly first (:func:`neurodeid.deid.reread.written_sop_uids`:
    every element at every depth, stricter than pydicom's reader); when that walk is
    unsure or finds other UIDs, pydicom re-reads the header and decides, as it always did.
    """
    with open(dst, "rb") as fh:
        uids = written_sop_uids(fh.read())
    if uids is not None and uids == (uid_bytes(ds.SOPClassUID), uid_bytes(ds.SOPInstanceUID)):
        return
    back = pydicom.dcmread(dst, stop_before_pixels=True)
    if back.get("SOPInstanceUID") != ds.SOPInstanceUID or back.get("SOPClassUID") != ds.SOPClassUID:
        raise NotAnInstanceError(f"{src}: the written file does not re-read with the same SOP UIDs")


def deidentify_file(src: Path, dst: Path, cfg: DeidConfig, verify: bool = True):
    """De-identify one file to ``dst`` (written in place; callers rename atomically).

    Returns
    -------
    (sort_key, report)
        ``sort_key`` is ``(has_no_number, InstanceNumber, new SOPInstanceUID)``.

    Raises
    ------
    NotAnInstanceError, pydicom.errors.InvalidDicomError, OSError, ...
        Anything that stops this file; :func:`deidentify_series` quarantines it.
    """
    ds = _read(src)
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        what = "a DICOMDIR" if "DirectoryRecordSequence" in ds else "not a composite SOP instance"
        raise NotAnInstanceError(f"{src}: {what} (no SOPClassUID/SOPInstanceUID); nothing to de-identify")
    _check_complete(ds, src)
    _check_structure(ds, src, kept=_kept_by(cfg))
    has_pixels = any(t in ds for t in (0x7FE00010, 0x7FE00008, 0x7FE00009))
    if "Rows" in ds and "Columns" in ds and not has_pixels:
        raise NotAnInstanceError(
            f"{src}: image attributes (Rows, Columns) but no pixel data: the file looks truncated or incomplete"
        )
    raw_needles = dataset_needles(ds, cfg.options)  # the subject's identifying values, before the table
    report = deidentify_dataset(ds, cfg)
    clean_kept_values(ds, raw_needles)  # kept text that repeats them is overwritten
    _ensure_file_meta(ds)
    ds.preamble = b"\x00" * 128  # free for any use (a vendor's, a TIFF header's): nothing of the input's
    if ds.original_encoding[0] is False and _has_raw_without_vr(ds):
        _resolve_missing_vrs(ds)
    _write(dst, ds)
    if verify:
        _verify_written(src, dst, ds)
    return (_instance_number(ds) + (str(ds.SOPInstanceUID),)), report


def deidentify_series(files, out_dir, cfg: DeidConfig, verify: bool = True) -> list[dict]:
    """De-identify the files of one series into ``out_dir``.

    Parameters
    ----------
    files : list of path-like
        The input DICOM files of one series (read-only).
    out_dir : path-like
        Created if needed. Outputs are ``out_dir/{n:05d}.dcm``, ``n`` from 1,
        ordered by (InstanceNumber, new SOPInstanceUID).
    cfg : DeidConfig
    verify : bool
        Re-read every written file (header only) and check its SOP UIDs.

    Returns
    -------
    list of dict
        One per input, in input order: ``source``, ``output`` (str or None),
        ``status`` (``"ok"`` or ``"quarantined"``), ``reason`` (names the
        file and the error; ``""`` when ok) and ``report``
        (:meth:`DeidReport.to_dict`, or None).

    Raises
    ------
    DeidError
        Only if no file of the series could be written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    staged = []
    for i, src in enumerate(files):
        src = Path(src)
        tmp = out_dir / f"{_TMP_PREFIX}{os.getpid()}-{i:05d}.dcm"
        try:
            key, report = deidentify_file(src, tmp, cfg, verify=verify)
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the series
            tmp.unlink(missing_ok=True)
            msg = str(exc)
            reason = msg if str(src) in msg else f"{src}: {msg}"
            results.append(
                {
                    "source": str(src),
                    "output": None,
                    "status": StageStatus.QUARANTINED,
                    "reason": f"{type(exc).__name__}: {reason}",
                    "report": None,
                }
            )
            continue
        staged.append((key, tmp, len(results)))
        results.append({"source": str(src), "output": None, "status": StageStatus.OK, "reason": "",
                        "report": report.to_dict()})
    if not staged:
        reasons = "; ".join(r["reason"] for r in results[:3])
        raise DeidError(
            f"no file of the series could be de-identified into {out_dir} ({len(results)} inputs); first reasons: {reasons}"
        )
    staged.sort(key=lambda s: s[0])
    for n, (_, tmp, idx) in enumerate(staged, start=1):
        final = out_dir / f"{n:05d}.dcm"
        os.replace(tmp, final)
        results[idx]["output"] = str(final)
    _remove_stale_outputs(out_dir, len(staged))
    return results


def _remove_stale_outputs(out_dir: Path, n_written: int) -> None:
    """Remove outputs of an earlier, larger run (``NNNNN.dcm`` beyond ``n_written``) so the
    folder holds exactly this series; only names this module writes are touched."""
    for p in out_dir.iterdir():
        stem = p.name[:-4] if p.name.endswith(".dcm") else ""
        if len(stem) == 5 and stem.isdigit() and int(stem) > n_written:
            p.unlink()


def deid_series_job(files, out_dir: str | os.PathLike, report_tsv: str | os.PathLike, cfg: DeidConfig) -> list[dict]:
    """One job of the de-identification stage: every file of a series de-identified into
    ``out_dir`` and one row per file in ``report_tsv`` (source, output, status, reason).

    A series none of whose files can be used is quarantined as a whole (every file listed
    with the reason); the run goes on.
    """
    try:
        results = deidentify_series(files, out_dir, cfg)
    except DeidError as exc:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        results = [{"source": str(f), "output": None, "status": StageStatus.QUARANTINED, "reason": str(exc)}
                   for f in files]
    rows = [[r["source"], Path(r["output"]).name if r["output"] else "", r["status"], r["reason"]] for r in results]
    write_tsv(report_tsv, REPORT_COLUMNS, rows)
    return results
