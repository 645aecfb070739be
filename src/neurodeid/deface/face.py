"""Is there a face? Surface renders of a volume and a face detector that looks at them.

The decision whether a volume shows a face is made from its pixels: the outer head surface
(intensity above the head threshold, largest component, at about 1 mm) is drawn as a depth
buffer from the front and from below at several yaw angles around the head's centre (2 mm
pixels), shaded like a lit plaster cast, and dlib's HOG frontal face detector (built into
the ``dlib-bin`` wheel, Boost licence) looks at every render. After defacing the same
renders are made again in the same frame, with the inside of the head that the removal
exposed drawn flat (:func:`flatten_removed`): no face may be found at any angle, no more
than :data:`MAX_SKIN_KEPT` of the original's face may be left (:func:`skin_kept`), and where
dlib's face recognition model (``face-recognition-models`` wheel:
``dlib_face_recognition_resnet_model_v1.dat`` with the 5-point landmark model, both
released by dlib's author into the public domain / CC0; the 68-point model, trained on
iBUG 300-W with its non-commercial restriction, is never loaded) gives an embedding for
both the original and the defaced render, their distance must be >= 0.6 (dlib's
same-person threshold). On renders that recognizer is weak: it places different heads
closer than 0.6 (measured), so the detector is the gate and the distance a second one.
A volume released undefaced when no face is found is screened with the bare-brain measure
as well (:mod:`neurodeid.deface.brainonly`): detections on a volume with nothing outside
its independently extracted brain (a skull-stripped brain) are set aside and recorded.

Conventions: arrays are voxel (i, j, k) with a voxel -> RAS+ mm affine. A render is a 2-D
uint8 image, rows from superior to inferior, columns from the subject's right to the
subject's left (as a viewer facing the subject sees it) for yaw 0; yaw turns the viewer
about the superior axis towards the subject's left (positive degrees), pitch raises the
viewer above the face (positive degrees).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

#: (yaw, pitch) in degrees of every render: from the front, from 20 degrees below turned
#: 0, +-30 and +-60 degrees, and from 40 degrees below turned 0 and +-30 degrees. Chosen
#: from a 5 x 6 grid (yaw -60..60, pitch -40..10) on colin27, vrd_seg3D and chris_t1: every
#: head's best view is at pitch -20 or -40 and yaw 0 or +-30; views from the level or
#: above never scored best, +-60 only adds side views (``benchmarks/bench_face.py``).
DEFAULT_VIEWS = ((0, 0), (0, -20), (-30, -20), (30, -20), (-60, -20), (60, -20),
                 (0, -40), (-30, -40), (30, -40))

#: Render pixel size (mm). 2 mm renders of a head are about 140 px wide, the face about
#: 60 px, detected after one doubling (the HOG window is 80 px).
RENDER_SPACING_MM = 2.0

#: The head surface is taken from the volume block-averaged to about this voxel size (mm).
MASK_SPACING_MM = 1.0

#: A render holds a face when dlib's HOG score is above this. Measured on 2 mm renders of
#: :data:`DEFAULT_VIEWS` (``benchmarks/results/face_2026-12-05.md``): best score of the
#: face-bearing heads as acquired 0.58 (chris_t1), -0.02 (colin27, nose tip clipped),
#: -0.07 (vrd_seg3D, upper face only); of their skull-stripped brains <= -0.81, of the
#: heads cut above the eyes <= -0.57 (over the whole grid). The threshold lies between,
#: nearer the faces' side: a missed face is worse than a withheld brain. dlib's own
#: default (0) misses colin27 and vrd.
FACE_SCORE_THRESHOLD = -0.4

#: The head surface is rendered at these fractions of the Otsu head threshold (MR; CT:
#: the skin at -300 HU) to judge a defacing, before and after. The low level keeps the
#: darker lower face of bias-affected coils.
SURFACE_LEVELS = (0.5,)

#: A volume not planned for defacing is screened at these levels: the higher one sees the
#: face where the low one takes noise or a compressed contrast for skin. On the head corpus
#: (``benchmarks/bench_head_corpus.py``) the low level alone found 58 of 68 face-bearing
#: items, both 67. A face found here withholds the volume, so a false one costs a volume,
#: never a face; after defacing, the higher level scores the outline of a carved head seen
#: from below like a face (-0.31 on vrd_seg3D), so it does not judge defacings.
SCREENING_LEVELS = (0.5, 1.0)

#: dlib's same-person distance of face-recognition embeddings (L2 of 128-d vectors).
SAME_PERSON_DISTANCE = 0.6
#: Embeddings are made of the original's face in this many of its best-scoring views.
EMBEDDED_VIEWS = 3

#: Grey level of the surface a removal exposed, on a defaced volume's renders
#: (:func:`flatten_removed`): flat, without shading, as a detector sees no face in it.
CUT_SHADE = 128
#: A defaced volume's surface more than this (mm) behind the original's in the same render
#: pixel is the inside of the head that the removal exposed.
CUT_MARGIN_MM = 2.0

#: A defacing must leave at most this fraction of the original's face: the surface inside
#: the detector's face box on the original's render, the field of view's cut not counted, in
#: the view where most is left. Measured (``benchmarks/results/face_cut_2026-12-07b.md``):
#: the methods leave 0.06-0.45 on the real heads; the template removal applied in part
#: 0.32-0.81, and 16 of those 18 are refused by this or the detector. With the removed
#: surface drawn flat the detector judges the skin that is left; this bounds what it cannot
#: judge, a face only partly removed.
MAX_SKIN_KEPT = 0.5

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
    level : float or None
        The surface threshold rendered (scaled units).
    depth : float32 ndarray (rows, cols) or None
        Height of the seen surface towards the viewer in mm, from the frame's centre
        (``-inf`` where the ray hits nothing).
    cap : bool ndarray (rows, cols) or None
        Pixels that show the volume's border: where the field of view cuts the head (a
        cross-section, not skin).
    """

    yaw: float
    pitch: float
    image: np.ndarray
    spacing_mm: float
    level: float | None = None
    depth: np.ndarray | None = None
    cap: np.ndarray | None = None


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
    level : float or None
        The render's surface threshold (scaled units).
    """

    yaw: float
    pitch: float
    score: float
    boxes: list = field(default_factory=list)
    embedding: np.ndarray | None = None
    level: float | None = None


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


@dataclass(frozen=True)
class Frame:
    """Where renders are made: the centre the views turn about and the render size.

    Renders of a defaced volume reuse the original's frame, so both are pixel-aligned and
    a face box on one marks the same place on the other.

    Attributes
    ----------
    centre : tuple of 3 floats
        RAS+ mm.
    n : int
        Renders are ``n x n`` pixels.
    spacing_mm : float
        Pixel size (mm).
    """

    centre: tuple
    n: int
    spacing_mm: float

    @classmethod
    def around(cls, points: np.ndarray, spacing_mm: float) -> "Frame":
        """The frame that holds ``points`` (N x 3, RAS+ mm) from every view."""
        pts = np.asarray(points, float)
        if pts.size == 0:
            return cls((0.0, 0.0, 0.0), 8, float(spacing_mm))
        centre = pts.mean(0)
        radius = float(np.sqrt(((pts - centre) ** 2).sum(1)).max()) + 2 * spacing_mm
        return cls(tuple(float(c) for c in centre), int(np.ceil(2 * radius / spacing_mm)) + 1,
                   float(spacing_mm))


def surface_points(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outer surface of ``mask`` as points: the centres of mask voxels with a 6-neighbour
    outside, after filling the mask's holes (inner cavities are never seen), and which of
    them lie on the array's border (where the field of view cuts the head: a
    cross-section, not skin).

    Parameters
    ----------
    mask : bool ndarray, voxel (i, j, k)
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm.

    Returns
    -------
    (float32 ndarray (N, 3), RAS+ mm; bool ndarray (N,): on the border)
    """
    m = ndi.binary_fill_holes(np.asarray(mask, bool))
    idx = np.argwhere(m & ~ndi.binary_erosion(m))
    aff = np.asarray(affine, np.float32)
    pts = idx.astype(np.float32) @ aff[:3, :3].T + aff[:3, 3]
    return pts, (idx == 0).any(1) | (idx == np.asarray(m.shape) - 1).any(1)


