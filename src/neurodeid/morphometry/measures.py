"""Morphometry checks: did defacing leave the brain alone?

The same brain extraction and 3-class tissue segmentation (CSF / grey matter / white
matter) run on the original and, independently, on the defaced image; the two results are
compared. Nothing here reads the defacing method's own masks (an optional removal mask is
only *measured*, never used to find the brain).

Pipeline per image (:func:`analyse_head`)
-----------------------------------------
1. Affine registration (SimpleITK, Mattes mutual information, moments-centred start,
   similarity then affine) of the vendored pydeface-derived template (MIT, see
   ``neurodeid/data/deface_LICENSE-pydeface.txt``; template, brain mask and face mask are
   read, never written) onto the head at ``reg_mm`` (3 mm). The metric only looks within
   12 mm of the template brain, outside its face region, and skips subject voxels at the
   image minimum (air, or anything a defacing removed): removing the face barely moves
   the fit.
2. The template brain mask, carried through the fit onto a working grid (``work_mm``,
   2 mm by default) and dilated by 3 mm, is refined by intensity: a smooth bias field
   (smoothed white-matter intensity) is divided out, a 3-class k-means inside the prior
   gives CSF / GM / WM centres, brain tissue is brighter than the CSF-GM midpoint; the
   candidate is opened, reduced to its largest component, closed and hole-filled (so
   ventricles and sulcal CSF count as brain), then replicated onto the full-resolution
   grid.
3. A 3-class 1-D Gaussian mixture (EM on a histogram, initialised by quantiles: no random
   numbers) of the bias-corrected full-resolution intensities inside the brain mask labels
   CSF (1), GM (2) and WM (3).

4. Independent brain check (:func:`independent_brain_check`, when a margin is given): the
   brain is extracted again from the original by BET's surface deformation
   (:mod:`neurodeid.deface.brainmask`: no template, no Otsu, nothing shared with the
   defacer or with steps 1-3), and the defacing must change no voxel inside it and keep
   every change at least the defacing's margin away. Steps 1-3 share the template and the
   Otsu threshold with the defacer: they stay as a second opinion.

Conventions
-----------
* Arrays are voxel ``(i, j, k)`` in the order nibabel returns them (any orientation: the
  NIfTI affine says which way is which; nothing is reoriented).
* Affines are voxel -> **RAS+ mm** (nibabel). SimpleITK works in **LPS mm**; the flip
  happens only in :func:`neurodeid.geometry.to_sitk`.
* Volumes are millilitres (ml = 1000 mm^3); Dice is a fraction in [0, 1]; ``*_delta_pct``
  is ``100 * (defaced - original) / original`` (signed, %).
* Determinism: no random numbers except the metric sampling, which uses ``seed``;
  SimpleITK runs with a fixed thread count (``threads``, default 1). The same inputs give
  the same numbers.

Public API
----------
:func:`compare_images`, :func:`compare_arrays`, :func:`analyse_head`,
:func:`independent_brain_check`, :class:`MorphometryThresholds`, :func:`verdict`, :func:`write_image_tsv`,
:func:`read_tsv`, :func:`summarize`, :func:`plot_summary`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .. import geometry
from ..geometry import LPS, block_mean, from_sitk, to_sitk, upsample
from .. import records
from ..records import write_tsv
from ..results import Check

__all__ = [
    "MEASURE_COLUMNS",
    "TISSUES",
    "HeadAnalysis",
    "MorphometryError",
    "MorphometryThresholds",
    "analyse_head",
    "compare_arrays",
    "compare_images",
    "independent_brain_check",
    "plot_summary",
    "read_tsv",
    "summarize",
    "verdict",
    "write_image_tsv",
]

TISSUES = ("csf", "gm", "wm")  # labels 1, 2, 3
class MorphometryError(RuntimeError):
    """Morphometry could not be measured (unreadable input, grids that differ, failed
    registration). The message names the file and what to do."""


# --------------------------------------------------------------------------- helpers
def _template():
    """The vendored template (shared with, and cached by, the defacing package):
    ``({"template", "brain", "face"} arrays, affine RAS+ mm)``."""
    from ..deface.template import load_template

    t = load_template()
    return {"template": t.image, "brain": t.brain, "face": t.face}, t.affine


def _otsu(values, bins=256) -> float:
    """Otsu threshold (the defacing package's, so both stages threshold alike)."""
    from ..deface.template import otsu

    return otsu(values, bins)


def _kmeans_1d(v, k=3, iters=100, bins=1024) -> np.ndarray:
    """Deterministic 1-D k-means (quantile start) on a fine histogram of ``v``; returns
    sorted centres (intensity units)."""
    v = np.asarray(v, np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return np.full(k, lo)
    h, e = np.histogram(v, bins, (lo, hi))
    x = (e[:-1] + e[1:]) / 2
    cdf = np.cumsum(h) / h.sum()
    c = np.array([x[min(np.searchsorted(cdf, q), bins - 1)] for q in (np.arange(k) + 0.5) / k])
    for _ in range(iters):
        lab = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)
        new = np.array([np.average(x[lab == j], weights=h[lab == j])
                        if h[lab == j].sum() > 0 else c[j] for j in range(k)])
        if np.allclose(new, c, rtol=0, atol=1e-9 * (hi - lo)):
            break
        c = new
    return np.sort(c)


def _gmm_1d(v, k=3, iters=100, bins=512):
    """Deterministic 1-D Gaussian mixture by EM on a histogram of ``v``.

    Returns ``(means, sds, weights, edges, labels_per_bin)`` with classes sorted by mean;
    ``labels_per_bin`` (1..k) is the maximum-posterior class of each histogram bin."""
    v = np.asarray(v, np.float64)
    lo, hi = np.percentile(v, [0.0, 100.0])
    if hi <= lo:
        hi = lo + 1.0
    h, e = np.histogram(v, bins, (lo, hi))
    x = (e[:-1] + e[1:]) / 2
    h = h.astype(float)
    mu = _kmeans_1d(v, k)
    sd = np.full(k, max((hi - lo) / (4 * k), 1e-6))
    w = np.full(k, 1.0 / k)
    for _ in range(iters):
        p = w[None, :] * np.exp(-0.5 * ((x[:, None] - mu[None, :]) / sd[None, :]) ** 2) / sd[None, :]
        r = p / np.maximum(p.sum(1, keepdims=True), 1e-300)
        nk = (h[:, None] * r).sum(0)
        nk = np.maximum(nk, 1e-9)
        new_mu = (h[:, None] * r * x[:, None]).sum(0) / nk
        sd = np.sqrt((h[:, None] * r * (x[:, None] - new_mu[None, :]) ** 2).sum(0) / nk)
        sd = np.maximum(sd, (hi - lo) / bins)
        w = nk / nk.sum()
        done = np.allclose(new_mu, mu, rtol=0, atol=1e-6 * (hi - lo))
        mu = new_mu
        if done:
            break
    order = np.argsort(mu)
    mu, sd, w = mu[order], sd[order], w[order]
    p = w[None, :] * np.exp(-0.5 * ((x[:, None] - mu[None, :]) / sd[None, :]) ** 2) / sd[None, :]
    lab = np.argmax(p, axis=1) + 1
    # monotone labels along intensity (no CSF bin above a GM bin)
    lab = np.maximum.accumulate(lab)
    return mu, sd, w, e, lab.astype(np.uint8)


def _ball_ops(mask, radius_mm, zooms, op):
    """Binary dilation / erosion by a Euclidean radius (mm), via a distance transform."""
    from scipy import ndimage as ndi

    if op == "dilate":
        return ndi.distance_transform_edt(~mask, sampling=zooms) <= radius_mm
    return ndi.distance_transform_edt(mask, sampling=zooms) > radius_mm


def _largest_component(mask):
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def _dice(a, b) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s


# --------------------------------------------------------------------------- registration
def _register(data, affine, *, reg_mm, threads, seed, iterations=100, sample=0.1,
              final_sample=0.1, final_min_step=0.02, near_mm=12.0):
    """Affine fit of the template onto the head. Returns ``(transform, head_dice)``:
    an ITK transform mapping subject LPS points to template LPS points, and the Dice of the
    subject's and the registered template's head masks at ``reg_mm`` (quality number)."""
    import SimpleITK as sitk
    from scipy import ndimage as ndi

    tpl, taff = _template()
    small, saff, _ = block_mean(data, affine, reg_mm)
    fixed = to_sitk(small.astype(np.float32), saff)
    moving = to_sitk(tpl["template"], taff)
    # metric only near the template brain (brain, CSF, skull: what no acceptable defacing
    # removes), never the face ...
    tz = geometry.zooms(taff)
    near = ndi.distance_transform_edt(tpl["brain"] < 0.5, sampling=tz) <= near_mm
    face = ndi.distance_transform_edt(tpl["face"] < 0.5, sampling=tz) <= 6.0
    mmask = to_sitk((near & ~face).astype(np.uint8), taff)
    # ... and never at subject voxels holding the image minimum (air, or removed by
    # defacing: the same rule on the original and the defaced image)
    valid = block_mean((data > data.min()).astype(np.float32), affine, reg_mm)[0] > 0.999
    fmask = to_sitk(valid.astype(np.uint8), saff)

    thr_s = _otsu(small)
    thr_t = _otsu(tpl["template"])

    def centroid(arr, aff, thr):
        idx = np.argwhere(arr > thr)
        w = arr[arr > thr].astype(float)
        c = (idx * w[:, None]).sum(0) / w.sum()
        return (LPS @ aff @ np.r_[c, 1.0])[:3]

    c_f = centroid(small, saff, thr_s)
    c_m = centroid(tpl["template"], taff, thr_t)

    def run(tx, shrink, sigma, step, pct, min_step=0.02):
        r = sitk.ImageRegistrationMethod()
        r.SetNumberOfThreads(int(threads))
        r.SetMetricAsMattesMutualInformation(32)
        r.SetMetricMovingMask(mmask)
        r.SetMetricFixedMask(fmask)
        r.SetMetricSamplingStrategy(r.RANDOM)
        r.SetMetricSamplingPercentage(pct, int(seed) + 1)
        r.SetInterpolator(sitk.sitkLinear)
        r.SetOptimizerAsRegularStepGradientDescent(
            learningRate=step, minStep=min_step, numberOfIterations=iterations,
            relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
        r.SetOptimizerScalesFromPhysicalShift()
        r.SetShrinkFactorsPerLevel(shrink)
        r.SetSmoothingSigmasPerLevel(sigma)
        r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
        r.SetInitialTransform(tx, inPlace=True)
        r.Execute(fixed, moving)
        return r.GetMetricValue()

    sim = sitk.Similarity3DTransform()
    sim.SetCenter([float(x) for x in c_f])
    sim.SetTranslation([float(x) for x in (c_m - c_f)])
    # ITK metrics and pyramid filters use the global thread count, and their sums depend on
    # how work is split: fix it for the call (restored afterwards) so results repeat
    old = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
    try:
        run(sim, [2, 1], [4.0, 2.0], 2.0, sample)
        aff = sitk.AffineTransform(3)
        aff.SetCenter(sim.GetCenter())
        aff.SetMatrix(sim.GetMatrix())
        aff.SetTranslation(sim.GetTranslation())
        run(aff, [1], [1.0], 1.0, final_sample, final_min_step)
    except RuntimeError as e:
        raise MorphometryError(f"template registration failed ({e})") from e
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(old)
    res = sitk.ResampleImageFilter()
    res.SetNumberOfThreads(int(threads))
    res.SetReferenceImage(fixed)
    res.SetTransform(aff)
    res.SetInterpolator(sitk.sitkLinear)
    res.SetDefaultPixelValue(0.0)
    t_on_s = from_sitk(res.Execute(moving))
    return aff, _dice(small > thr_s, t_on_s > thr_t)


def _warp_template(key, transform, shape, affine, threads):
    """Template channel ``key`` ('brain', 'face') resampled on a subject grid (linear,
    values in [0, 1])."""
    import SimpleITK as sitk

    tpl, taff = _template()
    ref = sitk.Image([int(s) for s in shape], sitk.sitkUInt8)
    g = to_sitk(np.zeros((1, 1, 1), np.uint8), affine)
    ref.SetSpacing(g.GetSpacing())
    ref.SetOrigin(g.GetOrigin())
    ref.SetDirection(g.GetDirection())
    res = sitk.ResampleImageFilter()
    res.SetNumberOfThreads(int(threads))
    res.SetReferenceImage(ref)
    res.SetOutputPixelType(sitk.sitkFloat32)
    res.SetTransform(transform)
    res.SetInterpolator(sitk.sitkLinear)
    res.SetDefaultPixelValue(0.0)
    return from_sitk(res.Execute(to_sitk(tpl[key].astype(np.float32), taff)))


# --------------------------------------------------------------------------- analysis
@dataclass
class HeadAnalysis:
    """Brain extraction and tissue segmentation of one head.

    Attributes
    ----------
    brain : ndarray of bool, voxel (i, j, k) on the image's own (full-resolution) grid
        Brain mask (brain tissue, ventricles and sulcal CSF).
    labels : ndarray of uint8, same grid
        0 outside the brain, 1 CSF, 2 GM, 3 WM.
    voxel_ml : float
        Volume of one voxel of the image grid (ml).
    transform : SimpleITK transform
        Subject LPS mm -> template LPS mm.
    registration_dice : float
        Head-mask Dice of subject and registered template at the registration resolution.
    tissue_means : tuple of float
        Mixture means (CSF, GM, WM), image intensity units.
    head_threshold : float
        Otsu threshold separating head from background (image intensity units).
    """

    brain: np.ndarray
    labels: np.ndarray
    voxel_ml: float
    transform: object
    registration_dice: float
    tissue_means: tuple
    head_threshold: float


def analyse_head(data, affine, *, seed=0, threads=1, reg_mm=3.0, work_mm=2.0,
                 prior_dilate_mm=3.0, open_mm=2.0, close_mm=3.0, bias_sigma_mm=20.0,
                 min_registration_dice=0.6,
                 name="image") -> HeadAnalysis:
    """Brain mask and CSF / GM / WM labels of a T1-weighted head.

    Parameters
    ----------
    data : ndarray, voxel (i, j, k), 3-D
        Scaled intensities.
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm.
    seed : int
        Seed of the registration metric's sampling.
    threads : int
        SimpleITK threads (fixed, so the result is reproducible).
    reg_mm, work_mm : float
        Registration and brain-mask resolutions (mm); the image is block-averaged by an
        integer factor per axis to get there, and the brain mask is replicated back onto
        the full-resolution grid. Tissue classes are assigned at full resolution.
    prior_dilate_mm, open_mm, close_mm : float
        Dilation of the registered template brain mask, and the opening and closing radii
        of the intensity refinement (mm).
    bias_sigma_mm : float
        Gaussian width (mm) of the smooth intensity-bias estimate (smoothed white-matter
        intensity inside the prior, two passes), divided out before thresholding and
        classifying.
    min_registration_dice : float
        Below this head-mask Dice the registration is judged failed.
    name : str
        Used in error messages.

    Raises
    ------
    MorphometryError
        Registration failed or no brain was found.
    """
    from scipy import ndimage as ndi

    # a fresh, aligned copy: numpy's float reductions may round differently on a view into
    # an unaligned buffer (as nibabel can return), which would break repeatability
    data = np.array(data, dtype=np.float32, order="C", copy=True)
    if data.ndim != 3:
        raise MorphometryError(f"{name}: expected a 3-D volume, got shape {data.shape}")
    tx, rdice = _register(data, affine, reg_mm=reg_mm, threads=threads, seed=seed)
    if rdice < min_registration_dice:
        raise MorphometryError(
            f"{name}: template registration failed (head-mask Dice {rdice:.3f} < "
            f"{min_registration_dice}); check the image orientation in the NIfTI header")
    work, waff, f = block_mean(data, affine, work_mm)
    # voxels at the image minimum are background or removed (defacing fills with it): they
    # never enter the intensity statistics
    dmin = float(data.min())
    valid_w = block_mean((data > dmin).astype(np.float32), affine, work_mm)[0] > 0.999
    wz = geometry.zooms(waff)
    prior = _warp_template("brain", tx, work.shape, waff, threads)
    core = prior > 0.5
    if core.sum() < 100:
        raise MorphometryError(f"{name}: registered brain prior is empty; check the image")
    # crop to the dilated prior's bounding box (speed)
    allowed_full = _ball_ops(core, prior_dilate_mm, wz, "dilate")
    nz = np.argwhere(allowed_full)
    pad = math.ceil(max(open_mm, close_mm) / wz.min()) + 2
    lo = np.maximum(nz.min(0) - pad, 0)
    hi = np.minimum(nz.max(0) + pad + 1, work.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    w = work[sl]
    allowed = allowed_full[sl]
    corec = core[sl] & valid_w[sl]
    bias = np.ones(w.shape, np.float32)
    c = _kmeans_1d(w[corec])
    for _ in range(2):  # crude bias-field estimate: smoothed white-matter intensity
        wm = corec & (w / bias > 0.5 * (c[1] + c[2]))
        sig = bias_sigma_mm / wz
        num = ndi.gaussian_filter(np.where(wm, w, 0).astype(np.float32), sig, truncate=3.0)
        den = ndi.gaussian_filter(wm.astype(np.float32), sig, truncate=3.0)
        med = float(np.median(w[wm])) if wm.any() else 1.0
        bias = ((num / med + 0.05) / (den + 0.05)).astype(np.float32)
        c = _kmeans_1d((w / bias)[corec])
    w = w / bias
    thr = 0.5 * (c[0] + c[1])
    cand = (w > thr) & allowed
    cand = _ball_ops(_ball_ops(cand, open_mm, wz, "erode"), open_mm, wz, "dilate") & cand
    cand = _largest_component(cand)
    if cand.sum() == 0:
        raise MorphometryError(f"{name}: no brain found inside the registered prior")
    cand = _ball_ops(_ball_ops(cand, close_mm, wz, "dilate"), close_mm, wz, "erode")
    brain_c = ndi.binary_fill_holes(cand & allowed)
    brain_w = np.zeros(work.shape, bool)
    brain_w[sl] = brain_c
    brain = upsample(brain_w, f, data.shape)
    bias_w = np.ones(work.shape, np.float32)
    bias_w[sl] = bias
    # tissue classes at full resolution inside the brain mask (bias-corrected intensities)
    vals = data[brain] / upsample(bias_w, f, data.shape)[brain]
    mu, _sd, _w, edges, lab_bins = _gmm_1d(vals[data[brain] > dmin])
    idx = np.clip(np.searchsorted(edges, vals, side="right") - 1, 0, len(lab_bins) - 1)
    labels = np.zeros(data.shape, np.uint8)
    labels[brain] = lab_bins[idx]
    vox_ml = float(abs(np.linalg.det(np.asarray(affine, float)[:3, :3]))) / 1000.0
    return HeadAnalysis(labels > 0, labels, vox_ml, tx, float(rdice), tuple(float(x) for x in mu),
                        _otsu(work))


def _pct(new, old) -> float:
    return float("nan") if old == 0 else 100.0 * (new - old) / old


def compare_arrays(original, defaced, affine, removal_mask=None, *, face_region=None, seed=0,
                   threads=1, name="image", brain_margin_mm=None, **analysis_kw) -> dict:
    """Morphometry of an original / defaced pair given as arrays on the same grid.

    Parameters
    ----------
    original, defaced : ndarray, voxel (i, j, k), 3-D or 4-D (volume 0 is segmented;
        changes are counted over every volume)
        Scaled intensities on the same grid.
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm of both.
    removal_mask : ndarray of bool, optional, voxel (i, j, k)
        The defacing's removal mask; only measured (``removal_mask_ml``,
        ``removal_mask_brain_voxels``), never used to find the brain.
    face_region : ndarray of bool, optional, voxel (i, j, k)
        Region where the face should be gone. Default: the template face mask registered
        onto the original.
    seed, threads, analysis_kw
        Passed to :func:`analyse_head`.
    brain_margin_mm : float, optional
        When given, also judge the defacing with an independent brain mask
        (:func:`neurodeid.deface.brainmask.extract_brain` of the original: BET's algorithm,
        no template, no Otsu) against this margin (mm): ``independent_*`` measures, judged
        by :func:`verdict`. The template-based measures stay as a second opinion.

    Returns
    -------
    dict
        Flat, JSON-able; keys carry units (see :data:`MEASURE_COLUMNS`).
    """
    original = np.asarray(original)
    defaced = np.asarray(defaced)
    if original.shape != defaced.shape:
        raise MorphometryError(
            f"{name}: original {original.shape} and defaced {defaced.shape} grids differ; "
            "the defaced image must keep the original grid")
    o3 = original if original.ndim == 3 else original.reshape(original.shape[:3] + (-1,))[..., 0]
    d3 = defaced if defaced.ndim == 3 else defaced.reshape(defaced.shape[:3] + (-1,))[..., 0]
    changed = original != defaced
    if changed.ndim > 3:
        changed = changed.reshape(changed.shape[:3] + (-1,)).any(axis=3)
    a = analyse_head(o3, affine, seed=seed, threads=threads, name=name, **analysis_kw)
    b = analyse_head(d3, affine, seed=seed, threads=threads, name=name + " (defaced)",
                     **analysis_kw)
    v = a.voxel_ml
    m: dict = {}
    m["brain_voxels_changed"] = int(np.logical_and(a.brain, changed).sum())
    m["brain_dice"] = _dice(a.brain, b.brain)
    m["brain_ml_original"] = a.brain.sum() * v
    m["brain_ml_defaced"] = b.brain.sum() * v
    m["brain_delta_pct"] = _pct(m["brain_ml_defaced"], m["brain_ml_original"])
    for k, t in enumerate(TISSUES, start=1):
        ta, tb = a.labels == k, b.labels == k
        m[f"{t}_ml_original"] = ta.sum() * v
        m[f"{t}_ml_defaced"] = tb.sum() * v
        m[f"{t}_delta_pct"] = _pct(m[f"{t}_ml_defaced"], m[f"{t}_ml_original"])
        m[f"{t}_dice"] = _dice(ta, tb)
    m["removed_ml"] = changed.sum() * v
    if removal_mask is not None:
        rm = np.asarray(removal_mask).astype(bool)
        if rm.shape[:3] != original.shape[:3]:
            raise MorphometryError(f"{name}: removal mask {rm.shape} is not on the image grid "
                                   f"{original.shape[:3]}")
        rm = rm.reshape(rm.shape[:3] + (-1,)).any(axis=3) if rm.ndim > 3 else rm
        m["removal_mask_ml"] = rm.sum() * v
        m["removal_mask_brain_voxels"] = int(np.logical_and(rm, a.brain).sum())
    if face_region is None:
        face = _warp_template("face", a.transform, o3.shape, affine, threads) > 0.5
        m["face_region_source"] = "template"
    else:
        face = np.asarray(face_region).astype(bool)
        if face.shape[:3] != o3.shape:
            raise MorphometryError(f"{name}: face region {face.shape} is not on the image grid")
        m["face_region_source"] = "given"
    m["face_region_ml"] = face.sum() * v
    m["face_region_head_ml_original"] = np.logical_and(face, o3 > a.head_threshold).sum() * v
    m["face_region_residual_ml"] = np.logical_and(face, d3 > a.head_threshold).sum() * v
    m["registration_dice_original"] = a.registration_dice
    m["registration_dice_defaced"] = b.registration_dice
    if brain_margin_mm is not None:
        m.update(independent_brain_check(o3, original, defaced, affine, brain_margin_mm))
    out = {}
    for k, val in m.items():
        if isinstance(val, (float, np.floating)):
            out[k] = round(float(val), 6)
        elif isinstance(val, (np.integer,)):
            out[k] = int(val)
        else:
            out[k] = val
    return out


def independent_brain_check(volume0, original, defaced, affine, margin_mm) -> dict:
    """Brain safety judged by a mask that shares nothing with the defacer.

    Parameters
    ----------
    volume0 : ndarray, voxel (i, j, k), 3-D
        The original's first volume (the brain is extracted from it).
    original, defaced : ndarray, voxel (i, j, k), 3-D or 4-D
        Changed voxels are counted over every volume.
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm.
    margin_mm : float
        The defacing's brain margin (mm).

    Returns
    -------
    dict
        ``independent_extractor``, ``independent_brain_ml``,
        ``independent_brain_voxels_changed`` (count; must be 0),
        ``independent_min_distance_mm`` (changed voxel to the mask; ``inf`` when nothing
        changed; must be >= the margin), ``independent_margin_mm``.
    """
    from ..deface.brainmask import brain_safety, extract_brain
    from ..deface.core import detect_ct

    zooms = geometry.zooms(affine)
    bm = extract_brain(volume0, zooms, ct=detect_ct(np.asarray(volume0, np.float32)))
    bs = brain_safety(original, defaced, bm.mask, zooms, margin_mm)
    # no seconds here: the table is released and must be the same on every rerun
    return {"independent_extractor": bm.extractor, "independent_brain_ml": bm.volume_ml,
            "independent_brain_voxels_changed": bs.brain_voxels_changed,
            "independent_min_distance_mm": bs.min_distance_mm,
            "independent_margin_mm": float(margin_mm)}


def _load(path, what):
    import nibabel as nib

    try:
        img = nib.load(str(path))
        return img, np.asanyarray(img.dataobj)
    except Exception as e:  # nibabel raises many types
        raise MorphometryError(f"{Path(path).name}: cannot read the {what} as NIfTI ({e}); "
                               "give a .nii or .nii.gz") from e


def compare_images(original_nifti, defaced_nifti, removal_mask_nifti=None, *, face_region=None,
                   seed=0, threads=1, brain_margin_mm=None, **analysis_kw) -> dict:
    """Morphometry of an original / defaced pair of NIfTI files.

    Parameters
    ----------
    original_nifti, defaced_nifti : path-like
        The head before and after defacing; same grid (shape and affine, any orientation).
    removal_mask_nifti : path-like, optional
        The defacing's removal mask (non-zero = removed), on the same grid; measured only.
    face_region : path-like or ndarray of bool, optional
        Where the face should be gone (voxel (i, j, k) on the image grid). Default: the
        template face mask registered onto the original.
    seed, threads, analysis_kw
        See :func:`analyse_head`.
    brain_margin_mm : float, optional
        Judge with the independent brain mask too (see :func:`compare_arrays`).

    Returns
    -------
    dict
        ``brain_voxels_changed`` (count, full resolution; must be 0), ``brain_dice``,
        ``brain_ml_original``, ``brain_ml_defaced``, ``brain_delta_pct``, per tissue
        (``csf``, ``gm``, ``wm``) ``*_ml_original``, ``*_ml_defaced``, ``*_delta_pct``,
        ``*_dice``, ``removed_ml``, optional ``removal_mask_ml`` and
        ``removal_mask_brain_voxels``, ``face_region_source``, ``face_region_ml``,
        ``face_region_head_ml_original``, ``face_region_residual_ml``,
        ``registration_dice_original`` / ``_defaced``.

    Raises
    ------
    MorphometryError
        Unreadable files, grids that differ, failed registration.
    """
    name = Path(original_nifti).name
    img_o, d_o = _load(original_nifti, "original")
    img_d, d_d = _load(defaced_nifti, "defaced image")
    if img_o.shape != img_d.shape or not np.allclose(img_o.affine, img_d.affine, atol=1e-4):
        raise MorphometryError(
            f"{name}: the defaced image {Path(defaced_nifti).name} is not on the original grid "
            f"(shape {img_d.shape} vs {img_o.shape}, or a different affine); deface onto the "
            "original grid")
    rm = None
    if removal_mask_nifti is not None:
        _, rm = _load(removal_mask_nifti, "removal mask")
        rm = np.asarray(rm) != 0
    face = face_region
    if face is not None and not isinstance(face, np.ndarray):
        face = np.asarray(_load(face, "face region")[1]) != 0
    return compare_arrays(d_o, d_d, img_o.affine, rm, face_region=face, seed=seed,
                          threads=threads, name=name, brain_margin_mm=brain_margin_mm,
                          **analysis_kw)


# --------------------------------------------------------------------------- verdict
@dataclass(frozen=True)
class MorphometryThresholds:
    """Verdict thresholds (from config). ``None`` disables a check.

    FAIL when any holds: brain voxels changed > ``fail_brain_voxels_changed`` (count);
    brain Dice < ``fail_brain_dice``; |brain delta| > ``fail_brain_delta_pct`` (%);
    |tissue delta| > ``fail_tissue_delta_pct`` (%); tissue Dice < ``fail_tissue_dice``;
    removal mask overlapping the brain by > ``fail_removal_mask_brain_voxels`` voxels.
    WARN (if not FAIL): brain Dice < ``warn_brain_dice``; |brain delta| >
    ``warn_brain_delta_pct``; |GM or WM delta| > ``warn_tissue_delta_pct``; |CSF delta| >
    ``warn_csf_delta_pct`` (CSF is a small, border-dominated class: cropping only the neck
    of Colin27, 60 mm below the brain centre, moved it by 1.1 %); tissue Dice <
    ``warn_tissue_dice``; face-region residual > ``warn_face_residual_fraction`` of the
    head tissue that was there (a defacing that left the face: a privacy warning, not a
    morphometry change).

    The independent brain check (measured when the image was compared with a margin, see
    :func:`compare_arrays`) FAILs when a voxel inside the independent brain mask changed
    (> ``fail_independent_brain_voxels_changed``), when a changed voxel lies closer to that
    mask than the defacing's margin (``independent_min_distance_mm`` <
    ``independent_margin_mm``), or when the mask's volume is implausible (outside
    ``fail_independent_brain_ml_min`` - ``_max`` ml: a collapsed mask would judge nothing,
    a whole-head mask everything).
    """

    fail_brain_voxels_changed: int | None = 0
    fail_brain_dice: float | None = 0.98
    fail_brain_delta_pct: float | None = 1.0
    fail_tissue_delta_pct: float | None = 5.0
    fail_tissue_dice: float | None = 0.9
    fail_removal_mask_brain_voxels: int | None = 0
    warn_brain_dice: float | None = 0.995
    warn_brain_delta_pct: float | None = 0.5
    warn_tissue_delta_pct: float | None = 1.0
    warn_csf_delta_pct: float | None = 2.0
    warn_tissue_dice: float | None = 0.98
    warn_face_residual_fraction: float | None = 0.5
    fail_independent_brain_voxels_changed: int | None = 0
    fail_independent_brain_ml_min: float | None = 300.0
    fail_independent_brain_ml_max: float | None = 2600.0

    @classmethod
    def from_config(cls, cfg: dict | None) -> MorphometryThresholds:
        """Build from a config mapping; unknown keys raise ``ValueError`` naming them."""
        cfg = dict(cfg or {})
        names = {f.name for f in fields(cls)}
        bad = sorted(set(cfg) - names)
        if bad:
            raise ValueError(f"unknown morphometry threshold(s) {bad}; known: {sorted(names)}")
        return cls(**cfg)

    def as_dict(self) -> dict:
        return asdict(self)


def verdict(m: dict, thresholds: MorphometryThresholds | None = None) -> dict:
    """PASS / WARN / FAIL of one image's measures.

    Returns ``{"verdict": ..., "reasons": [str, ...]}``; each reason names the measure, its
    value with unit and the threshold it crossed, e.g.
    ``"FAIL brain_dice = 0.9512 (< 0.98; Dice, fraction)"`` or
    ``"FAIL brain_delta_pct = -1.562 % (|x| > 1.000 %)"``.
    """
    t = thresholds or MorphometryThresholds()
    fail: list[str] = []
    warn: list[str] = []

    def above(key, value, limit, unit, out, level):
        if limit is not None and value is not None and not _isnan(value) and abs(value) > limit:
            sign = "|x| " if not isinstance(value, (int, np.integer)) else ""
            out.append(f"{level} {key} = {_fmt(value)}{unit} ({sign}> {_fmt(limit)}{unit})")

    def below(key, value, limit, out, level):
        if limit is not None and value is not None and not _isnan(value) and value < limit:
            out.append(f"{level} {key} = {value:.4f} (< {limit}; Dice, fraction)")

    above("brain_voxels_changed", m["brain_voxels_changed"], t.fail_brain_voxels_changed,
          " voxels", fail, Check.FAIL)
    if "removal_mask_brain_voxels" in m:
        above("removal_mask_brain_voxels", m["removal_mask_brain_voxels"],
              t.fail_removal_mask_brain_voxels, " voxels", fail, Check.FAIL)
    below("brain_dice", m["brain_dice"], t.fail_brain_dice, fail, Check.FAIL)
    above("brain_delta_pct", m["brain_delta_pct"], t.fail_brain_delta_pct, " %", fail, Check.FAIL)
    for x in TISSUES:
        above(f"{x}_delta_pct", m[f"{x}_delta_pct"], t.fail_tissue_delta_pct, " %", fail, Check.FAIL)
        below(f"{x}_dice", m[f"{x}_dice"], t.fail_tissue_dice, fail, Check.FAIL)
    if m.get("independent_brain_voxels_changed") not in (None, ""):
        above("independent_brain_voxels_changed", m["independent_brain_voxels_changed"],
              t.fail_independent_brain_voxels_changed, " voxels", fail, Check.FAIL)
        dmin, margin = m.get("independent_min_distance_mm"), m.get("independent_margin_mm")
        if dmin is not None and margin is not None and float(dmin) < float(margin):
            fail.append(f"FAIL independent_min_distance_mm = {float(dmin):.2f} mm (< margin "
                        f"{float(margin):g} mm from the independent brain mask, "
                        f"{m.get('independent_extractor', '')})")
        ml = m.get("independent_brain_ml")
        lo, hi = t.fail_independent_brain_ml_min, t.fail_independent_brain_ml_max
        if ml is not None and ((lo is not None and ml < lo) or (hi is not None and ml > hi)):
            fail.append(f"FAIL independent_brain_ml = {float(ml):.1f} ml (outside {lo}-{hi} ml: "
                        "the independent brain extraction is implausible, brain safety "
                        "cannot be judged)")
    failed = {r.split()[1] for r in fail}
    below("brain_dice", m["brain_dice"], t.warn_brain_dice, warn, Check.WARN)
    above("brain_delta_pct", m["brain_delta_pct"], t.warn_brain_delta_pct, " %", warn, Check.WARN)
    for x in TISSUES:
        lim = t.warn_csf_delta_pct if x == "csf" else t.warn_tissue_delta_pct
        above(f"{x}_delta_pct", m[f"{x}_delta_pct"], lim, " %", warn, Check.WARN)
        below(f"{x}_dice", m[f"{x}_dice"], t.warn_tissue_dice, warn, Check.WARN)
    if t.warn_face_residual_fraction is not None and m.get("face_region_head_ml_original"):
        frac = m["face_region_residual_ml"] / m["face_region_head_ml_original"]
        if frac > t.warn_face_residual_fraction:
            warn.append(f"WARN face_region_residual_ml = {m['face_region_residual_ml']:.1f} ml, "
                        f"{frac:.2f} of the {m['face_region_head_ml_original']:.1f} ml of head "
                        f"tissue there before (> {t.warn_face_residual_fraction}): the face "
                        "may not be removed")
    warn = [r for r in warn if r.split()[1] not in failed]
    if fail:
        return {"verdict": Check.FAIL, "reasons": fail + warn}
    if warn:
        return {"verdict": Check.WARN, "reasons": warn}
    return {"verdict": Check.PASS, "reasons": []}


def _isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _fmt(x) -> str:
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.3f}"


# --------------------------------------------------------------------------- tables
#: Columns of the per-image TSV, in order (units in the names; Dice is a fraction).
MEASURE_COLUMNS = (
    ["image", "verdict", "brain_voxels_changed", "brain_dice", "brain_ml_original",
     "brain_ml_defaced", "brain_delta_pct"]
    + [f"{t}_{s}" for t in TISSUES for s in ("ml_original", "ml_defaced", "delta_pct", "dice")]
    + ["removed_ml", "removal_mask_ml", "removal_mask_brain_voxels", "face_region_source",
       "face_region_ml", "face_region_head_ml_original", "face_region_residual_ml",
       "registration_dice_original", "registration_dice_defaced",
       "independent_brain_voxels_changed", "independent_min_distance_mm",
       "independent_margin_mm", "independent_brain_ml", "independent_extractor", "reasons"]
)


def write_image_tsv(path, m: dict, v: dict, image: str | None = None) -> Path:
    """Write one image's measures and verdict as a one-row TSV.

    Parameters
    ----------
    path : path-like
        Output ``.tsv``.
    m, v : dict
        From :func:`compare_images` and :func:`verdict`.
    image : str, optional
        The image's BIDS name (e.g. ``sub-x_ses-y_T1w``); this is the only label written, so
        pass a released name, never an input path. Default: the TSV file name without
        ``.tsv`` and a trailing ``_morphometry``.

    Columns: :data:`MEASURE_COLUMNS` (empty cell = not measured; ``reasons`` joined by
    ``"; "``).
    """
    path = Path(path)
    if image is None:
        image = path.name.removesuffix(".tsv").removesuffix("_morphometry")
    row = {"image": image, "verdict": v["verdict"], "reasons": "; ".join(v.get("reasons", []))}
    for k in MEASURE_COLUMNS:
        if k not in row:
            row[k] = m.get(k, "")
    extra = [k for k in m if k not in MEASURE_COLUMNS]
    cols = list(MEASURE_COLUMNS) + extra
    for k in extra:
        row[k] = m[k]
    return write_tsv(path, cols, [{k: _cell(row[k]) for k in cols}])


def _cell(x):
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else repr(round(x, 6))
    return x


def read_tsv(path) -> list[dict]:
    """Rows of a per-image or summary TSV (all values as strings; :func:`neurodeid.records.read_tsv`)."""
    return records.read_tsv(path, OSError)


def summarize(tsv_paths, out_tsv) -> Path:
    """Concatenate per-image TSVs into one dataset TSV (rows sorted by ``image``).

    Columns are the union, in :data:`MEASURE_COLUMNS` order first."""
    rows = []
    for p in tsv_paths:
        rows.extend(read_tsv(p))
    rows.sort(key=lambda r: r.get("image", ""))
    cols = [c for c in MEASURE_COLUMNS if any(c in r for r in rows)]
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    return write_tsv(out_tsv, cols or list(MEASURE_COLUMNS), rows)


# --------------------------------------------------------------------------- plot
_PLOT_MEASURES = ("brain_delta_pct", "csf_delta_pct", "gm_delta_pct", "wm_delta_pct")
_VERDICT_RGB = {Check.PASS: (44, 160, 44), Check.WARN: (230, 150, 0), Check.FAIL: (214, 39, 40)}


def plot_summary(tsv_paths_or_summary, out_png, thresholds: MorphometryThresholds | None = None,
                 width=900, height=520) -> Path:
    """PNG strip plot of the signed delta % of brain and each tissue, one dot per image,
    coloured by verdict (green PASS, orange WARN, red FAIL), with the WARN / FAIL brain
    thresholds as dashed lines. Drawn with Pillow (no matplotlib needed). The only text is
    measure names, numbers and a legend of image labels (BIDS names from the TSV ``image``
    column, at most 12 listed).

    Parameters
    ----------
    tsv_paths_or_summary : path-like or list of path-like
        A summary TSV from :func:`summarize` or per-image TSVs.
    out_png : path-like
    """
    from PIL import Image, ImageDraw, ImageFont

    t = thresholds or MorphometryThresholds()
    src = tsv_paths_or_summary
    paths = [src] if isinstance(src, (str, Path)) else list(src)
    rows = []
    for p in paths:
        rows.extend(read_tsv(p))
    rows.sort(key=lambda r: r.get("image", ""))

    def num(x):
        try:
            v = float(x)
            return None if math.isnan(v) else v
        except (TypeError, ValueError):
            return None

    vals = [[num(r.get(k)) for k in _PLOT_MEASURES] for r in rows]
    flat = [abs(v) for vs in vals for v in vs if v is not None]
    lim = max([1.5 * (t.fail_brain_delta_pct or 1.0)] + [1.1 * v for v in flat])
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 80, 250, 40, 60
    pw, ph = width - left - right, height - top - bottom

    def y_of(v):
        return top + ph * (0.5 - 0.5 * max(-lim, min(lim, v)) / lim)

    d.rectangle([left, top, left + pw, top + ph], outline="black")
    d.text((left, 10), "defaced vs original: volume change (%) per measure", fill="black", font=font)
    step = next(s for s in (0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000)
                if lim / s <= 5) if lim <= 5000 else lim / 4
    for k in range(-int(lim / step), int(lim / step) + 1):
        v = k * step
        y = y_of(v)
        d.line([left - 5, y, left, y], fill="black")
        d.text((5, y - 8), f"{v:+g} %", fill="black", font=font)
    d.line([left, y_of(0), left + pw, y_of(0)], fill=(150, 150, 150))
    for lvl, col in ((t.warn_brain_delta_pct, _VERDICT_RGB[Check.WARN]),
                     (t.fail_brain_delta_pct, _VERDICT_RGB[Check.FAIL])):
        if lvl is None or lvl > lim:
            continue
        for s in (1, -1):
            y = y_of(s * lvl)
            for x in range(left, left + pw, 12):
                d.line([x, y, min(x + 6, left + pw), y], fill=col)
    n = len(_PLOT_MEASURES)
    for j, k in enumerate(_PLOT_MEASURES):
        xc = left + pw * (j + 0.5) / n
        d.text((xc - 45, top + ph + 10), k, fill="black", font=font)
        for i, (r, vs) in enumerate(zip(rows, vals)):
            v = vs[j]
            if v is None:
                continue
            jitter = ((i * 37) % 21 - 10) * pw / n / 40
            x, y = xc + jitter, y_of(v)
            col = _VERDICT_RGB.get(r.get("verdict", ""), (0, 0, 255))
            d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=col, outline="black")
    lx = left + pw + 15
    d.text((lx, top), "images (verdict)", fill="black", font=font)
    for i, r in enumerate(rows[:12]):
        col = _VERDICT_RGB.get(r.get("verdict", ""), (0, 0, 255))
        y = top + 22 + 18 * i
        d.ellipse([lx, y + 3, lx + 8, y + 11], fill=col, outline="black")
        d.text((lx + 14, y), f"{r.get('image', '')[:28]} {r.get('verdict', '')}", fill="black",
               font=font)
    yl = top + 22 + 18 * min(len(rows), 12)
    if len(rows) > 12:
        d.text((lx, yl), f"... {len(rows) - 12} more", fill="black", font=font)
        yl += 18
    d.text((lx, yl + 10), "dashed: brain_delta_pct", fill="black", font=font)
    d.text((lx, yl + 28), "limits (orange WARN, red FAIL)", fill="black", font=font)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
