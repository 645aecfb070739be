"""Read the few DICOM header fields the geometry check needs, fast and independently of dcm2niix.

Only header bytes are read (pixel data never). Positions and orientations are in
the DICOM patient coordinate system (LPS+, mm): x to the patient's Left, y to
Posterior, z to Superior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.filereader import read_partial

from ._fastheader import fast_geometry_fields
from .errors import GeometryError

__all__ = ["SliceHeader", "read_slice_headers", "mosaic_slice_geometry"]

_STOP_AFTER = 0x00280030  # PixelSpacing: every field we need sorts before it


@dataclass
class SliceHeader:
    """Geometry-relevant header fields of one image (one file, or one frame of a multi-frame file).

    Attributes
    ----------
    path : Path
        The DICOM file.
    frame : int
        Frame index inside ``path`` (0 for single-frame files).
    position : ndarray (3,)
        ImagePositionPatient, LPS mm: centre of the first transmitted pixel (row 0, column 0).
        For Siemens mosaics this is the corrected position of the first tile (see
        :func:`mosaic_slice_geometry`).
    row_cosine, col_cosine : ndarray (3,)
        ImageOrientationPatient split in two: direction of increasing column index
        (along a row) and of increasing row index (down a column), LPS unit vectors.
    spacing : tuple (row spacing, column spacing) in mm, i.e. PixelSpacing as stored.
    rows, cols : int
        Image size in pixels (of one tile for mosaics).
    """

    path: Path
    frame: int
    position: np.ndarray | None
    row_cosine: np.ndarray | None
    col_cosine: np.ndarray | None
    spacing: tuple[float, float] | None
    rows: int
    cols: int
    instance: int = 0
    echo: int = 0
    image_type: tuple[str, ...] = ()
    tilt_deg: float = 0.0
    mosaic_n: int = 0
    slice_thickness: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def normal(self) -> np.ndarray:
        """Slice normal row_cosine x col_cosine (LPS unit vector)."""
        return np.cross(self.row_cosine, self.col_cosine)


def _floats(value, n):
    if value is None:
        return None
    try:
        out = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return out if out.size == n else None


def _stop(tag, vr, length):
    return tag > _STOP_AFTER


def _scalar(v):
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return v[0] if len(v) else None
    return v


def _num(v, kind=float, default=None):
    v = _scalar(v)
    if v is None or v == "":
        return default
    try:
        return kind(float(v)) if kind is int else kind(v)
    except (TypeError, ValueError):
        return default


def _from_dataset(path: Path, ds, frame: int = 0) -> SliceHeader:
    """``ds``: a pydicom Dataset or the dict of :func:`fast_geometry_fields`."""
    ipp = _floats(ds.get("ImagePositionPatient"), 3)
    iop = _floats(ds.get("ImageOrientationPatient"), 6)
    ps = _floats(ds.get("PixelSpacing"), 2)
    image_type = tuple(str(v).upper() for v in (ds.get("ImageType") or ()))
    return SliceHeader(
        path=path,
        frame=frame,
        position=ipp,
        row_cosine=None if iop is None else iop[:3] / np.linalg.norm(iop[:3]),
        col_cosine=None if iop is None else iop[3:] / np.linalg.norm(iop[3:]),
        spacing=None if ps is None else (float(ps[0]), float(ps[1])),
        rows=_num(ds.get("Rows"), int, 0),
        cols=_num(ds.get("Columns"), int, 0),
        instance=_num(ds.get("InstanceNumber"), int, 0),
        echo=_num(ds.get("EchoNumbers"), int, 0),
        image_type=image_type,
        tilt_deg=_num(ds.get("GantryDetectorTilt"), float, 0.0),
        slice_thickness=_num(ds.get("SliceThickness"), float, None),
    )


def _multiframe(path: Path) -> list[SliceHeader]:
    """One SliceHeader per frame of a multi-frame image.

    Enhanced objects give each frame's position in PerFrameFunctionalGroupsSequence; RT Dose
    style objects give GridFrameOffsetVector (mm along the slice normal from
    ImagePositionPatient). Anything else has no per-frame geometry.
    """
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    if "PerFrameFunctionalGroupsSequence" in ds:
        return _enhanced_frames(path, ds)
    offsets = ds.get("GridFrameOffsetVector")
    nframes = int(ds.get("NumberOfFrames") or 1)
    if offsets is not None and "ImagePositionPatient" in ds and len(offsets) == nframes:
        base = _from_dataset(path, ds)
        out = []
        for i, off in enumerate(offsets):
            h = _from_dataset(path, ds, frame=i)
            h.position = base.position + float(off) * base.normal
            h.instance = i + 1
            out.append(h)
        return out
    raise GeometryError(
        f"{path}: multi-frame image ({nframes} frames) without per-frame positions "
        "(no PerFrameFunctionalGroupsSequence or GridFrameOffsetVector); it is not a volume "
        "neurodeid can check, keep it as DICOM"
    )


def _enhanced_frames(path: Path, ds) -> list[SliceHeader]:
    """One SliceHeader per frame of an enhanced (multi-frame) image."""
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    out = []
    for i, fg in enumerate(ds.get("PerFrameFunctionalGroupsSequence") or []):

        def pick(seq_kw, kw, fg=fg):
            for grp in (fg, shared):
                if grp is not None and seq_kw in grp and len(grp[seq_kw].value):
                    item = grp[seq_kw].value[0]
                    if kw in item:
                        return item[kw].value
            return None

        ipp = _floats(pick("PlanePositionSequence", "ImagePositionPatient"), 3)
        iop = _floats(pick("PlaneOrientationSequence", "ImageOrientationPatient"), 6)
        ps = _floats(pick("PixelMeasuresSequence", "PixelSpacing"), 2)
        thick = pick("PixelMeasuresSequence", "SliceThickness")
        out.append(
            SliceHeader(
                path=path,
                frame=i,
                position=ipp,
                row_cosine=None if iop is None else iop[:3] / np.linalg.norm(iop[:3]),
                col_cosine=None if iop is None else iop[3:] / np.linalg.norm(iop[3:]),
                spacing=None if ps is None else (float(ps[0]), float(ps[1])),
                rows=int(ds.get("Rows") or 0),
                cols=int(ds.get("Columns") or 0),
                instance=i + 1,
                image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or ())),
                slice_thickness=None if thick is None else float(thick),
            )
        )
    return out


def mosaic_slice_geometry(ds) -> tuple[int, np.ndarray, np.ndarray] | None:
    """Tile count, first-tile position and slice normal of a Siemens mosaic.

    Parameters
    ----------
    ds : pydicom.Dataset
        A mosaic image header including the Siemens CSA image header (0029,xx10).

    Returns
    -------
    (n_tiles, position, normal) or None when ``ds`` is not a mosaic.
        ``position`` is the LPS mm centre of pixel (0, 0) of the first tile, corrected
        from the mosaic's ImagePositionPatient (which refers to the whole tiled image);
        ``normal`` is the CSA SliceNormalVector (LPS unit vector), the direction in which
        tiles are stacked.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel warns that its DICOM readers are experimental
        from nibabel.nicom import csareader

    image_type = [str(v).upper() for v in (ds.get("ImageType") or ())]
    if "MOSAIC" not in image_type:
        return None
    try:
        csa = csareader.get_csa_header(ds, "image")
        n = csareader.get_n_mosaic(csa)
        normal = csareader.get_slice_normal(csa)
    except Exception:  # noqa: BLE001 - any CSA problem means we cannot check this mosaic
        csa, n, normal = None, None, None
    if not n:
        raise GeometryError(
            f"{ds.filename}: ImageType says MOSAIC but the Siemens CSA image header "
            "(0029,1010) with NumberOfImagesInMosaic is missing; keep that private element "
            "in the de-identification safe-private list so mosaics can be converted"
        )
    n = int(n)
    tiles_per_side = int(np.ceil(np.sqrt(n)))
    iop = _floats(ds.ImageOrientationPatient, 6)
    u, v = iop[:3], iop[3:]
    dy, dx = (float(x) for x in ds.PixelSpacing)
    md_rows, md_cols = int(ds.Rows), int(ds.Columns)
    rows, cols = md_rows // tiles_per_side, md_cols // tiles_per_side
    ipp = _floats(ds.ImagePositionPatient, 3)
    pos = ipp + u * dx * (md_cols - cols) / 2.0 + v * dy * (md_rows - rows) / 2.0
    if normal is None:
        normal = np.cross(u, v)
    return n, pos, np.asarray(normal, dtype=float)