def _nearest(pix: np.ndarray, height: np.ndarray, size: int,
             flags: np.ndarray | None = None):
    """Per pixel the largest ``height`` of the points falling in it (``-inf`` where
    none): a depth buffer, by one sort instead of ``np.maximum.at``. With ``flags`` (a bool
    per point), also the flag of the point seen in each pixel: ``(near, flagged)``."""
    near = np.full(size, -np.inf, np.float32)
    seen = np.zeros(size, bool)
    if pix.size:
        order = np.lexsort((height, pix))
        last = np.r_[pix[order][1:] != pix[order][:-1], True]  # the highest point per pixel
        near[pix[order][last]] = height[order][last]
        if flags is not None:
            seen[pix[order][last]] = np.asarray(flags, bool)[order][last]
    return near if flags is None else (near, seen)


def render_points(points: np.ndarray, frame: Frame, yaw: float, pitch: float,
                  on_border: np.ndarray | None = None) -> Render:
    """Render surface points seen from (yaw, pitch): the nearest point per pixel (a depth
    buffer), pinholes between hit pixels closed, shaded by :func:`shade`.

    Parameters
    ----------
    points : ndarray (N, 3), RAS+ mm
        Surface points, spaced at most about half the pixel size (1 mm voxels for 2 mm
        pixels) so that the surface has no gaps.
    frame : Frame
    yaw, pitch : float
        Degrees (see the module docstring).
    on_border : bool ndarray (N,), optional
        Points on the volume's border (:func:`surface_points`); the pixels they are seen
        in make :attr:`Render.cap` (default: none).

    Returns
    -------
    Render
    """
    n, sp = frame.n, frame.spacing_mm
    half = (n - 1) / 2.0 * sp
    q = np.asarray(points, np.float32) - np.asarray(frame.centre, np.float32)
    uvw = q @ _rotation(yaw, pitch).astype(np.float32)
    col = np.rint((uvw[:, 0] + half) / sp).astype(np.int64)
    row = np.rint((half - uvw[:, 1]) / sp).astype(np.int64)
    ok = (col >= 0) & (col < n) & (row >= 0) & (row < n)
    pix, height = row[ok] * n + col[ok], uvw[ok, 2] / sp  # height towards the viewer, pixels
    border = np.zeros(len(q), bool) if on_border is None else np.asarray(on_border, bool)
    near, cap = _nearest(pix, height, n * n, border[ok])
    near, cap = near.reshape(n, n), cap.reshape(n, n)
    hit = np.isfinite(near)
    gaps = ndi.binary_closing(hit) & ~hit
    if gaps.any():
        near[gaps] = ndi.maximum_filter(np.where(hit, near, -np.inf), 3)[gaps]
        cap[gaps] = ndi.maximum_filter(cap, 3)[gaps]
        hit |= gaps
    return Render(float(yaw), float(pitch), shade(near, hit), sp, depth=near * np.float32(sp),
                  cap=cap)


