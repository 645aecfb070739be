"""Face screen of DICOM pixel objects that no converted volume is made of (issue 18).

A series whose DICOM is released without being converted (a secondary capture, a
localizer, an unmatched series; any modality, any slice count) is judged by its pixels,
never by its description:

- **Stacks.** Every group of at least :data:`MIN_STACK` same-sized images (the files of a
  series, or the frames of a multi-frame object) is made into a volume and its head surface
  is rendered and shown to the face detector, exactly as for a converted volume
  (:func:`neurodeid.deface.face.check_volume` at
  :data:`~neurodeid.deface.face.SCREENING_LEVELS`). With plane geometry
  (ImagePositionPatient, ImageOrientationPatient, PixelSpacing, at the top level or in the
  functional groups) the volume is placed in patient space; without it (a secondary capture
  made of slices) each of the :data:`UNPLACED_ORIENTATIONS` a stack of displayed images can
  have is tried.
- **Images.** Every image and frame that is not a slice of a placed volume (a colour image,
  a lone image, the images of a secondary capture; a Siemens mosaic, whose tiles are slices)
  is also shown to the detector as it is (:data:`IMAGE_SCORE_THRESHOLD`): a photograph or a screenshot of a 3-D rendering shows a
  face without any surface being made. Slices of placed volumes are not: cut through a
  head, they score like faces (up to 0.30 on the shared data) and their face is judged by
  the render.

Conventions: a stack is an array voxel (column, row, slice) of one image's pixels
(``stack[c, r, s] = frame_s[r, c]``) with a voxel -> RAS+ mm affine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.multival import MultiValue

#: Fewest same-sized images that are stacked into a volume (3 slices of 5 mm span 15 mm:
#: a sagittal slab through the face shows the nose and mouth from the front).
MIN_STACK = 3

#: Where the (column, row, slice) axes of a stack of displayed images point when no plane
#: geometry places them (RAS+ unit vectors; the display convention of PS3.3 C.7.6.2.1.1:
#: axial images with the patient's right on the left and anterior up, coronal and sagittal
#: images with superior up). The slice direction (and the sagittal image's left-right) is
#: unknown, so both are tried: a face seen from behind or upside down is not a face to the
#: detector.
UNPLACED_ORIENTATIONS = {
    "axial, slices upwards": ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
    "axial, slices downwards": ((-1, 0, 0), (0, -1, 0), (0, 0, -1)),
    "coronal, slices forwards": ((-1, 0, 0), (0, 0, -1), (0, 1, 0)),
    "coronal, slices backwards": ((-1, 0, 0), (0, 0, -1), (0, -1, 0)),
    "sagittal, anterior left": ((0, -1, 0), (0, 0, -1), (1, 0, 0)),
    "sagittal, anterior right": ((0, 1, 0), (0, 0, -1), (1, 0, 0)),
}

#: An image shown as it is holds a face when dlib's HOG score, the better of detecting at its
#: size and doubled, is above this. Measured (``benchmarks/results/face_screen_2026-12-06.md``):
#: the best surface render of colin27, vrd_seg3D (upper face only) and chris_t1 saved as a
#: picture at 1, 2, 3 and 5 times its size scores >= 0.06, >= -0.08 and >= 0.86; every lone,
#: colour, mosaic and secondary-capture image of the shared data and the ultrasound photo
#: score <= -0.35 (a Siemens mosaic; a PET-CT screen capture -0.41). The threshold lies
#: between. Renders use :data:`~neurodeid.deface.face.FACE_SCORE_THRESHOLD`.
IMAGE_SCORE_THRESHOLD = -0.2

#: An unplaced stack is assumed to frame a head: scaled so that its larger in-plane extent
#: is this (mm), the slice spacing in proportion (a stored 1 mm default or a 3.25 mm
#: mosaic pixel would otherwise make a metre-wide volume).
UNPLACED_EXTENT_MM = 256.0

#: Images are shown to the detector at most this many pixels on their longer side (larger
#: ones are reduced), at that size and doubled.
IMAGE_DETECT_SIZE = 800

#: LPS+ -> RAS+ (negate x and y).
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Stack:
    """Images of one series stacked into a volume.

    Attributes
    ----------
    data : float32 ndarray, voxel (column, row, slice)
        Rescaled values (RescaleSlope/Intercept applied; MONOCHROME1 inverted).
    affines : list of (name, ndarray (4, 4))
        Candidate voxel -> RAS+ mm affines: one when plane geometry places the stack, else
        one per entry of :data:`UNPLACED_ORIENTATIONS`.
    sources : list of str
        ``file`` or ``file frame n`` of every image stacked, in slice order.
    """

    data: np.ndarray
    affines: list
    sources: list = field(default_factory=list)


@dataclass
class Screen:
    """The face screen of one series.

    Attributes
    ----------
    face : bool
        A face was detected on a render of a stack or on an image.
    best_score, threshold : float
        The detector's score, over every render and image, that came nearest to (or went
        furthest above) its threshold, and that threshold (``-inf``: nothing scored).
    where : str
        What scored best: the stack and orientation with the view, or the image.
    stacks, images : int
        Stacks rendered and images shown to the detector.
    seconds : float
    checks : list
        The :class:`~neurodeid.deface.face.FaceCheck` of every stack orientation (for the
        QC picture).
    unread : dict
        File name -> why its pixels could not be read: those files were not screened, so
        the caller must not release them (the text stage withholds them). ``errors`` lists
        the reasons.
    """

    face: bool = False
    best_score: float = float("-inf")
    threshold: float = 0.0
    where: str = ""
    stacks: int = 0
    images: int = 0
    seconds: float = 0.0
    checks: list = field(default_factory=list)
    unread: dict = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        """Why the unread files could not be read."""
        return list(self.unread.values())

    def summary(self) -> dict:
        """JSON-able record (no pictures)."""
        return {"face": self.face, "best_score": None if self.best_score == float("-inf") else round(self.best_score, 3),
                "where": self.where, "stacks": self.stacks, "images": self.images,
                "threshold": self.threshold, "seconds": round(self.seconds, 2), "errors": self.errors}

    def reason(self) -> str:
        """Why the series is withheld (``''`` when it is not). Unread files are not a
        reason to withhold the readable ones: they are listed in ``unread``."""
        if self.face:
            return (f"a face is detected in its pixels ({self.where}, score {self.best_score:.2f} > "
                    f"{self.threshold}) and it is not defaced: withheld")
        return ""


def _grey(frame: np.ndarray, photometric: str) -> np.ndarray:
    """One frame (rows, columns, samples) as float32 (rows, columns): RGB to luminance,
    MONOCHROME1 inverted so that bright is dense tissue as in MONOCHROME2."""
    a = frame.astype(np.float32)
    a = a[..., 0] if a.shape[-1] == 1 else a[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    return -a if photometric == "MONOCHROME1" else a


def _geometries(ds, path):
    """Plane geometry of every frame, or None when the object has none."""
    from .dicom import DefacedDicomError, frame_geometries

    try:
        return frame_geometries(ds, path, colour=True)
    except DefacedDicomError:
        return None


def _spacing(ds) -> tuple[float, float, float]:
    """(row spacing, column spacing, slice spacing) in mm of an object without plane
    geometry: PixelSpacing, else ImagerPixelSpacing, else 1 mm; SpacingBetweenSlices, else
    SliceThickness, else the pixel spacing."""
    ps = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or (1.0, 1.0)
    try:
        dr, dc = (float(v) for v in list(ps)[:2])
    except (TypeError, ValueError):
        dr = dc = 1.0
    if not (dr > 0 and dc > 0):
        dr = dc = 1.0
    ds_ = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or (dr + dc) / 2
    try:
        dz = abs(float(ds_)) or (dr + dc) / 2
    except (TypeError, ValueError):
        dz = (dr + dc) / 2
    return dr, dc, dz


@dataclass
class _Slice:
    pixels: np.ndarray  # float32 (rows, cols)
    source: str
    geometry: object | None
    spacing: tuple
    order: tuple
    colour: bool = False
    mosaic: bool = False  # a Siemens mosaic: a grid of slices, never a slice of a stack
    cine: bool = False  # a frame of a cine (frames in time: is_cine), never a slice of a stack


def _placed_affine(slices: list[_Slice]) -> np.ndarray:
    """Voxel (column, row, slice) -> RAS+ mm affine of slices that share one orientation,
    ordered along their normal."""
    g0, g1 = slices[0].geometry, slices[-1].geometry
    dr, dc = g0.spacing
    normal = np.cross(g0.row_cosine, g0.col_cosine)
    step = (g1.position - g0.position) / max(1, len(slices) - 1)
    if np.linalg.norm(step) < 1e-3:  # one position (a cine): unit steps along the normal
        step = normal * 1.0
    lps = np.eye(4)
    lps[:3, 0] = g0.row_cosine * dc
    lps[:3, 1] = g0.col_cosine * dr
    lps[:3, 2] = step
    lps[:3, 3] = g0.position
    return _LPS_TO_RAS @ lps


def _unplaced_affines(spacing: tuple, shape: tuple) -> list:
    dr, dc, dz = spacing
    scale = UNPLACED_EXTENT_MM / max(shape[0] * dc, shape[1] * dr)
    dr, dc, dz = dr * scale, dc * scale, dz * scale
    out = []
    for name, axes in UNPLACED_ORIENTATIONS.items():
        aff = np.eye(4)
        for ax, (v, d) in enumerate(zip(axes, (dc, dr, dz))):
            aff[:3, ax] = np.asarray(v, float) * d
        out.append((name, aff))
    return out


#: What a FrameIncrementPointer names when the frames follow one another in time (FrameTime,
#: FrameTimeVector: an echocardiogram, a fluoroscopy run), not in space.
_TIME_POINTERS = frozenset({0x00181063, 0x00181065})


def is_cine(ds) -> bool:
    """True when the frames of the multi-frame ``ds`` are a cine: its FrameIncrementPointer
    names only frame times (an ultrasound or X-ray run at one place). Stacked, a cine makes
    no volume (its render is a blob of time, which scored as a face: pydicom-data's
    echocardiogram); each frame is still shown to the detector as an image."""
    pointer = ds.get("FrameIncrementPointer")
    if pointer is None:
        return False
    tags = pointer if isinstance(pointer, (list, tuple, MultiValue)) else [pointer]
    return bool(tags) and all(int(t) in _TIME_POINTERS for t in tags)


def stacks_of(slices: list[_Slice]) -> list[Stack]:
    """Group slices into stacks of at least :data:`MIN_STACK`: placed slices by shape and
    orientation, ordered along the normal (those at a single position, a cine, are no
    volume); unplaced ones by shape, in stored order. Mosaics and cines are never stacked."""
    groups: dict = {}
    for s in slices:
        if s.mosaic or s.cine:
            continue
        g = s.geometry
        key = (s.pixels.shape, None if g is None else
               tuple(np.round(np.concatenate([g.row_cosine, g.col_cosine]), 3)))
        groups.setdefault(key, []).append(s)
    out = []
    for (shape, orient), group in groups.items():
        if len(group) < MIN_STACK:
            continue
        if orient is not None:
            normal = np.cross(group[0].geometry.row_cosine, group[0].geometry.col_cosine)
            at: dict = {}  # slices at one position (the volumes of a 4-D series) are averaged
            for s in sorted(group, key=lambda s: s.order):
                at.setdefault(round(float(s.geometry.position @ normal), 2), []).append(s)
            if len(at) < MIN_STACK:
                continue  # fewer than MIN_STACK positions: a cine or repeats, no volume
            data = np.stack([np.mean([s.pixels for s in at[d]], axis=0).T for d in sorted(at)], axis=-1)
            affines = [("as placed by its plane geometry", _placed_affine([at[d][0] for d in sorted(at)]))]
            group = [s for d in sorted(at) for s in at[d]]
        else:
            group = sorted(group, key=lambda s: s.order)
            data = np.stack([s.pixels.T for s in group], axis=-1)
        data = data.astype(np.float32)
        if orient is None:
            affines = _unplaced_affines(group[0].spacing, data.shape)
        out.append(Stack(data, affines, [s.source for s in group]))
    return out


def image_for_detector(pixels: np.ndarray) -> np.ndarray:
    """A 2-D image as the uint8 picture the detector sees: reduced to at most
    :data:`IMAGE_DETECT_SIZE` pixels, the 1st to 99.5th percentile stretched to 0-255."""
    a = np.asarray(pixels, np.float32)
    step = max(1, int(np.ceil(max(a.shape) / IMAGE_DETECT_SIZE)))
    a = a[::step, ::step]
    lo, hi = np.percentile(a, (1, 99.5)) if a.size else (0.0, 1.0)
    return np.ascontiguousarray(np.clip((a - lo) / max(float(hi - lo), 1e-6) * 255, 0, 255).astype(np.uint8))


def image_score(pixels: np.ndarray) -> float:
    """The face detector's best score on an image as it is: the better of detecting at its
    size and doubled (``-inf`` when nothing scored above -2)."""
    from .face import Render, detect

    r = Render(0.0, 0.0, image_for_detector(pixels), 1.0)
    return max(detect([r], upsample=0)[0].score, detect([r], upsample=1)[0].score)


def read_slices(files) -> tuple[list[_Slice], list[tuple[str, str]]]:
    """Every frame of ``files`` (DICOM paths) as a greyscale slice with its geometry; the
    files that could not be read, as ``(name, reason)``."""
    import pydicom

    from ..failure import failure_reason
    from ..redact.dicom_pixels import holds_no_image, read_frames

    slices, errors = [], []
    for p in map(Path, files):
        try:
            ds = pydicom.dcmread(p)
            if holds_no_image(ds):
                continue  # a report, an RT object, a waveform: no pixels, no face
            frames, photometric = read_frames(ds)
        except Exception as exc:  # noqa: BLE001 - an unread file is never called face-free
            errors.append((p.name, failure_reason(exc, p.name)))
            continue
        geoms = _geometries(ds, p.name)
        if geoms is not None and len(geoms) != frames.shape[0]:
            geoms = None
        spacing = _spacing(ds)
        mosaic = "MOSAIC" in [str(v).strip().upper() for v in (ds.get("ImageType") or [])]
        cine = frames.shape[0] > 1 and is_cine(ds)
        try:
            number = int(ds.get("InstanceNumber") or 0)
        except (TypeError, ValueError):
            number = 0
        slope = float(ds.get("RescaleSlope", 1) or 1)
        inter = float(ds.get("RescaleIntercept", 0) or 0)
        for f in range(frames.shape[0]):
            g = None if geoms is None else geoms[f]
            s, i = (g.slope, g.intercept) if g is not None else (slope, inter)
            pix = _grey(frames[f], photometric) * s + i
            src = p.name if frames.shape[0] == 1 else f"{p.name} frame {f + 1}"
            slices.append(_Slice(pix, src, g, spacing, (number, p.name, f), frames.shape[-1] > 1, mosaic, cine))
    return slices, errors


def screen_files(files) -> Screen:
    """Look for a face in the pixels of one series' DICOM files (see the module docstring).

    Parameters
    ----------
    files : iterable of path
        The series' files (read only).

    Returns
    -------
    Screen
    """
    from .face import FACE_SCORE_THRESHOLD, SCREENING_LEVELS, check_volume

    t0 = time.perf_counter()
    out = Screen()
    slices, unread = read_slices(files)
    out.unread = dict(unread)

    def better(score: float, where: str, threshold: float, face: bool | None = None) -> None:
        out.face = out.face or (score > threshold if face is None else face)
        # what is reported: the best score relative to its own threshold
        if out.where == "" or score - threshold > out.best_score - out.threshold:
            out.best_score, out.threshold, out.where = score, threshold, where

    stacks = stacks_of(slices)
    in_volume = {src for st in stacks if len(st.affines) == 1 for src in st.sources}
    for n, stack in enumerate(stacks, 1):
        if min(stack.data.shape) < 2 or out.face:
            continue
        out.stacks += 1
        for name, affine in stack.affines:
            if out.face:  # one face withholds the series: the rest need not be looked at
                break
            chk = check_volume(stack.data, affine, levels=SCREENING_LEVELS, embeddings=False,
                               brain_only=True)
            out.checks.append(chk)
            aside = "" if chk.brain_only is None or chk.face else f" (set aside: {chk.brain_only.reason()})"
            better(chk.best_score, f"stack {n} of {stack.data.shape[2]} images ({stack.sources[0]} ...), "
                                   f"{name}, rendered at yaw/pitch {chk.best_view} deg{aside}",
                   FACE_SCORE_THRESHOLD, chk.face)
    for s in slices:
        if out.face:
            break
        if s.source in in_volume and not s.colour:
            continue
        if min(s.pixels.shape) < 40:  # smaller than the detector's window, doubled
            continue
        out.images += 1
        better(image_score(s.pixels), f"image {s.source} as it is", IMAGE_SCORE_THRESHOLD)
    out.seconds = time.perf_counter() - t0
    return out
