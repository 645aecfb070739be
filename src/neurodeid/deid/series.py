"""De-identify the files of one series: the thin file I/O edge of the engine.

Output names carry no identifiers (``00001.dcm``, ...), each file is written
atomically (a temporary name in the output folder, then :func:`os.replace`),
the transfer syntax is preserved (pixel data is never decoded) and the output
is deterministic: the same key and input give byte-identical files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from neurodeid.deid.crosscheck import clean_kept_values
from neurodeid.deid.engine import DeidConfig, DeidError, deidentify_dataset
from neurodeid.needles import dataset_needles

_TMP_PREFIX = ".neurodeid-tmp-"


class NotAnInstanceError(ValueError):
    """The file is not a composite SOP instance that can be de-identified."""


def _ensure_file_meta(ds) -> None:
    """Give ``ds`` a valid file meta group matching its encoding."""
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
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "FileMetaInformationVersion" not in meta:
        meta.FileMetaInformationVersion = b"\x00\x01"
    if "ImplementationClassUID" not in meta:
        meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID


def _check_complete(ds, src: Path) -> None:
    """Raise if parsing stopped before the end of the file (a truncated file reads silently)."""
    if not ds._dict:
        return
    if str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "")) == "1.2.840.10008.1.2.1.99":
        return  # deflated: element offsets refer to the inflated stream
    last = ds._dict[max(ds._dict)]
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
#: Short-text VRs whose value never holds a NUL or control byte (except trailing NUL padding):
#: one that does has swallowed the elements after it (its length is corrupt).
_SHORT_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UI"})
_CONTROL = frozenset(range(0x20)) - {0x1B}  # ESC starts ISO 2022 code extensions


def _check_structure(ds, src: Path, where: str = "") -> None:
    """Raise :class:`NotAnInstanceError` when an element's VR is unknown or a short text
    value holds control bytes: the element boundaries cannot be trusted (a byte inserted
    or lost), and a kept element could carry the bytes of removed ones."""
    for tag, raw in list(ds._dict.items()):
        vr = raw.VR
        if vr is not None and vr not in _KNOWN_VRS:
            raise NotAnInstanceError(
                f"{src}: element {where}{tag} has an unknown VR {vr!r}: the file is corrupt "
                "(element boundaries cannot be trusted); re-export it from the source")
        is_sq = vr == "SQ" or (
            vr is None and pydicom.datadict.dictionary_has_tag(tag) and pydicom.datadict.dictionary_VR(tag) == "SQ")
        if is_sq:
            for i, item in enumerate(ds[tag].value or []):
                _check_structure(item, src, f"{where}{tag}[{i}] ")
            continue
        value = raw.value if getattr(raw, "is_raw", False) else None
        if vr in _SHORT_TEXT_VRS and isinstance(value, bytes) and _CONTROL & set(value.rstrip(b"\x00 ")):
            raise NotAnInstanceError(
                f"{src}: element {where}{tag} ({vr}) holds control bytes over {len(value)} bytes: the file "
                "is corrupt (a length field is wrong); re-export it from the source")


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


def _instance_number(ds) -> tuple[int, int]:
    try:
        return (0, int(ds.get("InstanceNumber")))
    except (TypeError, ValueError):
        return (1, 0)


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
    ds = pydicom.dcmread(src, force=True)
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        what = "a DICOMDIR" if "DirectoryRecordSequence" in ds else "not a composite SOP instance"
        raise NotAnInstanceError(f"{src}: {what} (no SOPClassUID/SOPInstanceUID); nothing to de-identify")
    _check_complete(ds, src)
    _check_structure(ds, src)
    has_pixels = any(t in ds for t in (0x7FE00010, 0x7FE00008, 0x7FE00009))
    if "Rows" in ds and "Columns" in ds and not has_pixels:
        raise NotAnInstanceError(
            f"{src}: image attributes (Rows, Columns) but no pixel data: the file looks truncated or incomplete"
        )
    raw_needles = dataset_needles(ds, cfg.options)  # the subject's identifying values, before the table
    report = deidentify_dataset(ds, cfg)
    clean_kept_values(ds, raw_needles)  # kept text that repeats them is overwritten
    _ensure_file_meta(ds)
    ds.preamble = b"\x00" * 128
    if ds.original_encoding[0] is False and any(
        getattr(e, "is_raw", False) and e.VR is None for e in ds._dict.values()
    ):
        _resolve_missing_vrs(ds)
    pydicom.dcmwrite(dst, ds, enforce_file_format=True)
    if verify:
        back = pydicom.dcmread(dst, stop_before_pixels=True)
        if back.get("SOPInstanceUID") != ds.SOPInstanceUID or back.get("SOPClassUID") != ds.SOPClassUID:
            raise NotAnInstanceError(f"{src}: the written file does not re-read with the same SOP UIDs")
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
                    "status": "quarantined",
                    "reason": f"{type(exc).__name__}: {reason}",
                    "report": None,
                }
            )
            continue
        staged.append((key, tmp, len(results)))
        results.append({"source": str(src), "output": None, "status": "ok", "reason": "", "report": report.to_dict()})
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