def flatten_removed(render: Render, reference: Render,
                    margin_mm: float | None = None) -> Render:
    """The render of a defaced volume with what the removal took away drawn flat.

    ``render`` and ``reference`` (the original's render in the same frame and view) are
    pixel-aligned. Where the surface seen now lies more than ``margin_mm`` (default
    :data:`CUT_MARGIN_MM`) behind the surface the original showed there, the original's
    skin was removed and what is seen is the inside of the head (a cut, an opened sinus
    or orbit): those pixels get the flat grey :data:`CUT_SHADE`, no shading, so the
    detector judges the skin that is left. Pixels showing the original's surface keep
    their shading.

    Returns
    -------
    Render
        A new render (same angles, level and depth).
    """
    margin = CUT_MARGIN_MM if margin_mm is None else float(margin_mm)
    depth, ref = render.depth, reference.depth
    seen = np.isfinite(depth) & np.isfinite(ref)
    cut = np.zeros(depth.shape, bool)
    cut[seen] = ref[seen] - depth[seen] > margin
    image = render.image.copy()
    image[cut] = CUT_SHADE
    return Render(render.yaw, render.pitch, image, render.spacing_mm, render.level, depth,
                  render.cap)


def skin_kept(render: Render, reference: Render, box: tuple,
              margin_mm: float | None = None) -> float:
    """Fraction of the original's surface inside ``box`` (left, top, right, bottom, render
    pixels; the original's face) that a defaced volume still shows: pixels whose surface
    now lies within ``margin_mm`` (default :data:`CUT_MARGIN_MM`) of where the original's
    was. ``render`` and ``reference`` are pixel-aligned renders of one view. Pixels where
    the original shows the field of view's cut (:attr:`Render.cap`) do not count: a cut is
    a cross-section that no defacing removes, not skin (a box all on the cut: 0)."""
    margin = CUT_MARGIN_MM if margin_mm is None else float(margin_mm)
    n = reference.depth.shape
    l, t, r, b = max(box[0], 0), max(box[1], 0), min(box[2], n[1] - 1), min(box[3], n[0] - 1)
    ref = reference.depth[t:b + 1, l:r + 1]
    now = render.depth[t:b + 1, l:r + 1]
    was = np.isfinite(ref)
    if reference.cap is not None:
        was &= ~reference.cap[t:b + 1, l:r + 1]
    if not was.any():
        return 0.0
    same = was & np.isfinite(now)
    same[same] = np.abs(ref[same] - now[same]) <= margin
    return float(same.sum() / was.sum())


