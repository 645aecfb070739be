"""Is there a face? Surface renders of a volume and a face detector that looks at them.

The decision whether a volume shows a face is made from its pixels: the head surface
(intensity above the head threshold, largest component) is ray-cast from the front and at
several yaw and pitch angles around the head's centre, shaded like a lit plaster cast, and
dlib's HOG frontal face detector (built into the ``dlib-bin`` wheel, Boost licence) looks
at every render. After defacing the same renders are made again: no face may be found at
any angle, and where dlib's face recognition model (``face-recognition-models`` wheel:
``dlib_face_recognition_resnet_model_v1.dat`` with the 5-point landmark model, both
released by dlib's author into the public domain / CC0; the 68-point model, trained on
iBUG 300-W with its non-commercial restriction, is never loaded) gives an embedding for
both the original and the defaced render, their distance must be >= 0.6 (dlib's
same-person threshold).

Conventions: arrays are voxel (i, j, k) with a voxel -> RAS+ mm affine. A render is a 2-D
uint8 image, rows from superior to inferior, columns from the subject's right to the
subject's left (as a viewer facing the subject sees it) for yaw 0; yaw turns the viewer
about the superior axis towards the subject's left (positive degrees), pitch raises the
viewer above the face (positive degrees).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

#: (yaw, pitch) in degrees of every render: from the front, turned 20 degrees both ways,
#: from 10 degrees above to 30 degrees below (the detector scores renders seen from below
#: highest: measured on colin27, vrd_seg3D and chris_t1).
DEFAULT_VIEWS = tuple((y, p) for p in (-30, -20, -10) for y in (-20, 0, 20))

#: A render holds a face when dlib's HOG score is above this. Measured (1 mm renders,
#: head threshold 0.5 x Otsu, ``tests/test_face.py``): best score over the views of the
#: face-bearing heads 0.56 (chris_t1), 0.22 (vrd_seg3D, upper face only), -0.19
#: (colin27, nose tip clipped); of their skull-stripped brains -0.32 to -0.56; of the
#: heads cropped above the eyes <= -1.1. dlib's own default (0) misses colin27 and vrd.
FACE_SCORE_THRESHOLD = -0.25

#: The head surface is rendered at this fraction of the Otsu head threshold (lower
#: keeps the darker lower face of bias-affected coils; MR only).
SURFACE_THRESHOLD_FRACTION = 0.5

#: dlib's same-person distance of face-recognition embeddings (L2 of 128-d vectors).
SAME_PERSON_DISTANCE = 0.6
#: Light direction in render (col, row, depth) axes: from the viewer, a little above.
LIGHT = (0.0, -0.35, -1.0)


class FaceDetectorUnavailable(RuntimeError):
    """The face detector (``dlib-bin``) is not installed: no face decision can be made."""


@dataclass
class Render:
    """One surface render.

    Attributes
    ----------
    yaw, pitch : float
        Viewing angles in degrees (see the module docstring).
    image : uint8 ndarray (rows, cols)
        Shaded surface; 0 where the ray hits nothing.
    spacing_mm : float
        Pixel size in mm.
    """

    yaw: float
    pitch: float
    image: np.ndarray
    spacing_mm: float


@dataclass
class Detection:
    """Face detections on one render.

    Attributes
    ----------
    yaw, pitch : float
        The render's angles (degrees).
    score : float
        Best detector score (dlib HOG SVM margin; > 0 is a face at dlib's default
        threshold; ``-inf`` when nothing scored above ``min_score``).
    boxes : list of (left, top, right, bottom)
        Detected faces in render pixels, only those scoring above ``threshold``.
    embedding : ndarray (128,) or None
        Face-recognition embedding of the best face above the threshold.
    """

    yaw: float
    pitch: float
    score: float
    boxes: list = field(default_factory=list)
    embedding: np.ndarray | None = None


def head_surface_mask(data: np.ndarray, threshold: float) -> np.ndarray:
    """Head mask for rendering: ``data > threshold``, opened once (cuts background noise
    and thin strands), largest 6-connected component."""
    m = ndi.binary_opening(np.asarray(data) > threshold, iterations=1)
    lab, n = ndi.label(m)
    if n == 0:
        return m
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    """Columns: the view axes u (viewer's right; the subject's left at yaw 0), v (up;
    superior at pitch 0) and w (towards the viewer; anterior at yaw 0) in RAS+."""
    y, p = np.deg2rad(yaw), np.deg2rad(pitch)
    u, v, w = np.array([-1.0, 0, 0]), np.array([0, 0, 1.0]), np.array([0, 1.0, 0])
    v, w = np.cos(p) * v - np.sin(p) * w, np.sin(p) * v + np.cos(p) * w  # viewer above
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1.0]])
    return rz @ np.stack([u, v, w], 1)  # viewer turned towards the subject's left


def render_views(mask: np.ndarray, affine: np.ndarray, views=DEFAULT_VIEWS,
                 spacing_mm: float = 1.5) -> list[Render]:
    """Ray-cast the surface of ``mask`` from every (yaw, pitch) in ``views``.

    Parameters
    ----------
    mask : bool ndarray, voxel (i, j, k)
        Head (or any object) mask.
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm.
    views : sequence of (yaw, pitch) degrees
    spacing_mm : float
        Render pixel size (and ray step) in mm.

    Returns
    -------
    list of Render
    """
    affine = np.asarray(affine, float)
    idx = np.argwhere(mask)
    if idx.size == 0:
        return [Render(y, p, np.zeros((8, 8), np.uint8), spacing_mm) for y, p in views]
    pts = idx[:: max(1, len(idx) // 20000)] @ affine[:3, :3].T + affine[:3, 3]
    centre = pts.mean(0)
    radius = float(np.sqrt(((pts - centre) ** 2).sum(1)).max()) + 2 * spacing_mm
    n = int(np.ceil(2 * radius / spacing_mm)) + 1
    half = (n - 1) / 2.0 * spacing_mm
    # rays cross the whole head (a ray grazing the cheek meets the far side)
    n_depth = n
    inv = np.linalg.inv(affine)
    src = mask.astype(np.float32)
    c0 = inv[:3, :3] @ centre + inv[:3, 3]
    out = []
    for yaw, pitch in views:
        m = inv[:3, :3] @ _rotation(yaw, pitch)  # view mm (u, v, w) -> voxel
        # output index (row, col, depth) -> view mm (u, v, w) = (-half + col s,
        # half - row s, half - depth s) -> voxel
        mat = np.stack([-spacing_mm * m[:, 1], spacing_mm * m[:, 0], -spacing_mm * m[:, 2]], 1)
        off = c0 + m @ np.array([-half, half, half])
        vol = ndi.affine_transform(src, mat, off, output_shape=(n, n, n_depth), order=1,
                                   mode="constant", cval=0.0, prefilter=False) > 0.5
        out.append(Render(float(yaw), float(pitch), shade(vol), spacing_mm))
    return out


def shade(vol: np.ndarray) -> np.ndarray:
    """Shade the first surface hit along the last axis (the viewer at index 0).

    Lambert shading with a light at the viewer, slightly above, from normals of the
    smoothed depth map; uint8, 0 where no surface is hit.
    """
    hit = vol.any(-1)
    first = np.argmax(vol, -1).astype(np.float32)
    far = float(first[hit].max()) if hit.any() else 0.0
    depth = np.where(hit, first, far + 10)
    depth = ndi.gaussian_filter(depth, 1.0)
    gr, gc = np.gradient(depth)
    # normal towards the viewer in (col, row, depth); light from the viewer, a little above
    nrm = np.stack([gc, gr, -np.ones_like(gc)], -1)
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    light = np.asarray(LIGHT, float)
    lam = np.clip(nrm @ (light / np.linalg.norm(light)), 0, 1)
    img = 30 + 225 * lam
    return np.where(hit, img, 0).astype(np.uint8)


def _detector():
    try:
        import dlib
    except ImportError as e:  # pragma: no cover - dlib-bin is a dependency
        raise FaceDetectorUnavailable(
            "the face detector needs the dlib-bin wheel: pip install dlib-bin") from e
    return dlib.get_frontal_face_detector()


def detect(renders: list[Render], threshold: float = FACE_SCORE_THRESHOLD,
           upsample: int = 1) -> list[Detection]:
    """Run dlib's HOG frontal face detector on every render.

    Parameters
    ----------
    renders : list of Render
    threshold : float
        Score above which a detection counts as a face (see :data:`FACE_SCORE_THRESHOLD`).
    upsample : int
        Times the render is doubled before detection (faces of 1 mm renders are about
        120 px wide; the HOG window is 80 px).

    Returns
    -------
    list of Detection, one per render (``score = -inf`` when nothing scored above -2).
    """
    det = _detector()
    out = []
    for r in renders:
        rects, scores, _ = det.run(r.image, int(upsample), -2.0)
        best = float(max(scores)) if len(scores) else float("-inf")
        boxes = [(int(b.left()), int(b.top()), int(b.right()), int(b.bottom()))
                 for b, sc in zip(rects, scores) if sc > threshold]
        out.append(Detection(r.yaw, r.pitch, best, boxes))
    return out


@dataclass
class FaceCheck:
    """Verdict of :func:`check_volume`.

    Attributes
    ----------
    face : bool
        A face was detected on at least one render.
    best_score : float
        Best detector score over the renders.
    best_view : tuple (yaw, pitch)
        Angles (degrees) of the best-scoring render.
    detections : list of Detection
    renders : list of Render
    threshold : float
        Head surface threshold used (scaled units).
    seconds : float
    """

    face: bool
    best_score: float
    best_view: tuple
    detections: list
    renders: list
    threshold: float
    seconds: float

    def summary(self) -> dict:
        """JSON-able numbers (no pictures)."""
        return {
            "face_detected": self.face,
            "face_score": round(self.best_score, 3) if np.isfinite(self.best_score) else None,
            "face_view_yaw_pitch_deg": list(self.best_view),
            "face_score_threshold": FACE_SCORE_THRESHOLD,
            "face_views": len(self.renders),
            "face_seconds": round(self.seconds, 2),
        }


def volume_for_detection(data: np.ndarray) -> np.ndarray:
    """The 3-D volume a face decision is made on: the volume itself, or the mean over the
    4th (and further) axes of a 4-D series (a face visible in the mean is visible in the
    volumes)."""
    a = np.asarray(data, np.float32)
    while a.ndim > 3:
        a = a.mean(axis=-1)
    if a.ndim != 3:
        raise ValueError(f"expected a 3-D or 4-D volume, got shape {a.shape}")
    return a


def surface_threshold(data: np.ndarray, ct: bool | None = None) -> float:
    """Head surface threshold: skin level -300 HU for CT (detected as in
    :func:`neurodeid.deface.core.detect_ct` when ``ct`` is None), otherwise
    :data:`SURFACE_THRESHOLD_FRACTION` x the Otsu threshold between background and head."""
    from .estimate import head_threshold

    if ct is None:
        sample = data[::4, ::4, ::4]
        ct = bool(sample.size and np.percentile(sample, 1) < -500)
    if ct:
        return -300.0
    lo = float(np.min(data))
    return lo + SURFACE_THRESHOLD_FRACTION * (head_threshold(data, False) - lo)


def check_volume(data: np.ndarray, affine: np.ndarray, *, threshold: float | None = None,
                 views=DEFAULT_VIEWS, spacing_mm: float = 1.0) -> FaceCheck:
    """Render a volume's head surface from every view and look for a face.

    Parameters
    ----------
    data : ndarray, voxel (i, j, k) [, t]
        Scaled intensities; 4-D: the mean over time is checked.
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm. Any slice count and orientation: the volume is resampled to
        ``spacing_mm`` (block means where voxels are smaller, linear interpolation of the
        mask where they are larger, e.g. 5 mm slices).
    threshold : float, optional
        Head surface threshold (scaled units); default :func:`surface_threshold`.
    views : sequence of (yaw, pitch) degrees
    spacing_mm : float

    Returns
    -------
    FaceCheck
    """
    from .template import block_mean

    t0 = time.perf_counter()
    vol = volume_for_detection(data)
    small, saff = block_mean(vol, affine, spacing_mm)
    thr = surface_threshold(small) if threshold is None else float(threshold)
    mask = head_surface_mask(small, thr)
    renders = render_views(mask, saff, views, spacing_mm)
    dets = detect(renders)
    best = max(dets, key=lambda d: d.score)
    return FaceCheck(bool(best.score > FACE_SCORE_THRESHOLD), best.score, (best.yaw, best.pitch),
                     dets, renders, thr, time.perf_counter() - t0)


def detection_picture(before: FaceCheck, after: FaceCheck | None = None) -> np.ndarray:
    """Renders with detection boxes (green: face) as an RGB uint8 picture: row 1 the
    original's views, row 2 the defaced volume's views (private: it shows the face)."""
    rows = []
    for chk in (before, after):
        if chk is None:
            continue
        tiles = []
        for r, d in zip(chk.renders, chk.detections):
            rgb = np.stack([r.image] * 3, -1).copy()
            for (l, t, rr, b) in d.boxes:
                l, t = max(l, 0), max(t, 0)
                rr, b = min(rr, rgb.shape[1] - 1), min(b, rgb.shape[0] - 1)
                for c in (slice(l, l + 2), slice(max(rr - 1, 0), rr + 1)):
                    rgb[t:b + 1, c] = (0, 255, 0)
                for c in (slice(t, t + 2), slice(max(b - 1, 0), b + 1)):
                    rgb[c, l:rr + 1] = (0, 255, 0)
            tiles.append(rgb)
        h = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 4), (0, 0))) for t in tiles]
        rows.append(np.concatenate(tiles, 1))
    w = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, w - r.shape[1]), (0, 0))) for r in rows]
    return np.concatenate(rows, 0).astype(np.uint8)


def table_columns(deface_summary: dict) -> dict:
    """Face-check columns for the morphometry/QC table from a defacing summary
    (:func:`neurodeid.deface.deface_file`): best detector score on the original's and on
    the defaced volume's renders (empty when not checked), whether a face was detected,
    and the method that defaced the image."""
    out = {"deface_method": deface_summary.get("method", "")}
    for when, key in (("original", "face_before"), ("defaced", "face_after")):
        f = deface_summary.get(key) or {}
        score = f.get("face_score")
        out[f"face_score_{when}"] = "" if score is None else float(score)
        out[f"face_detected_{when}"] = "" if not f else ("yes" if f.get("face_detected") else "no")
    out["face_score_threshold"] = FACE_SCORE_THRESHOLD
    return out
