"""Write a de-identified DICOM series again with the defaced pixels.

Defacing works on the NIfTI made by dcm2niix (:mod:`neurodeid.convert`,
:mod:`neurodeid.deface`). This module carries the NIfTI removal mask back to the DICOM
pixels through the real geometry of every file, or of every frame of an enhanced
multi-frame file, and writes a new, derived series whose face pixels hold the
background value:

* pixel centres are computed from ImagePositionPatient, ImageOrientationPatient and
  PixelSpacing (DICOM patient space, LPS+ mm), turned into RAS+ mm and then into NIfTI
  voxel indices (i, j, k) through the inverse of the NIfTI affine. Nothing is assumed
  about dcm2niix's slice order or row flip;
* before anything is written, the stored pixels of every frame are compared with the
  NIfTI voxels they map to: a flipped or misplaced mapping fails loudly
  (:class:`DefacedDicomError`), it never writes a mask at the wrong place;
* removed pixels get the background in stored units (RescaleSlope / RescaleIntercept
  undone); every other pixel keeps its stored bytes;
* new keyed UIDs for the series and every instance (StudyInstanceUID and
  FrameOfReferenceUID are kept), ImageType DERIVED, DerivationDescription,
  DeidentificationMethod and the code 113102 (Clean Recognizable Visual Features Option)
  in DeidentificationMethodCodeSequence.

>>> from neurodeid.deface.dicom import write_defaced_series  # doctest: +SKIP
>>> summary = write_defaced_series(files, "image.nii.gz", "image_removal.nii.gz", out, key)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence as _Seq
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from neurodeid import __version__
from neurodeid.keys import remap_uid
from neurodeid.results import Check, StageResult, StageStatus, write_stage_result

__all__ = [
    "CLEAN_VISUAL_FEATURES_CODE",
    "DefacedDicomError",
    "FrameGeometry",
    "NiftiGrid",
    "apply_removal",
    "frame_geometries",
    "frame_removal_mask",
    "mark_defaced",
    "pixel_voxel_coordinates",
    "stored_background",
    "write_defaced_series",
]

#: DICOM CID 7050 code of the PS3.15 Clean Recognizable Visual Features Option.
CLEAN_VISUAL_FEATURES_CODE = ("113102", "DCM", "Clean Recognizable Visual Features Option")

#: Added to DeidentificationMethod (LO, at most 64 characters).
METHOD_TEXT = f"neurodeid {__version__} defaced: face pixels set to background"[:64]

#: DerivationDescription (ST) of the defaced series.
DERIVATION_TEXT = (
    "Defaced by neurodeid {version}: the face removal mask computed on the NIfTI conversion was "
    "mapped back to each DICOM pixel through ImagePositionPatient/ImageOrientationPatient/"
    "PixelSpacing; removed pixels were set to the background value ({pixels} pixels); all other "
    "pixels are unchanged."
)

#: Suffix hashed with an original UID to make the defaced series' UIDs.
UID_SUFFIX = "/defaced"

#: CT background in HU (as :mod:`neurodeid.deface` uses for CT by default).
CT_BACKGROUND_HU = -1000.0

_TMP_PREFIX = ".neurodeid-defaced-tmp-"

#: Encapsulated transfer syntaxes that are lossless: kept when pydicom has an encoder for
#: them (RLE always; JPEG-LS with pyjpegls; JPEG 2000 with pylibjpeg-openjpeg). Others
#: (lossy ones, JPEG Lossless Process 14 which pydicom cannot encode) are written as
#: Explicit VR Little Endian.
LOSSLESS_ENCAPSULATED = frozenset({
    "1.2.840.10008.1.2.5",      # RLE Lossless
    "1.2.840.10008.1.2.4.57",   # JPEG Lossless, Non-Hierarchical (Process 14)
    "1.2.840.10008.1.2.4.70",   # JPEG Lossless, Process 14, Selection Value 1
    "1.2.840.10008.1.2.4.80",   # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.90",   # JPEG 2000 (Lossless Only)
    "1.2.840.10008.1.2.4.201",  # HTJ2K (Lossless Only)
    "1.2.840.10008.1.2.4.202",  # HTJ2K with RPCL Options (Lossless Only)
})


class DefacedDicomError(ValueError):
    """The defaced DICOM series cannot be written (geometry mismatch, unsupported data, ...).

    The message names the file and the reason; nothing of the series is left in the
    output folder when it is raised.
    """


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class FrameGeometry:
    """Plane geometry of one frame (one single-frame file or one frame of a multi-frame file).

    Attributes
    ----------
    path : str
        The file (for messages).
    frame : int
        Frame index in the file (0 for single-frame files).
    position : ndarray (3,)
        ImagePositionPatient: centre of pixel (row 0, column 0), LPS+ mm.
    row_cosine : ndarray (3,)
        Direction of increasing column index (along a row), LPS+ unit vector.
    col_cosine : ndarray (3,)
        Direction of increasing row index (down a column), LPS+ unit vector.
    spacing : tuple of float
        PixelSpacing as stored: (distance between rows, distance between columns), mm.
    rows, cols : int
        Frame size in pixels.
    slope, intercept : float
        Rescale of the frame's stored values (1 and 0 when absent).
    """

    path: str
    frame: int
    position: np.ndarray
    row_cosine: np.ndarray
    col_cosine: np.ndarray
    spacing: tuple
    rows: int
    cols: int
    slope: float = 1.0
    intercept: float = 0.0


def _item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _fg_value(groups: list, seq_kw: str, kw: str):
    """First ``kw`` found in ``seq_kw`` of the given functional group items (per-frame first)."""
    for g in groups:
        if g is None:
            continue
        it = _item(g, seq_kw)
        if it is not None and kw in it and it[kw].value not in (None, ""):
            return it[kw].value
    return None


def _floats(value, n: int, path, frame, what: str) -> np.ndarray:
    try:
        out = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        out = np.zeros(0)
    if out.size != n or not np.all(np.isfinite(out)):
        raise DefacedDicomError(
            f"{path} (frame {frame}): {what} is missing or invalid ({value!r}); the pixels cannot be "
            "placed in space, so the series cannot be defaced"
        )
    return out


def _make_geometry(path, frame, ipp, iop, ps, rows, cols, slope, inter) -> FrameGeometry:
    ipp = _floats(ipp, 3, path, frame, "ImagePositionPatient")
    iop = _floats(iop, 6, path, frame, "ImageOrientationPatient")
    ps = _floats(ps, 2, path, frame, "PixelSpacing")
    r, c = iop[:3], iop[3:]
    if np.linalg.norm(r) < 1e-6 or np.linalg.norm(c) < 1e-6 or np.any(ps <= 0):
        raise DefacedDicomError(f"{path} (frame {frame}): degenerate ImageOrientationPatient or PixelSpacing")
    return FrameGeometry(
        path=str(path),
        frame=frame,
        position=ipp,
        row_cosine=r / np.linalg.norm(r),
        col_cosine=c / np.linalg.norm(c),
        spacing=(float(ps[0]), float(ps[1])),
        rows=int(rows),
        cols=int(cols),
        slope=float(slope) if slope not in (None, "") else 1.0,
        intercept=float(inter) if inter not in (None, "") else 0.0,
    )


def frame_geometries(ds: Dataset, path="<dataset>", colour: bool = False) -> list[FrameGeometry]:
    """Geometry of every frame of ``ds``.

    Single-frame images use the top-level ImagePositionPatient / ImageOrientationPatient /
    PixelSpacing / RescaleSlope / RescaleIntercept. Enhanced multi-frame images use the
    per-frame functional groups (PlanePositionSequence, PlaneOrientationSequence,
    PixelMeasuresSequence, PixelValueTransformationSequence), falling back to the shared
    functional groups, then to the top level. ``colour``: a colour image's geometry is
    given too (it cannot be defaced, but its frames can be placed).

    Raises
    ------
    DefacedDicomError
        Colour or missing geometry, or a multi-frame file without per-frame geometry.
    """
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1 and not colour:
        raise DefacedDicomError(f"{path}: colour image (SamplesPerPixel {ds.SamplesPerPixel}); only greyscale volumes can be defaced")
    if "MOSAIC" in [str(v).upper() for v in (ds.get("ImageType") or [])]:
        raise DefacedDicomError(
            f"{path}: Siemens mosaic (ImageType MOSAIC): its tiles are slices of an EPI volume, not a "
            "structural head image; defacing mosaics is not supported"
        )
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    per = ds.get("PerFrameFunctionalGroupsSequence")
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    if per is None:
        if n_frames != 1:
            raise DefacedDicomError(
                f"{path}: {n_frames} frames without PerFrameFunctionalGroupsSequence; the per-frame "
                "geometry of this multi-frame object is unknown, so it cannot be defaced"
            )
        return [
            _make_geometry(
                path, 0, ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient"), ds.get("PixelSpacing"),
                rows, cols, ds.get("RescaleSlope"), ds.get("RescaleIntercept"),
            )
        ]
    if len(per) != n_frames:
        raise DefacedDicomError(
            f"{path}: PerFrameFunctionalGroupsSequence has {len(per)} items for {n_frames} frames"
        )
    out = []
    for f, item in enumerate(per):
        groups = [item, shared]
        ipp = _fg_value(groups, "PlanePositionSequence", "ImagePositionPatient")
        iop = _fg_value(groups, "PlaneOrientationSequence", "ImageOrientationPatient")
        ps = _fg_value(groups, "PixelMeasuresSequence", "PixelSpacing")
        slope = _fg_value(groups, "PixelValueTransformationSequence", "RescaleSlope")
        inter = _fg_value(groups, "PixelValueTransformationSequence", "RescaleIntercept")
        out.append(
            _make_geometry(
                path, f,
                ipp if ipp is not None else ds.get("ImagePositionPatient"),
                iop if iop is not None else ds.get("ImageOrientationPatient"),
                ps if ps is not None else ds.get("PixelSpacing"),
                rows, cols,
                slope if slope is not None else ds.get("RescaleSlope"),
                inter if inter is not None else ds.get("RescaleIntercept"),
            )
        )
    return out


#: LPS+ <-> RAS+ (both directions): negate x and y.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def pixel_voxel_coordinates(geom: FrameGeometry, affine: np.ndarray) -> np.ndarray:
    """Continuous NIfTI voxel coordinates of every pixel centre of one frame.

    Parameters
    ----------
    geom : FrameGeometry
        Pixel (row r, column c) is at ``position + c * spacing[1] * row_cosine +
        r * spacing[0] * col_cosine`` (LPS+ mm).
    affine : ndarray (4, 4)
        NIfTI voxel (i, j, k) -> RAS+ mm.

    Returns
    -------
    ndarray (rows, cols, 3)
        Voxel coordinates (i, j, k), float; integers at voxel centres.
    """
    inv = np.linalg.inv(np.asarray(affine, dtype=float))
    m, t = inv[:3, :3] @ _LPS_TO_RAS, inv[:3, 3]
    v0 = m @ geom.position + t
    d_row = m @ (geom.col_cosine * geom.spacing[0])  # one step down a column (row index + 1)
    d_col = m @ (geom.row_cosine * geom.spacing[1])  # one step along a row (column index + 1)
    r = np.arange(geom.rows, dtype=float)[:, None, None]
    c = np.arange(geom.cols, dtype=float)[None, :, None]
    return v0 + r * d_row + c * d_col


@dataclass
class NiftiGrid:
    """One NIfTI image and its removal mask, as the mapping needs them.

    Attributes
    ----------
    name : str
        File name (for messages).
    affine : ndarray (4, 4)
        Voxel (i, j, k) -> RAS+ mm.
    raw : ndarray (X, Y, Z[, T])
        Stored (unscaled) voxel values.
    slope, inter : float
        NIfTI scaling (scaled = raw * slope + inter).
    removal : ndarray bool (X, Y, Z)
        True = removed (face).
    """

    name: str
    affine: np.ndarray
    raw: np.ndarray
    slope: float
    inter: float
    removal: np.ndarray

    @property
    def shape(self) -> tuple:
        return tuple(self.removal.shape)

    def scaled_min(self) -> float:
        """Minimum scaled value of the first volume (the background :mod:`neurodeid.deface` uses for MR)."""
        vol = self.raw if self.raw.ndim == 3 else self.raw.reshape(self.raw.shape[:3] + (-1,))[..., 0]
        return float(vol.min()) * self.slope + self.inter


def load_grid(nifti_original, removal_mask) -> NiftiGrid:
    """Read a converted NIfTI and its removal mask (thin I/O edge).

    Raises
    ------
    DefacedDicomError
        Unreadable files, or a mask whose shape or affine differs from the image's.
    """
    import nibabel as nib

    try:
        img = nib.load(str(nifti_original))
        msk = nib.load(str(removal_mask))
    except Exception as exc:  # nibabel raises many types
        raise DefacedDicomError(f"{nifti_original} / {removal_mask}: cannot read as NIfTI ({exc})") from exc
    if tuple(msk.shape[:3]) != tuple(img.shape[:3]) or msk.ndim != 3:
        raise DefacedDicomError(
            f"{removal_mask}: mask shape {msk.shape} does not match the image {nifti_original} {img.shape}; "
            "give the removal mask written for this image"
        )
    if not np.allclose(msk.affine, img.affine, atol=1e-4):
        raise DefacedDicomError(
            f"{removal_mask}: mask affine differs from the image {nifti_original}; give the mask on the image grid"
        )
    slope = float(getattr(img.dataobj, "slope", 1.0))
    inter = float(getattr(img.dataobj, "inter", 0.0))
    slope = 1.0 if not np.isfinite(slope) or slope == 0 else slope
    inter = 0.0 if not np.isfinite(inter) else inter
    raw = np.asarray(img.dataobj.get_unscaled())
    return NiftiGrid(Path(nifti_original).name, np.asarray(img.affine, float), raw, slope, inter,
                     np.asarray(msk.dataobj) > 0)


def _inside(coords: np.ndarray, shape, eps: float = 1e-3) -> bool:
    hi = np.asarray(shape[:3], dtype=float) - 0.5 + eps
    return bool(np.all(coords >= -0.5 - eps) and np.all(coords <= hi))


def frame_removal_mask(coords: np.ndarray, removal: np.ndarray, tol_vox: float = 0.1):
    """Removal mask of one frame from voxel coordinates.

    Parameters
    ----------
    coords : ndarray (rows, cols, 3)
        From :func:`pixel_voxel_coordinates`; must lie inside the grid (within half a voxel).
    removal : ndarray bool (X, Y, Z)
    tol_vox : float
        When every pixel centre is within ``tol_vox`` of a voxel centre the grids are
        aligned and each pixel takes its voxel's value ("exact"). Otherwise (a resampled
        grid, e.g. gantry tilt) a pixel is removed when any of the up to 8 voxels around it
        is ("conservative": never keeps a face voxel, may remove a little more).

    Returns
    -------
    mask : ndarray bool (rows, cols)
    mode : {"exact", "conservative"}
    offset : float
        Largest distance of a pixel centre from its nearest voxel centre (voxels, per axis).
    index : tuple of int arrays or None
        Nearest-voxel indices (i, j, k), each (rows, cols), for the exact mode.
    """
    near = np.rint(coords)
    offset = float(np.max(np.abs(coords - near))) if coords.size else 0.0
    shape = np.array(removal.shape)
    if offset <= tol_vox:
        idx = np.clip(near.astype(np.int64), 0, shape - 1)
        index = (idx[..., 0], idx[..., 1], idx[..., 2])
        return removal[index], "exact", offset, index
    lo = np.floor(coords).astype(np.int64)
    out = np.zeros(coords.shape[:2], dtype=bool)
    for corner in np.ndindex(2, 2, 2):
        idx = lo + np.array(corner)
        ok = np.all((idx >= 0) & (idx < shape), axis=-1)
        idx = np.clip(idx, 0, shape - 1)
        out |= removal[idx[..., 0], idx[..., 1], idx[..., 2]] & ok
    return out, "conservative", offset, None


# --------------------------------------------------------------------------- pixel values


def _stored_range(ds: Dataset) -> tuple[int, int]:
    bs = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(1 << (bs - 1)), (1 << (bs - 1)) - 1
    return 0, (1 << bs) - 1


def stored_background(value: float, slope: float, intercept: float, lo: int, hi: int) -> int | None:
    """Stored value whose rescaled value is nearest to ``value`` (scaled units), or None when
    it falls outside the stored range ``[lo, hi]``."""
    raw = int(np.rint((value - intercept) / (slope or 1.0)))
    return raw if lo <= raw <= hi else None


def _raw_view(ds: Dataset, n: int) -> tuple[np.ndarray, np.dtype]:
    """Writable copy of the first ``n`` stored words of uncompressed PixelData, and its dtype."""
    ba = int(ds.BitsAllocated)
    if ba not in (8, 16, 32):
        raise DefacedDicomError(f"BitsAllocated {ba} is not supported")
    ts = UID(ds.file_meta.TransferSyntaxUID)
    order = ">" if ts == pydicom.uid.ExplicitVRBigEndian else "<"
    dt = np.dtype(f"{order}u{ba // 8}")
    buf = np.frombuffer(ds.PixelData, dtype=np.uint8)
    if buf.size < n * dt.itemsize:
        raise DefacedDicomError(f"PixelData holds {buf.size} bytes, fewer than the {n * dt.itemsize} its header needs")
    return buf.copy(), dt


def apply_removal(ds: Dataset, removal: np.ndarray, background: _Seq[int], path="<dataset>") -> dict:
    """Set the removed pixels of ``ds`` to the background, in place.

    Parameters
    ----------
    ds : Dataset
        A greyscale image (single- or multi-frame).
    removal : ndarray bool (frames, rows, cols)
    background : sequence of int
        Stored background value per frame.

    Uncompressed pixel data is edited word by word in its stored bytes (every other byte
    stays bit-identical, unused high bits included). Encapsulated pixel data is decoded,
    edited and re-encoded losslessly in the same transfer syntax when pydicom has an encoder
    for it (RLE always; JPEG-LS and JPEG 2000 lossless with pyjpegls / pylibjpeg-openjpeg),
    otherwise stored uncompressed as Explicit VR Little Endian.

    Returns
    -------
    dict
        ``pixels_removed`` (pixels inside the mask), ``pixels_changed`` (of those, the ones
        whose value changed), ``transfer_syntax_in`` / ``transfer_syntax_out``.
    """
    ts_in = UID(ds.file_meta.TransferSyntaxUID)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    before = ds.pixel_array.reshape(n_frames, rows, cols)
    bg = np.asarray(background, dtype=np.int64).reshape(n_frames, 1, 1)
    want = np.where(removal, bg, before.astype(np.int64))
    changed = int(np.count_nonzero(want != before))
    info = {"pixels_removed": int(np.count_nonzero(removal)), "pixels_changed": changed,
            "transfer_syntax_in": str(ts_in), "transfer_syntax_out": str(ts_in)}
    if not ts_in.is_encapsulated:
        n = n_frames * rows * cols
        buf, dt = _raw_view(ds, n)
        words = buf[: n * dt.itemsize].view(dt).reshape(n_frames, rows, cols)
        mask_bits = (1 << (8 * dt.itemsize)) - 1
        bgw = (bg & mask_bits).astype(dt)  # two's complement over BitsAllocated
        words[...] = np.where(removal, bgw, words)
        ds.PixelData = buf.tobytes()
    else:
        arr = want.astype(before.dtype).reshape(before.shape if n_frames > 1 else (rows, cols))
        encoder_ok = False
        if ts_in in LOSSLESS_ENCAPSULATED:
            try:
                from pydicom.pixels import get_encoder

                encoder_ok = get_encoder(ts_in).is_available
            except Exception:  # noqa: BLE001 - no encoder implemented for this syntax
                encoder_ok = False
        if encoder_ok:
            ds.compress(ts_in, arr, generate_instance_uid=False)
        else:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.PixelData = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"))).tobytes()
            ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) == 8 else "OW"
            ds["PixelData"].is_undefined_length = False
            for kw in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
                if kw in ds:
                    del ds[kw]
            if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
                ds.PhotometricInterpretation = "MONOCHROME2"
            info["transfer_syntax_out"] = str(ExplicitVRLittleEndian)
    # verify: the removed pixels hold the background, every other decoded value is unchanged
    ds._pixel_array = None
    ds._pixel_id = {}
    after = ds.pixel_array.reshape(n_frames, rows, cols)
    if not np.array_equal(after.astype(np.int64), want):
        raise DefacedDicomError(f"{path}: the re-encoded pixels do not read back as written; nothing was written")
    return info


# --------------------------------------------------------------------------- header


def _remap_references(ds: Dataset, uid_map: dict) -> None:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or []:
                _remap_references(item, uid_map)
        elif elem.keyword == "ReferencedSOPInstanceUID" and str(elem.value) in uid_map:
            elem.value = uid_map[str(elem.value)]


def _derived_image_type(values, enhanced: bool) -> list[str]:
    vals = [str(v) for v in (values or [])]
    if enhanced:  # Enhanced MR/CT: value 2 keeps its defined term
        vals = vals + [""] * max(0, 4 - len(vals))
        vals[0] = "DERIVED"
        return vals
    return ["DERIVED", "SECONDARY"] + vals[2:]


def mark_defaced(ds: Dataset, key: bytes, uid_map: dict, pixels_removed: int) -> None:
    """Give ``ds`` its defaced-series identity, in place.

    SeriesInstanceUID and SOPInstanceUID (and the file meta's MediaStorageSOPInstanceUID)
    become ``remap_uid(key, old + "/defaced")``; references to instances of the same series
    follow (``uid_map``: old SOPInstanceUID -> new). StudyInstanceUID and FrameOfReferenceUID
    are kept. ImageType (and FrameType of enhanced frames) becomes DERIVED; a
    DerivationDescription, a DeidentificationMethod value and the code 113102 in
    DeidentificationMethodCodeSequence say the face was removed; RecognizableVisualFeatures
    becomes NO.
    """
    ds.SeriesInstanceUID = remap_uid(key, str(ds.SeriesInstanceUID) + UID_SUFFIX)
    _remap_references(ds, uid_map)
    ds.SOPInstanceUID = uid_map[str(ds.SOPInstanceUID)] if str(ds.SOPInstanceUID) in uid_map else \
        remap_uid(key, str(ds.SOPInstanceUID) + UID_SUFFIX)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    enhanced = "PerFrameFunctionalGroupsSequence" in ds
    ds.ImageType = _derived_image_type(ds.get("ImageType"), enhanced)
    if enhanced:
        groups = list(ds.PerFrameFunctionalGroupsSequence) + list(ds.get("SharedFunctionalGroupsSequence") or [])
        for g in groups:
            for kw in ("MRImageFrameTypeSequence", "CTImageFrameTypeSequence"):
                for it in g.get(kw) or []:
                    if "FrameType" in it:
                        it.FrameType = _derived_image_type(it.FrameType, True)
    ds.DerivationDescription = DERIVATION_TEXT.format(version=__version__, pixels=pixels_removed)[:1024]
    methods = ds.get("DeidentificationMethod") or []
    methods = [str(m) for m in (methods if isinstance(methods, (list, pydicom.multival.MultiValue)) else [methods])]
    if METHOD_TEXT not in methods:
        methods.append(METHOD_TEXT)
    ds.DeidentificationMethod = methods
    codes = list(ds.get("DeidentificationMethodCodeSequence") or [])
    if not any(str(c.get("CodeValue", "")) == CLEAN_VISUAL_FEATURES_CODE[0]
               and str(c.get("CodingSchemeDesignator", "")) == "DCM" for c in codes):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = CLEAN_VISUAL_FEATURES_CODE
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    ds.RecognizableVisualFeatures = "NO"


# --------------------------------------------------------------------------- series


def _as_list(x) -> list:
    return [x] if isinstance(x, (str, os.PathLike)) else list(x)


def _match_values(frame: np.ndarray, geom: FrameGeometry, grid: NiftiGrid, index) -> bool:
    """Do the frame's stored pixels equal the NIfTI voxels they map to (any volume of a 4-D image)?"""
    vox = grid.raw[index]  # (rows, cols[, T])
    f = frame[..., None]
    v = vox if vox.ndim == 3 else vox[..., None]
    if np.any(np.all(v == f, axis=(0, 1))):
        return True
    scaled_d = f.astype(np.float64) * geom.slope + geom.intercept
    scaled_n = v.astype(np.float64) * grid.slope + grid.inter
    tol = 1e-3 * np.maximum(1.0, np.abs(scaled_d))
    return bool(np.any(np.all(np.abs(scaled_n - scaled_d) <= tol, axis=(0, 1))))


def write_defaced_series(
    deid_files: list[Path],
    nifti_original,
    removal_mask,
    out_dir: Path,
    key: bytes,
    *,
    background: float | None = None,
    tol_vox: float = 0.1,
    check_values: bool = True,
) -> dict:
    """Write the de-identified series ``deid_files`` again, face pixels set to background.

    Parameters
    ----------
    deid_files : list of Path
        The de-identified DICOM files of one series (read only), in output order.
    nifti_original : Path or list of Path
        The NIfTI image(s) converted from these files (before defacing). Several images
        (echoes, parts of a split series): each frame is mapped onto every image whose grid
        holds it and the removal masks are combined (union).
    removal_mask : Path or list of Path
        The matching uint8 removal masks (1 = removed) on the same grids (same order).
    out_dir : Path
        Created if needed; files are ``{n:05d}.dcm``, ``n`` from 1 in the order of
        ``deid_files``, each written atomically. Older ``NNNNN.dcm`` beyond ``n`` are removed.
    key : bytes
        The secret key: new UIDs are ``remap_uid(key, old_uid + "/defaced")`` (stable on reruns).
    background : float, optional
        Background in scaled units (e.g. HU). Default: -1000 for CT when representable in
        the stored range, else the minimum of the (first) NIfTI image, as
        :mod:`neurodeid.deface` writes it.
    tol_vox : float
        Pixel centres within this distance (voxels, per axis) of voxel centres count as
        aligned (exact mapping); otherwise the conservative mapping is used (see
        :func:`frame_removal_mask`).
    check_values : bool
        Require the stored pixels of every aligned frame to equal the NIfTI voxels they map
        to (catches flipped or shifted mappings). Keep on.

    Returns
    -------
    dict
        ``files`` (output paths), ``n_files``, ``n_frames``, ``frames_with_removal``,
        ``pixels_removed``, ``pixels_changed``, ``mapping`` ({"exact": n, "conservative": n}),
        ``max_offset_vox``, ``background`` (scaled), ``transfer_syntax`` ({in -> out: files}),
        ``series_instance_uid`` (new).

    Raises
    ------
    DefacedDicomError
        A frame whose pixels fall outside every NIfTI grid by more than half a voxel, a
        shape mismatch, pixels that differ from the NIfTI voxels they map to, missing
        geometry, colour images, an undecodable transfer syntax. Nothing is written then
        (temporary files are removed; outputs of an earlier run are left as they were).
    """
    files = [Path(f) for f in deid_files]
    if not files:
        raise DefacedDicomError("write_defaced_series: no DICOM files given")
    niftis, masks = _as_list(nifti_original), _as_list(removal_mask)
    if len(niftis) != len(masks) or not niftis:
        raise DefacedDicomError(f"give one removal mask per NIfTI image (got {len(niftis)} images, {len(masks)} masks)")
    grids = [load_grid(n, m) for n, m in zip(niftis, masks)]

    # pass 1: headers only -> geometry, mapping, UID map (fails before anything is written)
    plans = []
    uid_map: dict[str, str] = {}
    series_uids: set[str] = set()
    for path in files:
        try:
            hdr = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:
            raise DefacedDicomError(f"{path}: not readable as DICOM ({exc})") from exc
        if "SOPInstanceUID" not in hdr or "SeriesInstanceUID" not in hdr:
            raise DefacedDicomError(f"{path}: no SOPInstanceUID/SeriesInstanceUID; not an image instance")
        uid_map[str(hdr.SOPInstanceUID)] = remap_uid(key, str(hdr.SOPInstanceUID) + UID_SUFFIX)
        frames = []
        for g in frame_geometries(hdr, path):
            hits = []
            for grid in grids:
                coords = pixel_voxel_coordinates(g, grid.affine)
                if _inside(coords, grid.shape):
                    hits.append((grid, frame_removal_mask(coords, grid.removal, tol_vox)))
            if not hits:
                far = pixel_voxel_coordinates(g, grids[0].affine)
                raise DefacedDicomError(
                    f"{path} (frame {g.frame}): its pixels fall outside the NIfTI grid {grids[0].name} "
                    f"{grids[0].shape} by more than half a voxel (voxel coordinates "
                    f"{np.round(far.reshape(-1, 3).min(0), 2).tolist()}..{np.round(far.reshape(-1, 3).max(0), 2).tolist()}); "
                    "the image was not converted from this series, or the series holds other stacks"
                )
            frames.append((g, hits))
        series_uids.add(str(hdr.SeriesInstanceUID))
        plans.append((path, hdr.get("Modality", ""), frames))
    if len(series_uids) != 1:
        raise DefacedDicomError(
            f"the {len(files)} files starting {files[0]} belong to {len(series_uids)} series; give one series"
        )

    # background (scaled units)
    modality = str(plans[0][1]).upper()
    mr_bg = grids[0].scaled_min()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staged: list[Path] = []
    summary = {"files": [], "n_files": len(files), "n_frames": 0, "frames_with_removal": 0,
               "pixels_removed": 0, "pixels_changed": 0, "mapping": {"exact": 0, "conservative": 0},
               "max_offset_vox": 0.0, "background": None, "transfer_syntax": {}, "series_instance_uid": None}
    try:
        for n, (path, _mod, frames) in enumerate(plans, start=1):
            ds = pydicom.dcmread(path)
            if "PixelData" not in ds:
                raise DefacedDicomError(f"{path}: no PixelData (float or double pixel data is not supported)")
            lo, hi = _stored_range(ds)
            try:
                stored = ds.pixel_array
            except Exception as exc:
                raise DefacedDicomError(
                    f"{path}: pixel data in {UID(ds.file_meta.TransferSyntaxUID).name} cannot be decoded here "
                    f"({type(exc).__name__}: {str(exc)[:160]}); install a pydicom decoder (pylibjpeg, pyjpegls)"
                ) from exc
            stored = stored.reshape(len(frames), int(ds.Rows), int(ds.Columns))
            removal = np.zeros(stored.shape, dtype=bool)
            bgs = []
            for fi, (g, hits) in enumerate(frames):
                matched = False
                for grid, (m, mode, offset, index) in hits:
                    removal[fi] |= m
                    summary["mapping"][mode] += 1
                    summary["max_offset_vox"] = max(summary["max_offset_vox"], round(offset, 4))
                    if mode == "conservative" or not check_values or _match_values(stored[fi], g, grid, index):
                        matched = True
                if not matched:
                    raise DefacedDicomError(
                        f"{path} (frame {g.frame}): its stored pixels differ from the voxels of "
                        f"{', '.join(h[0].name for h in hits)} they map to (flipped, shifted or another image); "
                        "nothing was written"
                    )
                scaled_bg = background
                if scaled_bg is None:
                    scaled_bg = CT_BACKGROUND_HU if modality == "CT" else mr_bg
                b = stored_background(scaled_bg, g.slope, g.intercept, lo, hi)
                if b is None and background is None and modality == "CT":
                    scaled_bg = mr_bg
                    b = stored_background(scaled_bg, g.slope, g.intercept, lo, hi)
                if b is None:
                    raise DefacedDicomError(
                        f"{path} (frame {g.frame}): background {scaled_bg:g} is not representable in the "
                        f"stored range [{lo}, {hi}] (slope {g.slope:g}, intercept {g.intercept:g})"
                    )
                summary["background"] = scaled_bg
                bgs.append(b)
                summary["frames_with_removal"] += int(removal[fi].any())
            summary["n_frames"] += len(frames)
            try:
                info = apply_removal(ds, removal, bgs, path)
            except DefacedDicomError as exc:
                if str(path) in str(exc):
                    raise
                raise DefacedDicomError(f"{path}: {exc}") from exc
            summary["pixels_removed"] += info["pixels_removed"]
            summary["pixels_changed"] += info["pixels_changed"]
            tkey = f"{info['transfer_syntax_in']} -> {info['transfer_syntax_out']}"
            summary["transfer_syntax"][tkey] = summary["transfer_syntax"].get(tkey, 0) + 1
            mark_defaced(ds, key, uid_map, info["pixels_removed"])
            summary["series_instance_uid"] = str(ds.SeriesInstanceUID)
            tmp = out_dir / f"{_TMP_PREFIX}{os.getpid()}-{n:05d}.dcm"
            staged.append(tmp)
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        finals = []
        for n, tmp in enumerate(staged, start=1):
            final = out_dir / f"{n:05d}.dcm"
            os.replace(tmp, final)
            finals.append(str(final))
        staged = []
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
    for p in out_dir.iterdir():
        stem = p.name[:-4] if p.name.endswith(".dcm") else ""
        if len(stem) == 5 and stem.isdigit() and int(stem) > len(files):
            p.unlink()
    summary["files"] = finals
    return summary


def deface_dicom_series(deid_dir: str | os.PathLike, convert_dir: str | os.PathLike,
                        deface_dir: str | os.PathLike, morphometry_dir: str | os.PathLike,
                        out_dir: str | os.PathLike, result_json: str | os.PathLike, key: bytes) -> StageResult:
    """One job of the defaced-DICOM stage: the de-identified series written again with the
    defaced pixels, or withheld with the reason; the result written to ``result_json``.

    Release policy decided here: the series is withheld (nothing left in ``out_dir``) when
    it has no converted image, when an image of it failed defacing (no removal mask: its
    DICOM keeps the face), when a morphometry table of it says FAIL, or when the rewrite
    itself fails.

    Returns
    -------
    StageResult
        Status ``ok`` with the ``summary`` of :func:`write_defaced_series` as its measure, or
        ``failed`` with the reason.
    """
    from ..failure import failure_reason
    from ..morphometry import read_tsv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = sorted(Path(convert_dir).glob("*.nii.gz"))
    masks = [Path(deface_dir) / f"{im.name[: -len('.nii.gz')]}_removal.nii.gz" for im in images]
    reason = ""
    if not images:
        reason = "no converted image"
    elif any(not m.is_file() for m in masks):
        reason = "defacing failed for an image of this series: its DICOM keeps the face and is withheld"
    else:
        for table in sorted(Path(morphometry_dir).glob("*.tsv")):
            rows = read_tsv(table)
            if rows and rows[0].get("verdict") == Check.FAIL:
                reason = f"morphometry FAIL for {table.stem}: the defaced DICOM is withheld"
    result = StageResult("deface_dicom", StageStatus.FAILED, reason)
    if not reason:
        try:
            summary = write_defaced_series(sorted(Path(deid_dir).glob("*.dcm")), images, masks, out_dir, key)
            result = StageResult("deface_dicom", StageStatus.OK, measures={"summary": summary})
        except Exception as exc:  # noqa: BLE001 - DefacedDicomError or a crash: the series is
            # withheld, loudly; the run goes on
            result = StageResult("deface_dicom", StageStatus.FAILED, failure_reason(exc))
    if result.status != StageStatus.OK:
        for f in out_dir.glob("*.dcm"):
            f.unlink()
    write_stage_result(result_json, result)
    return result