def render_views(mask: np.ndarray, affine: np.ndarray, views=DEFAULT_VIEWS,
                 spacing_mm: float = RENDER_SPACING_MM, frame: Frame | None = None
                 ) -> tuple[list[Render], Frame]:
    """Render the outer surface of ``mask`` from every (yaw, pitch) in ``views``.

    Parameters
    ----------
    mask : bool ndarray, voxel (i, j, k)
        Head (or any object) mask, best at about 1 mm.
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm.
    views : sequence of (yaw, pitch) degrees
    spacing_mm : float
        Render pixel size in mm (ignored with ``frame``).
    frame : Frame, optional
        Reuse another volume's frame (default: around this surface).

    Returns
    -------
    (list of Render, Frame)
    """
    pts, on_border = surface_points(mask, affine)
    frame = frame or Frame.around(pts, spacing_mm)
    return [render_points(pts, frame, y, p, on_border) for y, p in views], frame


def shade(near: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Shade a depth buffer like a lit plaster cast.

    Lambert shading with a light at the viewer, slightly above (:data:`LIGHT`), from the
    normals of the lightly smoothed depth; uint8, 0 where no surface is hit.

    Parameters
    ----------
    near : float ndarray (rows, cols)
        Height of the surface towards the viewer, in pixels.
    hit : bool ndarray (rows, cols)
    """
    if not hit.any():
        return np.zeros(hit.shape, np.uint8)
    depth = np.where(hit, -near, -float(near[hit].min()) + 10)
    depth = ndi.gaussian_filter(depth, 0.7)
    gr, gc = np.gradient(depth)
    # normal towards the viewer in (col, row, depth); light from the viewer, a little above
    nrm = np.stack([gc, gr, -np.ones_like(gc)], -1)
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    light = np.asarray(LIGHT, float)
    lam = np.clip(nrm @ (light / np.linalg.norm(light)), 0, 1)
    return np.where(hit, 30 + 225 * lam, 0).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _detector():
    """dlib's HOG frontal face detector (built once per process: about 1 s)."""
    try:
        import dlib
    except ImportError as e:  # pragma: no cover - dlib-bin is a dependency
        raise FaceDetectorUnavailable(
            "the face detector needs the dlib-bin wheel: pip install dlib-bin") from e
    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=1)
def _recognizer():
    """dlib's 5-point landmark model and face recognition ResNet, both from the
    ``face-recognition-models`` wheel (loaded once per process, about 0.2 s)."""
    try:
        import dlib
        import face_recognition_models as models
    except ImportError as e:  # pragma: no cover - both are dependencies
        raise FaceDetectorUnavailable(
            "face embeddings need dlib-bin and face-recognition-models: "
            "pip install dlib-bin face-recognition-models") from e
    return (dlib.shape_predictor(models.pose_predictor_five_point_model_location()),
            dlib.face_recognition_model_v1(models.face_recognition_model_location()))


