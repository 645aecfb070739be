"""File edges of :mod:`neurodeid.redact`: read, redact, write atomically.

Every output (image, DICOM, QC picture) is written to a temporary file in the
destination folder and moved into place with :func:`os.replace`, so a reader
never sees a half-written file.

On FAIL the redacted image is not written (``write_failed=False``, the
default) and a stale file at ``out_path`` from an earlier run is removed, so a
failed image cannot reach the release by accident.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..fileio import write_bytes_atomic
from ..results import Check, StageResult, write_stage_result
from .config import RedactionConfig, header_values
from .dicom_pixels import (WRITABLE_ITEMSIZES, holds_no_image, read_frames, ultrasound_regions, update_geometry,
                           write_frames)
from .engine import redact_frames
from .errors import RedactionError, UnsupportedImageError
from .qc import qc_image

#: dict label -> value, or a list of str / audit Needle objects / [text, source] rows
Needles = Sequence | Mapping[str, str] | None


#: The method of a file that holds no image (:func:`.dicom_pixels.holds_no_image`).
NO_IMAGE_METHOD = "no image: nothing to read"


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then move the temporary file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _save_qc(qc_png, before, after, photometric, red) -> None:
    img = qc_image(before, after, photometric, red)
    atomic_write(qc_png, lambda tmp: img.save(tmp, format="PNG"))


def redact_dataset(ds, cfg: RedactionConfig, needles: Needles = None):
    """Redact a pydicom Dataset in place.

    Returns
    -------
    result : dict
        See :func:`redact_dicom_file`.
    before, after : ndarray, shape (frames, rows, columns, samples)
        Decoded input and redacted output pixels.
    redaction : engine.Redaction
    """
    frames, photometric = read_frames(ds)
    out, red = redact_frames(frames, photometric, cfg, needles, header=header_values(ds),
                             us_regions=ultrasound_regions(ds))
    if red.window is not None and (red.window != (0, frames.shape[1], 0, frames.shape[2]) or red.resized):
        update_geometry(ds, red.window, out.shape[1], out.shape[2])
    # a 32-bit image no redaction changed keeps its stored pixels (they cannot be rewritten)
    unchanged = frames.dtype.itemsize not in WRITABLE_ITEMSIZES and out.shape == frames.shape \
        and red.result["pixels_changed"] == 0
    removed = write_frames(ds, out, photometric, keep_pixels=unchanged)
    red.result["removed_elements"] = removed
    red.result["photometric_out"] = photometric
    red.result["transfer_syntax_out"] = str(ds.file_meta.TransferSyntaxUID)
    return red.result, frames, out, red


def redact_dicom_file(in_path, out_path, cfg: RedactionConfig, needles: Needles = None,
                      qc_png: str | os.PathLike | None = None, *, write_failed: bool = False) -> dict:
    """Redact burned-in text of one DICOM file.

    Parameters
    ----------
    in_path : path
        DICOM file (normally already de-identified in its header).
    out_path : path
        Where the redacted DICOM goes (written atomically; on FAIL only when
        ``write_failed``).
    cfg : RedactionConfig
    needles : list or dict
        The subject's identifying strings (the audit's private needle list),
        used only to judge the verification OCR; never written or printed.
        A list of :class:`neurodeid.audit.Needle` (or its JSON rows
        ``[text, source]``) or a dict label -> value makes reasons name the
        source (e.g. "PatientName"); plain strings are "needle #i".
    qc_png : path, optional
        Before/after picture (shows the ORIGINAL text: keep it private).
    write_failed : bool
        Also write the output when verification fails.

    Returns
    -------
    dict
        ``status`` ("PASS"/"FAIL"), ``method``, ``boxes``, ``frames``,
        ``pixels_changed`` (pixel positions of all frames that differ, crop
        removals included), ``reasons`` (no identifying text), and details
        (``rule``, ``ocr_boxes``, ``rule_boxes``, ``crop``, ``shape_in``,
        ``shape_out``, ``ocr_passes``, ``ocr``, ``removed_elements``,
        ``written``).

    Raises
    ------
    RedactionError
        Unreadable file, undecodable pixels (:class:`UnsupportedImageError`),
        OCR missing (:class:`OCRUnavailableError`).
    """
    import pydicom

    try:
        ds = pydicom.dcmread(in_path)
    except Exception as exc:
        raise RedactionError(f"{in_path}: cannot read as DICOM: {exc}; check the file is a DICOM Part 10 file") from exc
    if holds_no_image(ds):  # nothing to read: the de-identified file goes on as it is
        write_bytes_atomic(out_path, Path(in_path).read_bytes())
        return {"status": Check.PASS, "method": NO_IMAGE_METHOD, "boxes": 0, "frames": 0, "pixels_changed": 0,
                "reasons": [], "written": True}
    result, before, after, red = redact_dataset(ds, cfg, needles)  # errors name ds.filename
    implicit = ds.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    # explicit encoding arguments also convert a big-endian input to little endian
    _finish(result, out_path, lambda tmp: pydicom.dcmwrite(tmp, ds, implicit_vr=implicit, little_endian=True,
                                                           enforce_file_format=True), write_failed)
    if qc_png is not None:
        _save_qc(qc_png, before, after, result["photometric_out"], red)
    return result


def _finish(result, out_path, writer, write_failed) -> None:
    if result["status"] == Check.PASS or write_failed:
        atomic_write(out_path, writer)
        result["written"] = True
    else:
        if os.path.exists(out_path):
            os.unlink(out_path)
        result["written"] = False


def read_image(path) -> tuple[np.ndarray, str]:
    """A plain image (JPEG/PNG/...) as (1, rows, columns, samples) and its photometric.

    EXIF orientation is applied first (the pixels as a viewer shows them);
    alpha is dropped; palette images become RGB; 16-bit grayscale stays
    uint16.
    """
    from PIL import Image, ImageOps

    try:
        im = Image.open(path)
        im = ImageOps.exif_transpose(im)
    except Exception as exc:
        raise RedactionError(f"{path}: cannot read as an image: {exc}") from exc
    if im.mode in ("I;16", "I;16B", "I;16L"):
        a = np.asarray(im).astype(np.uint16)
        return a[None, :, :, None], "MONOCHROME2"
    if im.mode == "I":
        a = np.asarray(im)
        if a.min() < 0 or a.max() > 65535:
            raise UnsupportedImageError(f"{path}: 32-bit image values outside 0..65535 are not supported")
        return a.astype(np.uint16)[None, :, :, None], "MONOCHROME2"
    if im.mode in ("L", "1"):
        return np.asarray(im.convert("L"))[None, :, :, None], "MONOCHROME2"
    return np.asarray(im.convert("RGB"))[None], "RGB"


def _write_image(arr: np.ndarray, photometric: str, path_for_format, tmp: str) -> None:
    from PIL import Image

    a = arr[0]
    img = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
    fmt = Path(path_for_format).suffix.lower().lstrip(".")
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "tif": "TIFF", "tiff": "TIFF"}.get(fmt)
    if fmt is None:
        raise RedactionError(f"{path_for_format}: output suffix must be .png, .jpg/.jpeg or .tif(f)")
    if fmt == "JPEG":
        if a.dtype != np.uint8:
            raise UnsupportedImageError(f"{path_for_format}: 16-bit pixels cannot be stored as JPEG; use .png")
        # lossy re-encoding; no EXIF or comments are copied
        img.save(tmp, format="JPEG", quality=95, subsampling=0)
    else:
        img.save(tmp, format=fmt)  # no text chunks / metadata copied


def redact_image_file(in_path, out_path, cfg: RedactionConfig, needles: Needles = None,
                      qc_png: str | os.PathLike | None = None, *, write_failed: bool = False) -> dict:
    """Redact burned-in text of a plain image (JPEG/PNG/TIFF).

    Same contract as :func:`redact_dicom_file`. Region rules match on Rows and
    Columns only. The output format follows ``out_path``'s suffix; PNG is
    lossless, JPEG is re-encoded (quality 95, no chroma subsampling) and so
    changes pixel values slightly outside the boxes too. No metadata (EXIF,
    comments, text chunks) is carried over. A crop has no geometry to update.
    """
    frames, photometric = read_image(in_path)
    out, red = redact_frames(frames, photometric, cfg, needles,
                             header={"Rows": frames.shape[1], "Columns": frames.shape[2]})
    result = red.result
    result["photometric_out"] = photometric
    _finish(result, out_path, lambda tmp: _write_image(out, photometric, out_path, tmp), write_failed)
    if qc_png is not None:
        _save_qc(qc_png, frames, out, photometric, red)
    return result


#: What the result of a listed image keeps of :func:`redact_image_file`'s record (besides its status).
LISTED_IMAGE_KEYS = ("reasons", "method", "boxes", "pixels_changed")


def redact_listed_image(image, release_out, result_json, qc_png, cfg: RedactionConfig,
                        needles: Needles = None) -> StageResult:
    """One job for a plain 2D image listed in config (``redact.images``): redacted into
    ``release_out`` and verified by OCR; on anything but PASS nothing is left in the release.
    A QC picture is always written (a placeholder when none could be drawn); the result
    (its status, :data:`LISTED_IMAGE_KEYS` and the released file name) goes to ``result_json``."""
    from ..fileio import write_placeholder_png

    dst = Path(release_out)
    try:
        r = redact_image_file(image, dst, cfg, needles, qc_png=qc_png)
    except RedactionError as exc:
        r = {"status": Check.FAIL, "reasons": [f"{type(exc).__name__}: {exc}"]}
    if r["status"] != Check.PASS:
        dst.unlink(missing_ok=True)  # never a FAIL in the release
    if not Path(qc_png).is_file():
        write_placeholder_png(qc_png)
    record = StageResult("redact_image", r["status"],
                         measures={k: r.get(k) for k in LISTED_IMAGE_KEYS} | {"output": dst.name})
    write_stage_result(result_json, record)
    return record
