"""Face-bearing template and its low-resolution affine registration onto a head.

The template, its face mask and its brain mask are vendored, downsampled copies of the
MIT-licensed files in the ``pydeface`` wheel (see ``neurodeid/data/deface_LICENSE-pydeface.txt``
and :mod:`neurodeid.deface._build_template`). The brain mask was derived from the template by
intensity, independently of the face mask.

Conventions
-----------
* Arrays are indexed in voxel order ``(i, j, k)`` as nibabel returns them.
* Affines given to and returned by this module are **RAS+ mm** (nibabel convention),
  ``xyz = A @ [i, j, k, 1]``. SimpleITK works in **LPS** mm; conversions happen only inside
  :func:`neurodeid.geometry.to_sitk` and :func:`_sitk_affine_to_ras`.
* The registration result is a 4 x 4 matrix ``subject RAS+ mm -> template RAS+ mm``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..geometry import LPS, block_mean, to_sitk

TEMPLATE_FILES = {
    "template": "deface_template_3mm.nii.gz",
    "face": "deface_facemask_3mm.nii.gz",
    "brain": "deface_brainmask_3mm.nii.gz",
}


@dataclass
class Template:
    """The vendored template.

    Attributes
    ----------
    image : ndarray, float32, voxel (i, j, k)
        Head template intensities (T1-like).
    face : ndarray, float32 in [0, 1]
        Fraction of each voxel inside the face region to remove.
    brain : ndarray, float32 in [0, 1]
        Fraction of each voxel inside the template brain mask.
    affine : ndarray (4, 4)
        Voxel (i, j, k) -> template RAS+ mm (about MNI-like, +y anterior, +z superior).
    """

    image: np.ndarray
    face: np.ndarray
    brain: np.ndarray
    affine: np.ndarray


_CACHE: dict[str, Template] = {}


def load_template() -> Template:
    """Load (and cache) the vendored template from ``neurodeid/data``."""
    if "t" not in _CACHE:
        import nibabel as nib

        base = resources.files("neurodeid") / "data"
        arrs = {}
        aff = None
        for key, name in TEMPLATE_FILES.items():
            with resources.as_file(base / name) as p:
                img = nib.load(str(p))
                arr = np.asanyarray(img.dataobj).astype(np.float32)
                aff = img.affine
            arrs[key] = arr if key == "template" else arr / 255.0
        _CACHE["t"] = Template(arrs["template"], arrs["face"], arrs["brain"], aff)
    return _CACHE["t"]


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu threshold of a 1-D sample of intensities."""
    v = np.asarray(values, float).ravel()
    h, e = np.histogram(v, bins)
    c = (e[:-1] + e[1:]) / 2
    w0 = np.cumsum(h).astype(float)
    w1 = w0[-1] - w0
    s0 = np.cumsum(h * c)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    return float(c[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def axis_rotations() -> list[np.ndarray]:
    """The 24 proper rotations that map coordinate axes onto coordinate axes."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            r = np.zeros((3, 3))
            for row, (col, sg) in enumerate(zip(perm, signs)):
                r[row, col] = sg
            if np.linalg.det(r) > 0:
                out.append(r)
    return out


def _sitk_affine_to_ras(tx) -> np.ndarray:
    """4 x 4 RAS+ matrix (subject RAS mm -> template RAS mm) of an ITK transform that maps
    fixed (subject) LPS points to moving (template) LPS points."""
    m = np.array(tx.GetMatrix(), float).reshape(3, 3)
    c = np.array(tx.GetCenter(), float)
    t = np.array(tx.GetTranslation(), float)
    lps = np.eye(4)
    lps[:3, :3] = m
    lps[:3, 3] = -m @ c + c + t
    return LPS @ lps @ LPS


@dataclass
class Fit:
    """Result of :func:`register_template`.

    Attributes
    ----------
    subject_to_template : ndarray (4, 4)
        Subject RAS+ mm -> template RAS+ mm.
    mi : float
        Final Mattes mutual information (negative; lower is better).
    head_dice : float
        Dice of subject and registered template head masks on the subject's low-resolution
        grid (inside the subject's field of view): the quality number used for pass/fail.
    start : int
        Index of the winning axis-aligned start rotation (0 = no rotation).
    """

    subject_to_template: np.ndarray
    mi: float
    head_dice: float
    start: int


def register_template(
    data: np.ndarray,
    affine: np.ndarray,
    *,
    resolution_mm: float = 3.0,
    multistart: bool = True,
    n_refine: int = 2,
    iterations: int = 100,
    ct: bool = False,
    threads: int = 2,
    seed: int = 1,
    sample_fraction: float = 0.1,
    coarse_iterations: int = 25,
    refine_tol: float = 0.05,
    n_screen: int = 6,
) -> Fit:
    """Affine registration of the vendored template onto a head volume.

    Stages: (1) moments-centred rigid starts, one per axis-aligned rotation, screened by
    their unoptimised metric at twice ``resolution_mm``; the ``n_screen`` best are
    optimised briefly there (the right start is usually among them; not for vrd_seg3D, a
    head clipped below the eyes, turned 25 degrees about z: :func:`neurodeid.deface.core.deface_image`
    then optimises all 24, ``n_screen=0``); (2) the best start, plus up to ``n_refine - 1``
    others whose coarse metric is within ``refine_tol`` of the best (ambiguous cases only),
    refined as a similarity at twice ``resolution_mm`` and then as a full affine at
    ``resolution_mm``; the lowest final Mattes MI wins.

    Parameters
    ----------
    data : ndarray, voxel (i, j, k)
        Subject intensities (scaled values: MR arbitrary units or CT HU).
    affine : ndarray (4, 4)
        Subject voxel -> RAS+ mm.
    resolution_mm : float
        Working resolution (mm) of the subject; the template is 3 mm.
    multistart : bool
        Try the 24 axis-aligned rotations of the moments-centred start.
    n_refine : int
        At most this many starts are refined.
    iterations : int
        Optimiser iterations per refinement stage.
    ct : bool
        Window CT intensities to [-200, 300] HU before registration.
    threads : int
        SimpleITK threads.
    seed : int
        Seed of the metric's random sampling (results are deterministic for a seed).
    sample_fraction : float
        Fraction of voxels sampled by the metric in the refinement stages.
    coarse_iterations : int
        Optimiser iterations per multi-start candidate.
    refine_tol : float
        Coarse-metric tolerance (Mattes MI units) for refining more than one start.
    n_screen : int
        Starts kept after screening (0 = optimise all 24).

    Returns
    -------
    Fit
    """
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
    tpl = load_template()
    small, saff, _ = block_mean(data, affine, resolution_mm)
    if ct:
        small = np.clip(small, -200, 300)
    fixed = to_sitk(small, saff)
    moving = to_sitk(tpl.image, tpl.affine)
    coarse_f = to_sitk(*block_mean(small, saff, 2 * resolution_mm)[:2])
    coarse_m = to_sitk(*block_mean(tpl.image, tpl.affine, 2 * resolution_mm)[:2])

    # moments (centre of head intensity mass) in LPS
    thr_s = otsu(small)
    thr_t = otsu(tpl.image)

    def centroid(arr, aff, thr):
        idx = np.argwhere(arr > thr)
        w = arr[arr > thr]
        c = (idx * w[:, None]).sum(0) / w.sum()
        return (LPS @ aff @ np.r_[c, 1.0])[:3]

    c_f = centroid(small, saff, thr_s)
    c_m = centroid(tpl.image, tpl.affine, thr_t)

    def make_reg(percent, iters, step):
        r = sitk.ImageRegistrationMethod()
        r.SetMetricAsMattesMutualInformation(32)
        r.SetMetricSamplingStrategy(r.RANDOM)
        r.SetMetricSamplingPercentage(percent, seed)
        r.SetInterpolator(sitk.sitkLinear)
        r.SetOptimizerAsRegularStepGradientDescent(
            learningRate=step, minStep=0.05, numberOfIterations=iters, relaxationFactor=0.6
        )
        r.SetOptimizerScalesFromPhysicalShift()
        return r

    rotations = axis_rotations() if multistart else [np.eye(3)]
    # identity first so that index 0 is "header orientation"
    rotations.sort(key=lambda r: -np.trace(r))
    def start_tx(rot):
        tx = sitk.Euler3DTransform()
        tx.SetCenter([float(x) for x in c_f])
        # fixed point x -> rot (x - c_f) + c_m
        tx.SetMatrix([float(x) for x in rot.ravel()])
        tx.SetTranslation([float(x) for x in (c_m - c_f)])
        return tx

    cand = list(enumerate(rotations))
    if len(cand) > n_screen > 0:
        # screen: metric of every unoptimised start (all coarse voxels), keep the best
        screened = []
        for n, rot in cand:
            r = sitk.ImageRegistrationMethod()
            r.SetMetricAsMattesMutualInformation(32)
            r.SetMetricSamplingStrategy(r.NONE)
            r.SetInterpolator(sitk.sitkLinear)
            r.SetInitialTransform(start_tx(rot))
            try:
                screened.append((r.MetricEvaluate(coarse_f, coarse_m), n, rot))
            except RuntimeError:
                continue
        screened.sort(key=lambda s: s[0])
        cand = [(n, rot) for _, n, rot in screened[:n_screen]]
    starts = []
    for n, rot in cand:
        tx = start_tx(rot)
        if len(rotations) > 1:
            r = make_reg(0.25, coarse_iterations, 4.0)
            r.SetInitialTransform(tx, inPlace=True)
            try:
                r.Execute(coarse_f, coarse_m)
                val = r.GetMetricValue()
            except RuntimeError:
                continue
        else:
            val = 0.0
        starts.append((val, n, tx))
    if not starts:
        raise RuntimeError("every registration start failed")
    starts.sort(key=lambda s: s[0])
    chosen = [s for s in starts[: max(1, n_refine)] if s[0] <= starts[0][0] + refine_tol]

    best = None
    for val, n, tx in chosen:
        # affine (matrix parametrisation) from the rigid start: a versor-based similarity
        # stage is singular at 180 degree starts and converged to poor fits there
        aff = sitk.AffineTransform(3)
        aff.SetCenter(tx.GetCenter())
        aff.SetMatrix(tx.GetMatrix())
        aff.SetTranslation(tx.GetTranslation())
        try:
            r = make_reg(0.5, iterations, 2.0)
            r.SetInitialTransform(aff, inPlace=True)
            r.Execute(coarse_f, coarse_m)
            r = make_reg(sample_fraction, iterations, 1.0)
            r.SetInitialTransform(aff, inPlace=True)
            r.Execute(fixed, moving)
            mi = r.GetMetricValue()
        except RuntimeError:
            continue
        if best is None or mi < best[0]:
            best = (mi, n, aff)
    if best is None:
        raise RuntimeError("every registration start failed")
    mi, n, aff = best
    s2t = _sitk_affine_to_ras(aff)
    # quality: Dice of head masks on the subject's small grid
    tpl_on_subj = resample_to(tpl.image, tpl.affine, small.shape, saff, s2t, order=1)
    a = small > thr_s
    b = tpl_on_subj > thr_t
    dice = 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())
    return Fit(s2t, float(mi), float(dice), int(n))


def resample_to(src, src_affine, shape, affine, subject_to_src=None, order=1, cval=0.0):
    """Sample ``src`` (voxel (i, j, k) with RAS+ ``src_affine``) on the grid ``shape`` /
    ``affine`` (RAS+), optionally through ``subject_to_src`` (grid RAS mm -> src RAS mm).

    Returns a float32 array of ``shape``.
    """
    from scipy import ndimage as ndi

    m = np.linalg.inv(src_affine)
    if subject_to_src is not None:
        m = m @ subject_to_src
    m = m @ affine
    return ndi.affine_transform(
        np.asarray(src, np.float32), m[:3, :3], m[:3, 3], output_shape=tuple(shape),
        order=order, mode="constant", cval=cval, output=np.float32,
    )