def detect(renders: list[Render], threshold: float = FACE_SCORE_THRESHOLD,
           upsample: int = 1) -> list[Detection]:
    """Run dlib's HOG frontal face detector on every render.

    Parameters
    ----------
    renders : list of Render
    threshold : float
        Score above which a detection counts as a face (see :data:`FACE_SCORE_THRESHOLD`).
    upsample : int
        Times the render is doubled before detection (faces of 2 mm renders are about
        60 px wide; the HOG window is 80 px).

    Returns
    -------
    list of Detection, one per render (``score = -inf`` when nothing scored above -2);
    boxes best first.
    """
    det = _detector()
    out = []
    for r in renders:
        rects, scores, _ = det.run(r.image, int(upsample), -2.0)
        best = float(max(scores)) if len(scores) else float("-inf")
        boxes = [(int(b.left()), int(b.top()), int(b.right()), int(b.bottom()))
                 for sc, b in sorted(zip(scores, rects), key=lambda x: -x[0]) if sc > threshold]
        out.append(Detection(r.yaw, r.pitch, best, boxes, level=r.level))
    return out


def embed(render: Render, box: tuple) -> np.ndarray:
    """dlib's 128-d face recognition embedding of ``box`` (left, top, right, bottom, render
    pixels) on ``render``: 5 landmarks found inside the box, the face aligned to a 150 px
    chip from the render doubled, the ResNet descriptor of the chip.

    Any box gives an embedding (the landmarks are placed wherever they fit best): on a
    defaced render the box where the original showed a face gives the embedding of what is
    left there.
    """
    import dlib

    predictor, model = _recognizer()
    big = np.ascontiguousarray(ndi.zoom(render.image, 2, order=1))
    rgb = np.ascontiguousarray(np.stack([big] * 3, -1))
    left, top, right, bottom = (2 * int(v) for v in box)
    shape = predictor(rgb, dlib.rectangle(left, top, right, bottom))
    return np.asarray(model.compute_face_descriptor(rgb, shape), np.float64)


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
        With ``embedding`` where a face was detected (or, checked against a reference,
        where the reference had one).
    renders : list of Render
    thresholds : tuple of float
        Head surface thresholds rendered (scaled units; :data:`SURFACE_LEVELS`).
    seconds : float
    frame : Frame
        Where the renders were made (reused for the defaced volume).
    distance : float or None
        Checked against a reference: the smallest embedding distance between a face
        detected here and the reference's face in the same view; None when no embedding
        can be made (no face detected here where the reference had one).
    distance_view : tuple (yaw, pitch) or None
    skin_kept : float or None
        Checked against a reference: the fraction of the surface inside the reference's
        face box that this volume still shows (:func:`skin_kept`), in the view where it is
        largest; None when the reference has no face box. Above
        :data:`MAX_SKIN_KEPT` the face was not removed (see there).
    skin_kept_view : tuple (yaw, pitch) or None
    brain_only : neurodeid.deface.brainonly.BrainOnly or None
        Screened with ``brain_only=True`` and a face detected: whether the detections are
        the surface of a bare brain (:mod:`neurodeid.deface.brainonly`); when they are,
        :attr:`face` is False and :attr:`best_score` keeps the detector's score.
    distance_at_face_box : float or None
        Measured only, never a verdict: the embedding distance in the reference's best
        view, at the reference's face box, whatever is left there. Renders of different
        heads are closer than 0.6 (0.29-0.57 measured between colin27, vrd_seg3D and
        chris_t1), so on renders dlib's recognizer cannot tell people apart and a distance
        of what is not a face says nothing.
    """

    face: bool
    best_score: float
    best_view: tuple
    detections: list
    renders: list
    thresholds: tuple
    seconds: float
    frame: Frame | None = None
    distance: float | None = None
    distance_view: tuple | None = None
    distance_at_face_box: float | None = None
    skin_kept: float | None = None
    skin_kept_view: tuple | None = None
    brain_only: object | None = None

    @property
    def recognised(self) -> bool:
        """The reference's face is recognised: embedding distance below
        :data:`SAME_PERSON_DISTANCE`."""
        return self.distance is not None and self.distance < SAME_PERSON_DISTANCE

    def summary(self) -> dict:
        """JSON-able numbers (no pictures)."""
        return {
            "face_detected": self.face,
            "face_score": round(self.best_score, 3) if np.isfinite(self.best_score) else None,
            "face_view_yaw_pitch_deg": list(self.best_view),
            "face_score_threshold": FACE_SCORE_THRESHOLD,
            "face_views": len(self.renders),
            "face_surface_thresholds": [round(float(t), 3) for t in self.thresholds],
            "face_embeddings": sum(d.embedding is not None for d in self.detections),
            "embedding_distance": None if self.distance is None else round(self.distance, 3),
            "embedding_distance_view_yaw_pitch_deg":
                None if self.distance_view is None else list(self.distance_view),
            "embedding_distance_at_face_box":
                None if self.distance_at_face_box is None else round(self.distance_at_face_box, 3),
            "same_person_distance": SAME_PERSON_DISTANCE,
            "face_skin_kept": None if self.skin_kept is None else round(self.skin_kept, 3),
            "face_skin_kept_view_yaw_pitch_deg":
                None if self.skin_kept_view is None else list(self.skin_kept_view),
            "face_seconds": round(self.seconds, 2),
            **({} if self.brain_only is None else self.brain_only.summary()),
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


def surface_volume(vol: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The volume the head surface is taken from: block-averaged to about
    :data:`MASK_SPACING_MM`, and thick slices (an axis coarser than 1.5 x that) linearly
    interpolated to it, so that the surface of a 3-5 mm stack is smooth instead of
    terraced (terraces hide a face from the detector: measured on the head corpus).

    Parameters
    ----------
    vol : ndarray, voxel (i, j, k)
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm.

    Returns
    -------
    (float32 ndarray, affine)
        The resampled volume and its voxel -> RAS+ mm affine (the first voxel's centre is
        unchanged; axis ``a`` interpolated by an integer factor ``f`` has ``(n - 1) f + 1``
        voxels).
    """
    from ..geometry import block_mean, zooms

    small, saff, _ = block_mean(vol, affine, MASK_SPACING_MM)
    f = np.maximum(1, np.round(zooms(saff) / MASK_SPACING_MM)).astype(int)
    f[zooms(saff) <= 1.5 * MASK_SPACING_MM] = 1
    if np.all(f == 1) or min(small.shape) < 2:
        return small, saff
    shape = tuple((n - 1) * k + 1 for n, k in zip(small.shape, f))
    out = ndi.affine_transform(small, 1.0 / f, output_shape=shape, order=1)
    aff = np.array(saff, float)
    aff[:3, :3] = aff[:3, :3] / f
    return out.astype(np.float32), aff