def read_slice_headers(files: list[Path]) -> list[SliceHeader]:
    """Read geometry fields of every image of a series (headers only).

    Parameters
    ----------
    files : list of Path
        The DICOM files of one series. Files pydicom cannot read as DICOM are ignored
        (dcm2niix ignores them too).

    Returns
    -------
    list of SliceHeader
        One per image (per frame for enhanced multi-frame files).
    """
    out: list[SliceHeader] = []
    mosaic_cache: dict = {}
    for f in files:
        f = Path(f)
        ds = fast_geometry_fields(f)
        if ds is None or _num(ds.get("NumberOfFrames"), int, 1) > 1:
            try:
                with open(f, "rb") as fp:
                    ds = read_partial(fp, stop_when=_stop)
            except Exception:  # noqa: BLE001 - not DICOM: skipped, as dcm2niix does
                continue
            if "Rows" not in ds and "ImagePositionPatient" not in ds and "SOPClassUID" not in ds:
                continue
        elif not ds.get("Rows"):
            continue
        nframes = _num(ds.get("NumberOfFrames"), int, 1)
        image_type = [str(v).upper() for v in (ds.get("ImageType") or ())]
        if nframes > 1:
            out.extend(_multiframe(f))
            continue
        h = _from_dataset(f, ds)
        if "MOSAIC" in image_type:
            key = (h.rows, h.cols, tuple(np.round(h.row_cosine, 5)), tuple(np.round(h.col_cosine, 5)))
            if key not in mosaic_cache:  # CSA parsed once per mosaic layout (private header is large)
                full = pydicom.dcmread(f, stop_before_pixels=True)
                n, pos, normal = mosaic_slice_geometry(full)
                sbs = full.get("SpacingBetweenSlices")
                sbs = float(sbs) if sbs not in (None, "") else h.slice_thickness
                mosaic_cache[key] = (n, normal, sbs, pos - h.position)
            n, normal, sbs, shift = mosaic_cache[key]
            side = int(np.ceil(np.sqrt(n)))
            h.position = h.position + shift
            h.rows, h.cols = h.rows // side, h.cols // side
            h.mosaic_n = n
            h.extra["mosaic_normal"] = normal
            h.extra["spacing_between_slices"] = sbs
        out.append(h)
    return out
