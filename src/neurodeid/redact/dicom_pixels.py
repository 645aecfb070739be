"""DICOM pixel module in and out of the redaction engine (pure dataset functions).

Decoded pixels are written back uncompressed (Explicit VR Little Endian when
the input was encapsulated, big endian or deflated). YBR colour is decoded to
RGB and PALETTE COLOR expanded to RGB, so PhotometricInterpretation,
PlanarConfiguration (0, interleaved), BitsAllocated/Stored and NumberOfFrames
always describe the bytes that are stored.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .errors import UnsupportedImageError

#: PS3.16 CID 7050 code for the Clean Pixel Data Option of PS3.15.
CLEAN_PIXEL_CODE = ("113101", "DCM", "Clean Pixel Data Option")

_PALETTE_TAGS = (
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "AlphaPaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "AlphaPaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData", "SegmentedAlphaPaletteColorLookupTableData",
    "PaletteColorLookupTableUID",
)


def _where(ds: Dataset) -> str:
    return str(getattr(ds, "filename", None) or "the dataset")


#: Elements that hold an image: pixel data of every kind (at any depth: icon images).
_IMAGE_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009, 0x00880200})


def holds_no_image(ds: Dataset) -> bool:
    """True when ``ds`` holds no image anywhere, so there is no burned-in text to read.

    No Pixel Data, Float or Double Float Pixel Data, icon image or overlay plane data
    (60xx,3000), at any depth: a structured report, an RT structure set or plan, a
    waveform. Their text is in the header, which de-identification cleans and the
    release audit scans; an encapsulated document is replaced by de-identification
    (PS3.15 Table E.1-1: D).
    """
    if any(tag in ds._dict for tag in _IMAGE_TAGS):  # an image file: answered without a walk
        return False
    for elem in ds.iterall():
        tag = int(elem.tag)
        if tag in _IMAGE_TAGS or (0x6000 <= tag >> 16 <= 0x601E and tag & 0xFFFF == 0x3000):
            return False
    return True


def read_frames(ds: Dataset) -> tuple[np.ndarray, str]:
    """Decode the pixel data to (frames, rows, columns, samples).

    Returns
    -------
    frames : ndarray, shape (frames, rows, columns, samples)
        Stored values (rescale not applied); YBR decoded to RGB; PALETTE COLOR
        expanded to RGB through its lookup table.
    photometric : str
        The photometric interpretation of ``frames`` (MONOCHROME1,
        MONOCHROME2 or RGB).

    Raises
    ------
    UnsupportedImageError
        No pixel data, a codec missing, or a layout that cannot be written
        back (float data, more than 16 bits, other photometric values).
    """
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedImageError(f"{_where(ds)}: float pixel data is not supported; nothing was read")
        raise UnsupportedImageError(f"{_where(ds)}: no Pixel Data; nothing to redact")
    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    try:
        arr = ds.pixel_array
    except Exception as exc:  # codec errors come in many types
        ts = ds.file_meta.get("TransferSyntaxUID", "unknown") if hasattr(ds, "file_meta") else "unknown"
        raise UnsupportedImageError(
            f"{_where(ds)}: cannot decode pixel data (transfer syntax {ts}): {exc}; install the decoder "
            "pydicom names (e.g. pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg)"
        ) from exc
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1))
    if pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        spp = 3
        out_pi = "RGB"
    elif pi.startswith("YBR") or pi == "RGB":
        out_pi = "RGB"  # pydicom decodes YBR_FULL(_422), YBR_ICT/RCT to RGB
    elif pi in ("MONOCHROME1", "MONOCHROME2"):
        out_pi = pi
    else:
        raise UnsupportedImageError(f"{_where(ds)}: PhotometricInterpretation {pi!r} is not supported for redaction")
    if arr.dtype.kind not in "ui" or arr.dtype.itemsize > 4:
        raise UnsupportedImageError(
            f"{_where(ds)}: pixel dtype {arr.dtype} (BitsAllocated {ds.get('BitsAllocated')}) cannot be read for "
            "text; only 8-, 16- and 32-bit integer images are supported"
        )
    if spp == 1:
        arr = arr.reshape((nframes,) + arr.shape[-2:] + (1,))
    else:
        arr = arr.reshape((nframes,) + arr.shape[-3:])
    return np.ascontiguousarray(arr), out_pi


def ultrasound_regions(ds: Dataset) -> list[tuple[int, int, int, int]]:
    """SequenceOfUltrasoundRegions as boxes (x0, y0, x1, y1), end-exclusive pixel indices."""
    out = []
    for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
        try:
            out.append((int(item.RegionLocationMinX0), int(item.RegionLocationMinY0),
                        int(item.RegionLocationMaxX1) + 1, int(item.RegionLocationMaxY1) + 1))
        except AttributeError:
            continue
    return out


def _fits(arr: np.ndarray, bits: int) -> bool:
    if arr.dtype.kind == "u":
        return int(arr.max(initial=0)) <= 2 ** bits - 1
    return -(2 ** (bits - 1)) <= int(arr.min(initial=0)) and int(arr.max(initial=0)) <= 2 ** (bits - 1) - 1


#: Bytes per stored value that :func:`write_frames` can write back (pydicom's
#: ``set_pixel_data``); 32-bit images (an RT dose grid) are read for text and go on
#: only as they were stored.
WRITABLE_ITEMSIZES = (1, 2)


def write_frames(ds: Dataset, frames: np.ndarray, photometric: str, *, keep_pixels: bool = False) -> list[str]:
    """Store redacted frames in ``ds`` (in place) with a consistent pixel module.

    With ``keep_pixels`` (no pixel was changed) the stored pixel data are left as
    they are; the rest below still applies.

    Also sets BurnedInAnnotation NO, removes what could still show the old
    pixels (IconImageSequence, overlay planes 60xx), drops Smallest/Largest
    pixel value elements that may no longer hold, and adds the Clean Pixel
    Data Option code to DeidentificationMethodCodeSequence. SOPInstanceUID is
    kept (the de-identification step has already remapped it).

    Parameters
    ----------
    frames : ndarray, shape (frames, rows, columns, samples)
    photometric : str
        MONOCHROME1, MONOCHROME2 or RGB.

    Returns
    -------
    list of str
        Keywords/groups removed (for the result record).
    """
    if keep_pixels:
        return _mark_cleaned(ds, [])
    if frames.dtype.itemsize not in WRITABLE_ITEMSIZES:
        raise UnsupportedImageError(
            f"{_where(ds)}: its {frames.dtype.itemsize * 8}-bit pixels were changed to remove text and cannot be "
            "written back (only 8- and 16-bit images can); the image is withheld")
    had_nframes = "NumberOfFrames" in ds
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is None or ts not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        if not hasattr(ds, "file_meta"):
            from pydicom.dataset import FileMetaDataset

            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    nf = frames.shape[0]
    arr = frames[..., 0] if frames.shape[3] == 1 else frames
    if nf == 1:
        arr = arr[0]
    # keep BitsStored when the values still fit it (they do unless a numeric
    # fill or a palette expansion went beyond); else use the whole dtype
    bits = int(ds.get("BitsStored") or arr.dtype.itemsize * 8)
    if bits > arr.dtype.itemsize * 8 or not _fits(arr, bits):
        bits = arr.dtype.itemsize * 8
    removed = []
    if photometric == "RGB":
        for kw in _PALETTE_TAGS:
            if kw in ds:
                del ds[kw]
                removed.append(kw)
    ds.set_pixel_data(np.ascontiguousarray(arr), photometric, bits, generate_instance_uid=False)
    if had_nframes and "NumberOfFrames" not in ds:
        ds.NumberOfFrames = nf
    return _mark_cleaned(ds, removed)


def _mark_cleaned(ds: Dataset, removed: list[str]) -> list[str]:
    """BurnedInAnnotation NO; what could still show old pixels removed (icon, overlays,
    pixel value bounds); the Clean Pixel Data Option code added. Returns ``removed``."""
    ds.BurnedInAnnotation = "NO"
    for kw in ("IconImageSequence", "SmallestImagePixelValue", "LargestImagePixelValue",
               "SmallestPixelValueInSeries", "LargestPixelValueInSeries", "PixelPaddingRangeLimit"):
        if kw in ds:
            del ds[kw]
            removed.append(kw)
    overlay_groups = sorted({t.group for t in ds.keys() if 0x6000 <= t.group <= 0x601E and t.group % 2 == 0})
    for g in overlay_groups:
        for t in [t for t in ds.keys() if t.group == g]:
            del ds[t]
        removed.append(f"overlay group {g:04X}")
    _add_clean_pixel_code(ds)
    return removed


def _add_clean_pixel_code(ds: Dataset) -> None:
    seq = ds.get("DeidentificationMethodCodeSequence")
    if seq is None:
        seq = DicomSequence()
        ds.DeidentificationMethodCodeSequence = seq
    if any(str(i.get("CodeValue", "")) == CLEAN_PIXEL_CODE[0] for i in seq):
        return
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = CLEAN_PIXEL_CODE
    seq.append(item)


def update_geometry(ds: Dataset, window: tuple[int, int, int, int], out_rows: int, out_cols: int) -> None:
    """Make geometry tags describe a crop (and optional resample) of the image.

    Parameters
    ----------
    window : (r0, r1, c0, c1)
        Kept rows r0:r1 and columns c0:c1 of the input image (pixel indices).
    out_rows, out_cols : int
        Size of the stored output (differs from the window after a resize).

    Updates ImagePositionPatient (LPS mm, centre of the first pixel) at the top
    level and in Per-frame Plane Position items, PixelSpacing (row spacing,
    column spacing; mm) and its relatives when resampled, PixelAspectRatio,
    and SequenceOfUltrasoundRegions (locations, reference pixels and physical
    deltas; regions left wholly outside are removed).
    """
    r0, r1, c0, c1 = window
    sr = (r1 - r0) / out_rows   # input rows per output row
    sc = (c1 - c0) / out_cols

    def new_ipp(ipp, iop, ps):
        rowdir = np.array([float(v) for v in iop[:3]])
        coldir = np.array([float(v) for v in iop[3:6]])
        p = np.array([float(v) for v in ipp])
        ps_r, ps_c = float(ps[0]), float(ps[1])
        corner = p + (c0 - 0.5) * ps_c * rowdir + (r0 - 0.5) * ps_r * coldir
        q = corner + 0.5 * ps_c * sc * rowdir + 0.5 * ps_r * sr * coldir
        return [float(f"{v:.6f}") for v in q]

    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]

    def fg_value(item, seq_kw, kw):
        for src in (item, shared):
            if src is not None and seq_kw in src and len(src[seq_kw].value):
                v = src[seq_kw].value[0].get(kw)
                if v is not None:
                    return v
        return None

    ps = ds.get("PixelSpacing")
    iop = ds.get("ImageOrientationPatient")
    if "ImagePositionPatient" in ds and iop is not None and ps is not None:
        ds.ImagePositionPatient = new_ipp(ds.ImagePositionPatient, iop, ps)
    for item in ds.get("PerFrameFunctionalGroupsSequence", []) or []:
        pos = fg_value(item, "PlanePositionSequence", "ImagePositionPatient")
        ori = fg_value(item, "PlaneOrientationSequence", "ImageOrientationPatient")
        sp = fg_value(item, "PixelMeasuresSequence", "PixelSpacing")
        if pos is not None and ori is not None and sp is not None and "PlanePositionSequence" in item:
            item.PlanePositionSequence[0].ImagePositionPatient = new_ipp(pos, ori, sp)
    if sr != 1 or sc != 1:
        for holder in [ds] + [i.PixelMeasuresSequence[0] for i in
                              list(ds.get("PerFrameFunctionalGroupsSequence", []) or []) + ([shared] if shared else [])
                              if "PixelMeasuresSequence" in i]:
            for kw in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
                v = holder.get(kw)
                if v is not None and len(v) == 2:
                    setattr(holder, kw, [float(f"{float(v[0]) * sr:.6g}"), float(f"{float(v[1]) * sc:.6g}")])
        if abs(sr - sc) > 1e-9 or "PixelAspectRatio" in ds:
            par = ds.get("PixelAspectRatio", [1, 1])
            ds.PixelAspectRatio = [int(round(float(par[0]) * sr * 1000)), int(round(float(par[1]) * sc * 1000))]
    regions = ds.get("SequenceOfUltrasoundRegions")
    if regions is not None:
        keep = []
        for item in regions:
            try:
                x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
                x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
            except AttributeError:
                keep.append(item)
                continue
            nx0 = max(0, int(np.ceil((max(x0, c0) - c0) / sc)))
            ny0 = max(0, int(np.ceil((max(y0, r0) - r0) / sr)))
            nx1 = min(out_cols - 1, int(np.floor((min(x1, c1 - 1) - c0) / sc)))
            ny1 = min(out_rows - 1, int(np.floor((min(y1, r1 - 1) - r0) / sr)))
            if nx1 < nx0 or ny1 < ny0:
                continue
            if "ReferencePixelX0" in item:
                item.ReferencePixelX0 = int(round((x0 + int(item.ReferencePixelX0) - c0) / sc)) - nx0
            if "ReferencePixelY0" in item:
                item.ReferencePixelY0 = int(round((y0 + int(item.ReferencePixelY0) - r0) / sr)) - ny0
            if "PhysicalDeltaX" in item:
                item.PhysicalDeltaX = float(item.PhysicalDeltaX) * sc
            if "PhysicalDeltaY" in item:
                item.PhysicalDeltaY = float(item.PhysicalDeltaY) * sr
            item.RegionLocationMinX0, item.RegionLocationMinY0 = nx0, ny0
            item.RegionLocationMaxX1, item.RegionLocationMaxY1 = nx1, ny1
            keep.append(item)
        ds.SequenceOfUltrasoundRegions = DicomSequence(keep)