def surface_thresholds(data: np.ndarray, ct: bool | None = None,
                       levels=SURFACE_LEVELS) -> tuple[float, ...]:
    """Head surface thresholds: the skin at -300 HU for CT (detected as in
    :func:`neurodeid.deface.core.detect_ct` when ``ct`` is None), otherwise each of
    ``levels`` x the Otsu threshold between background and head (above the minimum)."""
    from .core import detect_ct
    from .estimate import head_threshold

    if ct is None:
        ct = detect_ct(data)
    if ct:
        return (-300.0,)
    lo = float(np.min(data))
    otsu = head_threshold(data, False)
    return tuple(lo + f * (otsu - lo) for f in levels)


def check_volume(data: np.ndarray, affine: np.ndarray, *, thresholds=None,
                 levels=SURFACE_LEVELS, views=DEFAULT_VIEWS, spacing_mm: float = RENDER_SPACING_MM,
                 reference: FaceCheck | None = None, embeddings: bool = True,
                 flat_removed: bool = True, brain_only: bool = False) -> FaceCheck:
    """Render a volume's head surface from every view and look for a face.

    Parameters
    ----------
    data : ndarray, voxel (i, j, k) [, t]
        Scaled intensities; 4-D: the mean over time is checked.
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm. Any slice count and orientation: the surface is taken from
        :func:`surface_volume` (about :data:`MASK_SPACING_MM`, thick slices interpolated).
    thresholds : sequence of float, optional
        Head surface thresholds (scaled units), each rendered from every view; default
        :func:`surface_thresholds` at ``levels``.
    levels : sequence of float
        Fractions of the Otsu head threshold (:data:`SURFACE_LEVELS` to judge a defacing,
        :data:`SCREENING_LEVELS` to screen a volume not planned for defacing).
    views : sequence of (yaw, pitch) degrees
    spacing_mm : float
        Render pixel size (mm).
    reference : FaceCheck, optional
        The original's check when this is the defaced volume: its frame, thresholds and
        views are reused (pixel-aligned renders);
        wherever it has an embedding and a face is detected here too, the embeddings'
        distance is taken, the smallest is :attr:`FaceCheck.distance`.
    embeddings : bool
        Make face-recognition embeddings (of every detected face; against ``reference``).
    flat_removed : bool
        Against ``reference``: draw the surface the removal exposed flat
        (:func:`flatten_removed`), so that the detector judges the skin that is left.
    brain_only : bool
        Without ``reference``, when a face is detected: measure whether the volume is a
        bare brain (:mod:`neurodeid.deface.brainonly`: nothing outside its independently
        extracted brain) and set the detections aside then (:attr:`FaceCheck.brain_only`).
        For volumes released without defacing when no face is found; an extraction that
        fails sets nothing aside.

    Returns
    -------
    FaceCheck
    """
    t0 = time.perf_counter()
    small, saff = surface_volume(volume_for_detection(data), affine)
    if reference is None:
        thr = tuple(surface_thresholds(small, levels=levels) if thresholds is None
                    else map(float, thresholds))
        plan = [(t, list(views)) for t in thr]
    else:
        thr = reference.thresholds
        plan = [(t, reference_views(reference)) for t in thr]
    frame = None if reference is None else reference.frame
    renders = []
    for t, level_views in plan:
        level_renders, frame = render_views(head_surface_mask(small, t), saff, level_views,
                                            spacing_mm, frame)
        for r in level_renders:
            r.level = t
        renders += level_renders
    kept = kept_view = None
    if reference is not None:
        refs = {(r.level, r.yaw, r.pitch): (r, d)
                for r, d in zip(reference.renders, reference.detections)}
        for r in renders:
            ref, ref_det = refs[(r.level, r.yaw, r.pitch)]
            if ref_det.boxes:
                k = skin_kept(r, ref, ref_det.boxes[0])
                if kept is None or k > kept:
                    kept, kept_view = k, (r.yaw, r.pitch)
        if flat_removed:
            renders = [flatten_removed(r, refs[(r.level, r.yaw, r.pitch)][0]) for r in renders]
    dets = detect(renders)
    distance = distance_view = at_box = None
    if embeddings and reference is None:
        # the original: an embedding of the face in each of the best-scoring views
        for d in sorted((d for d in dets if d.boxes), key=lambda d: -d.score)[:EMBEDDED_VIEWS]:
            d.embedding = embed(renders[dets.index(d)], d.boxes[0])
    elif embeddings:
        for r, d in zip(renders, dets):
            ref = refs[(r.level, r.yaw, r.pitch)][1]
            if ref.embedding is None:
                continue
            if d.boxes:  # a face on the defaced render where the original had one
                d.embedding = embed(r, d.boxes[0])
                dist = float(np.linalg.norm(d.embedding - ref.embedding))
                if distance is None or dist < distance:
                    distance, distance_view = dist, (d.yaw, d.pitch)
            if ref.score == reference.best_score:  # measured only: what is left in the box
                at_box = float(np.linalg.norm(embed(r, ref.boxes[0]) - ref.embedding))
    best = max(dets, key=lambda d: d.score)
    found = bool(best.score > FACE_SCORE_THRESHOLD)
    bare = None
    if brain_only and found and reference is None:
        from . import brainonly
        from .core import detect_ct

        try:
            bare = brainonly.measure(small, saff, min(thr), detect_ct(small))
        except Exception:  # noqa: BLE001 - no brain extracted: the detections stand
            bare = None
        found = not (bare is not None and bare.holds)
    return FaceCheck(found, best.score, (best.yaw, best.pitch),
                     dets, renders, thr, time.perf_counter() - t0, frame, distance, distance_view,
                     at_box, kept, kept_view, bare)


def reference_views(reference: FaceCheck) -> list[tuple]:
    """The (yaw, pitch) views of a check, in order, once each (its renders repeat them
    for every surface threshold)."""
    return list(dict.fromkeys((d.yaw, d.pitch) for d in reference.detections))


def detection_picture(before: FaceCheck, after: FaceCheck | None = None) -> np.ndarray:
    """Renders with detection boxes (green: face) as an RGB uint8 picture: one row per
    surface threshold of the original's views, then the same rows of the defaced volume
    (private: it shows the face)."""
    rows = []
    for chk in (before, after):
        if chk is None:
            continue
        for level in dict.fromkeys(r.level for r in chk.renders):
            tiles = []
            for r, d in zip(chk.renders, chk.detections):
                if r.level != level:
                    continue
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
    the method that defaced the image, the face-recognition embedding distance between
    the original's face and a face left on the defaced renders (empty: none left to embed;
    below :data:`SAME_PERSON_DISTANCE` withholds), and the fraction of the original's face
    box the defaced volume still shows (above :data:`MAX_SKIN_KEPT` withholds)."""
    out = {"deface_method": deface_summary.get("method", "")}
    for when, key in (("original", "face_before"), ("defaced", "face_after")):
        f = deface_summary.get(key) or {}
        score = f.get("face_score")
        out[f"face_score_{when}"] = "" if score is None else float(score)
        out[f"face_detected_{when}"] = "" if not f else ("yes" if f.get("face_detected") else "no")
    out["face_score_threshold"] = FACE_SCORE_THRESHOLD
    after = deface_summary.get("face_after") or {}
    dist = after.get("embedding_distance")
    # empty: not checked, or no face left on the defaced renders to embed
    out["face_embedding_distance"] = "" if dist is None else float(dist)
    kept = after.get("face_skin_kept")
    # empty: not checked, or no face box on the original to measure in
    out["face_skin_kept"] = "" if kept is None else float(kept)
    out["max_face_skin_kept"] = MAX_SKIN_KEPT
    out["face_embeddings_original"] = (deface_summary.get("face_before") or {}).get("face_embeddings", "")
    out["same_person_distance"] = SAME_PERSON_DISTANCE
    return out


def check_folder(folder, qc_dir=None) -> dict:
    """The face check of every NIfTI image in ``folder`` (a converted series that is not
    planned for defacing: its description, datatype and slice count exempt nothing).

    With ``qc_dir``, an image with a face gets a picture of what the detector saw,
    ``qc_dir/<stem>.png`` (its renders with the boxes: :func:`detection_picture`; private,
    it shows the face), named in the image's ``qc``.

    Returns
    -------
    dict
        ``{"images": [{"image", "status", "reason", "summary"[, "qc"]}]}`` with status
        ``ok`` (no face on any render), ``face`` (a face detected: the image must not be
        released as it is) or ``failed`` (no decision: not released either); JSON-able.
    """
    from pathlib import Path

    import nibabel as nib

    from ..results import StageStatus

    rows = []
    for p in sorted(Path(folder).glob("*.nii.gz")):
        try:
            img = nib.load(str(p))
            data = np.asanyarray(img.dataobj, dtype=np.float32)
            if data.ndim < 3 or min(data.shape[:3]) < 2:
                rows.append({"image": p.name, "status": StageStatus.OK, "summary": {},
                             "reason": "a single 2-D slice: no surface to render"})
                continue
            chk = check_volume(data, img.affine, levels=SCREENING_LEVELS, embeddings=False,
                               brain_only=True)
        except Exception as exc:  # noqa: BLE001 - no decision, no release: the reason is kept
            rows.append({"image": p.name, "status": StageStatus.FAILED, "summary": {},
                         "reason": f"face check could not run: {type(exc).__name__}: {exc}"})
            continue
        face = StageStatus.FACE if chk.face else StageStatus.OK
        why = (f"a face is detected on its surface renders (score {chk.best_score:.2f} > "
               f"{FACE_SCORE_THRESHOLD} at yaw/pitch {chk.best_view} deg) and it is not planned "
               "for defacing: withheld") if chk.face else ""
        if chk.brain_only is not None and not chk.face:
            why = (f"the face detector scored {chk.best_score:.2f} at yaw/pitch "
                   f"{chk.best_view} deg, but {chk.brain_only.reason()}")
        rows.append({"image": p.name, "status": face, "reason": why, "summary": chk.summary()})
        if chk.face and qc_dir is not None:
            from PIL import Image

            name = f"{p.name.removesuffix('.nii.gz')}.png"
            Path(qc_dir).mkdir(parents=True, exist_ok=True)
            Image.fromarray(detection_picture(chk)).save(Path(qc_dir) / name, format="PNG")
            rows[-1]["qc"] = [name]
    return {"images": rows}
