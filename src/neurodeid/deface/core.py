"""Defacing: decide which voxels to remove, check safety, write the result.

Arrays are voxel-(i, j, k) ordered as nibabel returns them; ``affine`` is voxel -> RAS+ mm.
Four methods (see :mod:`neurodeid.deface.params`):

``template`` (default)
    remove the vendored template's face mask after an affine registration, plus the
    common removal step driven by the registered template brain (``envelope``).
``shell``
    remove everything beyond the convex shell of the protected region seen from the
    anterior-inferior side (:func:`_shell_removal`): a smooth cut in front of and below the
    brain, in template-aligned axes, where the template removal carves down to the
    protected region and leaves its orbital roofs and nasal cavity to look like a face.
``threshold-morphology`` / ``connected-threshold``
    estimate the brain by intensity (:mod:`neurodeid.deface.estimate`), then remove the
    tissue anterior of the brain's anterior envelope at each height, in template-aligned
    axes (so rotated or permuted headers are handled).

For every method the template registration also gives the *protected* region: the
registered template brain mask (derived from the template independently of its face mask)
dilated by ``brain_margin_mm``, united with the subject's own intensity brain (opened, within
``check_zone_mm`` of the template brain, dilated by ``refine_margin_mm``, at least the
margin) and with the independent brain mask (:mod:`neurodeid.deface.brainmask`) dilated
by ``brain_margin_mm`` when one is given. The removal never
touches it. A registration whose head Dice is below ``min_head_dice`` or whose final
mutual information is above ``max_registration_mi`` (CT: ``max_registration_mi_ct``), even
when made again with all 24 start orientations optimised, an implausible
removed volume, or any overlap of the removal with an intensity brain core computed without
registration (``check_erode_mm``) raises :class:`DefaceError`.

All masks are computed on a block grid of about ``work_mm`` (block means of the image) and
upsampled by nearest neighbour; the protected region is enlarged by half a block diagonal
so the margin holds for every voxel of the original grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from . import estimate
from .params import params_dict, split_params
from ..geometry import block_mean
from .template import axis_rotations, load_template, register_template, resample_to


class DefaceError(RuntimeError):
    """Defacing failed or was judged unsafe; the message names the image, what failed and
    what to do."""


@dataclass
class DefaceResult:
    """Masks and numbers of one defacing (no file I/O).

    Attributes
    ----------
    removal : bool ndarray, voxel (i, j, k)
        Voxels to set to background.
    brain : bool ndarray
        Registered template brain mask (undilated).
    protected : bool ndarray
        ``brain`` dilated by the safety margin (never removed).
    head : bool ndarray
        Head tissue (intensity above the head threshold).
    vox_to_template : ndarray (4, 4)
        Voxel (i, j, k) -> template RAS+ mm (anatomical axes: +x right, +y anterior,
        +z superior), for QC pictures.
    background : float
        Value (scaled units) written into removed voxels.
    summary : dict
        JSON-able numbers (ml, Dice, seconds) and parameters.
    """

    removal: np.ndarray
    brain: np.ndarray
    protected: np.ndarray
    head: np.ndarray
    vox_to_template: np.ndarray
    background: float
    summary: dict


_DIST_CACHE: dict[float, tuple] = {}


def _template_brain_distance(brain_fraction: float):
    """Distance (template mm) outside the template brain mask, on a 1.5 mm grid; 0 inside."""
    if brain_fraction not in _DIST_CACHE:
        tpl = load_template()
        up = ndi.zoom(tpl.brain, 2, order=1)
        aff = tpl.affine.copy()
        aff[:3, :3] = aff[:3, :3] / 2.0
        aff[:3, 3] = tpl.affine[:3, 3] - tpl.affine[:3, :3] @ np.full(3, 0.25)
        zooms = np.linalg.norm(aff[:3, :3], axis=0)
        dist = ndi.distance_transform_edt(up < brain_fraction, sampling=zooms).astype(np.float32)
        _DIST_CACHE[brain_fraction] = (dist, aff)
    return _DIST_CACHE[brain_fraction]


def _template_face_frame(brain_fraction: float) -> tuple[float, float]:
    """``(x_mid, y_front)``: template RAS+ x (mm) of the mid-sagittal plane (centre of the
    template brain mask) and y (mm) of the brain's frontal pole."""
    tpl = load_template()
    idx = np.argwhere(tpl.brain >= brain_fraction)
    xyz = idx @ tpl.affine[:3, :3].T + tpl.affine[:3, 3]
    return float((xyz[:, 0].min() + xyz[:, 0].max()) / 2.0), float(xyz[:, 1].max())


def detect_ct(data: np.ndarray, modality: str = "auto") -> bool:
    """True for CT (HU): ``modality == "ct"``, or ``"auto"`` and the 1st percentile (of every
    4th voxel; an empty array is not CT) < -500."""
    if modality in ("ct", "mr"):
        return modality == "ct"
    sample = data[::4, ::4, ::4]
    return bool(sample.size and np.percentile(sample, 1) < -500)


def upsample_blocks(small: np.ndarray, factors, shape) -> np.ndarray:
    """Nearest-neighbour upsampling of a :func:`block_mean` grid back to the full grid.

    Each full-resolution voxel takes the value of the block it belongs to; the few edge
    voxels beyond the last whole block take the value of the last block.
    """
    out = small
    for ax, f in enumerate(factors):
        out = np.repeat(out, int(f), axis=ax)
    pad = [(0, int(n) - int(m)) for n, m in zip(shape, out.shape)]
    if any(p[1] for p in pad):
        out = np.pad(out, pad, mode="edge")
    return out


def _protect_mask(mask, factors, small_shape, zooms, margin_mm) -> np.ndarray:
    """Blocks of the work grid (``small_shape``, ``factors`` voxels per block) that hold a
    voxel within ``margin_mm`` of ``mask`` (bool, full grid, voxel (i, j, k), voxel sizes
    ``zooms`` mm).

    The distance to the mask is measured on the full grid (exact Euclidean distance in mm)
    and a block is protected when its nearest voxel is within the margin; the trailing
    voxels beyond the last whole block belong to the last block, as :func:`upsample_blocks`
    gives them its value. So every voxel of an unprotected block lies farther than
    ``margin_mm`` from the mask, and no more than one block beyond the margin is protected.
    """
    m = np.asarray(mask, bool)
    if not m.any():
        return np.zeros(small_shape, bool)
    dist = ndi.distance_transform_edt(~m, sampling=zooms).astype(np.float32)
    for ax, f in enumerate(factors):
        n = small_shape[ax] * int(f)
        if dist.shape[ax] > n:  # fold the trailing voxels into the last whole block
            tail = np.take(dist, range(n, dist.shape[ax]), axis=ax).min(axis=ax, keepdims=True)
            dist = np.take(dist, range(n), axis=ax)
            idx = [slice(None)] * 3
            idx[ax] = slice(n - 1, n)
            dist[tuple(idx)] = np.minimum(dist[tuple(idx)], tail)
    f = [int(x) for x in factors]
    blocks = dist.reshape(small_shape[0], f[0], small_shape[1], f[1], small_shape[2], f[2])
    return blocks.min(axis=(1, 3, 5)) <= margin_mm


def _template_coords(shape, affine, s2t):
    """Template RAS+ mm (x, y, z) of every voxel centre of a (small) grid, float32 arrays."""
    m = (s2t @ affine).astype(np.float32)
    i, j, k = (np.arange(n, dtype=np.float32) for n in shape)
    return [m[r, 0] * i[:, None, None] + m[r, 1] * j[None, :, None]
            + m[r, 2] * k[None, None, :] + m[r, 3] for r in range(3)]


def _envelope_removal(brain, shape, affine, s2t, rp, frame):
    """Common removal step (see :class:`RemovalParams`) on one grid.

    ``brain`` is a bool mask on the grid ``shape`` / ``affine`` (voxel -> RAS+ mm); ``s2t``
    maps subject RAS+ mm to template RAS+ mm; ``frame`` is :func:`_template_face_frame`.
    Returns the bool removal candidate on the same grid.
    """
    xt, yt, zt = _template_coords(shape, affine, s2t)
    if not brain.any():
        return np.zeros(shape, bool)
    x, y, z = xt[brain], yt[brain], zt[brain]
    step = 2.0
    x0, z0 = x.min() - 100.0, z.min()
    nx = int(np.ceil((x.max() + 100.0 - x0) / step)) + 1
    nb = int(np.ceil((z.max() - z0) / step)) + 1
    xb = ((x - x0) / step).astype(int)
    zb = ((z - z0) / step).astype(int)
    # anterior envelope per (x, z) column of template axes, windowed
    env = np.full((nx, nb), -np.inf)
    np.maximum.at(env, (xb, zb), y)
    w = max(1, round(rp.envelope_window_mm / step))
    env = ndi.maximum_filter(env, size=(2 * w + 1, 2 * w + 1), mode="nearest")
    # columns without brain: the height's maximum
    level = env.max(axis=0)
    for n in range(1, nb):  # heights without brain inside the range: from below
        if not np.isfinite(level[n]):
            level[n] = level[n - 1]
    env = np.where(np.isfinite(env), env, level[None, :])
    front = y >= np.percentile(y, 99.5)
    z_top = float(np.mean(z[front])) + rp.above_front_mm
    z_bot = float(z0) - rp.below_brain_mm
    bx = np.clip(((xt - x0) / step).astype(np.int32), 0, nx - 1)
    bz = np.clip(((zt - z0) / step).astype(np.int32), 0, nb - 1)
    lim = env.astype(np.float32)[bx, bz]
    return ((yt > lim + rp.front_margin_mm) & (zt <= z_top) & (zt >= z_bot)
            & (np.abs(xt - frame[0]) <= rp.face_half_width_mm)
            & (yt >= frame[1] - rp.face_depth_mm))


def cone_directions(axis, half_angle_deg: float, n: int = 400) -> np.ndarray:
    """Unit vectors (m, 3) within ``half_angle_deg`` of the unit vector ``axis``: the part
    of a Fibonacci sphere of ``n`` points inside the cone (about even spacing), plus the
    axis itself."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    k = np.arange(n) + 0.5
    phi = np.arccos(1.0 - 2.0 * k / n)
    theta = np.pi * (1.0 + 5 ** 0.5) * k
    d = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
    d = d[d @ a >= np.cos(np.deg2rad(half_angle_deg))]
    return np.vstack([a[None], d])


def _shell_removal(protected, shape, affine, s2t, sp, frame):
    """``shell`` removal on one grid: what lies outside the convex shell of the protected
    region, seen from the anterior-inferior side, within the face box.

    The shell is the intersection of the half-spaces ``n . p <= max over protected of
    n . q`` for every direction ``n`` (template RAS+ axes) within ``sp.shell_cone_deg`` of
    the axis pointing anterior and ``sp.shell_pitch_deg`` below it: a smooth convex
    surface that touches the protected region (already dilated by the margin) and never
    enters it. Every voxel beyond it is removed within the shell's box: within
    ``sp.shell_half_width_mm`` of the template mid-sagittal plane, at most
    ``sp.shell_depth_mm`` behind the template brain's frontal pole, from
    ``sp.shell_below_mm`` under the lowest protected point up to
    ``sp.shell_above_front_mm`` above the height of its most anterior point. Cavities
    (orbits, nasal cavity, sinuses, mouth) in front of the shell go with the tissue around
    them instead of being carved out, so the cut is smooth where the protected region's own
    surface (orbital roofs, cribriform plate) would show eyes and a nose.

    Parameters
    ----------
    protected : bool ndarray on the grid ``shape`` / ``affine`` (voxel -> RAS+ mm)
    s2t : ndarray (4, 4)
        Subject RAS+ mm -> template RAS+ mm.
    sp : ShellParams
    frame : tuple
        :func:`_template_face_frame`.

    Returns
    -------
    bool ndarray (``shape``): the removal candidate (the caller still removes the
    protected region from it).
    """
    xt, yt, zt = _template_coords(shape, affine, s2t)
    if not protected.any():
        return np.zeros(shape, bool)
    p = np.stack([xt[protected], yt[protected], zt[protected]], 1)
    t = np.deg2rad(sp.shell_pitch_deg)
    dirs = cone_directions((0.0, np.cos(t), -np.sin(t)), sp.shell_cone_deg,
                           sp.shell_directions).astype(np.float32)
    support = np.max(p @ dirs.T, axis=0)  # (m,)
    front = p[:, 1] >= np.percentile(p[:, 1], 99.5)
    z_top = float(np.mean(p[front, 2])) + sp.shell_above_front_mm
    z_bot = float(p[:, 2].min()) - sp.shell_below_mm
    box = ((zt <= z_top) & (zt >= z_bot) & (np.abs(xt - frame[0]) <= sp.shell_half_width_mm)
           & (yt >= frame[1] - sp.shell_depth_mm))
    out = np.zeros(shape, bool)
    q = np.stack([xt[box], yt[box], zt[box]], 1)
    beyond = np.zeros(len(q), bool)
    for c in range(0, len(dirs), 64):  # chunks keep the (voxels x directions) array small
        beyond |= np.any(q @ dirs[c:c + 64].T > support[c:c + 64], axis=1)
    out[box] = beyond
    return out


def _registered(data, affine, reg: dict, fit_cache: dict | None):
    """:func:`register_template` of ``data`` with the keyword arguments ``reg``, or the
    RuntimeError it raised; remembered in ``fit_cache`` (keyed by ``reg``) when given."""
    key = tuple(sorted(reg.items()))
    fit = None if fit_cache is None else fit_cache.get(key)
    if fit is None:
        try:
            fit = register_template(data, affine, **reg)
        except RuntimeError as e:
            fit = e
        if fit_cache is not None:
            fit_cache[key] = fit
    return fit


def _fit_problem(fit, P, ct: bool, name: str) -> str | None:
    """Why a template fit (or the RuntimeError of :func:`_registered`) cannot be used: the
    registration failed, its head Dice is below ``min_head_dice`` or its final Mattes MI
    above ``max_registration_mi`` (CT: ``max_registration_mi_ct``); None when it passes."""
    if isinstance(fit, RuntimeError):
        return (f"{name}: template registration failed ({fit}); check that the image "
                "is a whole-head volume with a valid affine")
    if fit.head_dice < P.min_head_dice:
        return (
            f"{name}: template registration is poor (head Dice {fit.head_dice:.3f} < "
            f"min_head_dice {P.min_head_dice}"
            + (f", best of {len(axis_rotations())} start orientations, each optimised" if P.multistart else "")
            + "); nothing was written. Check the header orientation and that the image shows a "
            "whole head (a field of view that cuts the face or the skull lowers the Dice); "
            + ("" if P.multistart else "try multistart=true, or ")
            + "after inspecting the image, another method or a lower min_head_dice")
    max_mi = P.max_registration_mi_ct if ct else P.max_registration_mi
    if max_mi is not None and fit.mi > max_mi:
        key = "max_registration_mi_ct" if ct else "max_registration_mi"
        return (
            f"{name}: template registration is poor (final Mattes MI {fit.mi:.3f} > {key} "
            f"{max_mi}, head Dice {fit.head_dice:.3f}); nothing was written. The fit is likely "
            "far off (measured on the head corpus: MR fits within 17 mm reached -0.62 at worst; "
            "fits 68-73 mm off and fits of an object with no brain -0.45 to -0.53). Check that "
            "the image shows a head; "
            f"after inspecting the registration (QC pictures), another method or {key}: null")
    return None


def deface_image(data, affine, method: str = "template", params: dict | None = None,
                 *, name: str = "image", independent_brain=None,
                 fit_cache: dict | None = None) -> DefaceResult:
    """Compute the removal mask of one 3-D head volume and check its safety.

    Parameters
    ----------
    data : ndarray, voxel (i, j, k)
        Scaled intensities (MR arbitrary units; CT in HU).
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm.
    method : {"template", "shell", "threshold-morphology", "connected-threshold"}
    params : dict, optional
        Flat parameter dict (keys of :class:`DefaceParams`, the method's dataclass and
        :class:`RemovalParams`).
    name : str
        How the image is named in error messages (a file name, never written to outputs).
    independent_brain : bool ndarray, voxel (i, j, k) on the grid of ``data``, optional
        A brain mask made without the template or its threshold (e.g.
        :func:`neurodeid.deface.brainmask.extract_brain`); it is protected too, dilated by
        ``brain_margin_mm``, so the margin holds from it as well (issue 18: on an unseen
        head the template brain alone let the removal reach the frontal pole).
    fit_cache : dict, optional
        Registrations already made of this same volume (keyed by the registration
        parameters); the methods tried in turn on one image register once.

    Returns
    -------
    DefaceResult

    Raises
    ------
    DefaceError
        Registration failed or is poor, removed volume implausible, or brain overlap.
    ValueError
        Unknown method or parameter.
    """
    t0 = time.perf_counter()
    P, MP, RP = split_params(method, params)
    data = np.asarray(data, np.float32)
    affine = np.asarray(affine, float)
    if data.ndim != 3:
        raise DefaceError(f"{name}: expected a 3-D volume, got shape {data.shape}; "
                          "pass one volume (the lead's wrapper defaces 4-D files volume 0)")
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    vox_ml = float(np.prod(zooms)) / 1000.0
    ct = detect_ct(data, P.modality)
    reg = dict(resolution_mm=P.resolution_mm, multistart=P.multistart, n_refine=P.n_refine,
               iterations=P.iterations, ct=ct, threads=P.threads, n_screen=P.n_screen)
    fit = _registered(data, affine, reg, fit_cache)
    n_optimised = (P.n_screen or len(axis_rotations())) if P.multistart else 1
    if _fit_problem(fit, P, ct, name) and P.multistart and P.n_screen > 0:
        # the screen ranks starts by their unoptimised metric; a head turned between two
        # axis-aligned starts (vrd_seg3D turned 25 degrees about z) can lose its right
        # start there: optimise all 24 before giving up
        every = _registered(data, affine, {**reg, "n_screen": 0}, fit_cache)
        if isinstance(fit, RuntimeError) or not isinstance(every, RuntimeError) and every.mi < fit.mi:
            fit, n_optimised = every, len(axis_rotations())
    problem = _fit_problem(fit, P, ct, name)
    if isinstance(fit, RuntimeError):
        raise DefaceError(problem) from fit
    if problem:
        raise DefaceError(problem)
    s2t = fit.subject_to_template
    tpl = load_template()
    shape = data.shape

    # every mask is computed on a block grid of about work_mm (block means of the data)
    # and upsampled by nearest neighbour (each voxel takes its block's value)
    small, saff, _ = block_mean(data, affine, P.work_mm)
    factors = np.maximum(1, np.round(P.work_mm / zooms)).astype(int)
    szooms = np.linalg.norm(saff[:3, :3], axis=0)
    s_ml = float(np.prod(szooms)) / 1000.0
    # block centre -> farthest voxel centre, in template mm (the distance map is in template
    # mm; the registration may scale)
    half_diag = (0.5 * float(np.linalg.norm(szooms))
                 * float(np.linalg.svd(s2t[:3, :3], compute_uv=False).max()))

    dist, daff = _template_brain_distance(P.brain_fraction)
    dsub = resample_to(dist, daff, small.shape, saff, s2t, order=1, cval=1e6)
    brain_s = dsub <= 0.0
    # a block is protected when any of its voxels may lie within the margin
    protected_s = dsub <= P.brain_margin_mm + half_diag

    if independent_brain is not None:
        protected_s |= _protect_mask(independent_brain, factors, small.shape, zooms,
                                     P.brain_margin_mm)

    t_head = estimate.head_threshold(data, ct, P.ct_skin_hu)
    face_s = resample_to(tpl.face, tpl.affine, small.shape, saff, s2t, order=1)

    # intensity brain (no registration): the estimate of threshold-morphology, the
    # refinement of the protected region and the check mask of every method
    tm_kw = ({k: getattr(MP, k) for k in ("closing_mm", "erode_mm", "brain_low")}
             if method == "threshold-morphology" else {})
    _, brain_tm = estimate.brain_threshold_morphology(
        small, szooms, ct=ct, ct_skin_hu=P.ct_skin_hu, **tm_kw)
    # check core: eroded (cuts thin bridges into orbits and muscle), largest component
    check_s = estimate.largest_component(estimate.erode(brain_tm, P.check_erode_mm, szooms))
    if P.refine_brain:
        # subject brain refinement: the opened intensity brain near the registered template
        # brain is protected too (a registration a few mm off on one side, e.g. after
        # surgery, must not expose cortex); it can only add protection
        core = estimate.largest_component(estimate.erode(brain_tm, P.refine_open_mm, szooms))
        refine = (estimate.dilate(core, P.refine_open_mm, szooms) & brain_tm
                  & (dsub <= P.check_zone_mm))
        protected_s |= estimate.dilate(refine, max(P.refine_margin_mm, P.brain_margin_mm),
                                       szooms)

    frame = _template_face_frame(P.brain_fraction)
    info = {}
    if method == "shell":
        # everything beyond the convex shell of the protected region on the
        # anterior-inferior side (a smooth cut: no carved orbits for a detector to see)
        cand_s = _shell_removal(protected_s, small.shape, saff, s2t, MP, frame)
    elif method == "template":
        cand_s = face_s >= MP.face_fraction
        if MP.envelope:
            # the pydeface mask spares the nasion and the upper eyelids: add the common
            # removal step driven by the registered template brain
            cand_s |= _envelope_removal(brain_s, small.shape, saff, s2t, RP, frame)
    else:
        if method == "threshold-morphology":
            b_est = brain_tm
        else:
            _, b_est, seeds = estimate.brain_connected_threshold(
                small, szooms, ct=ct, ct_skin_hu=P.ct_skin_hu, n_seeds=MP.n_seeds,
                k_mad=MP.k_mad, open_mm=MP.open_mm, dilate_mm=MP.dilate_mm)
            info["n_seeds"] = len(seeds)
        info["brain_estimate_ml"] = round(float(b_est.sum()) * s_ml, 1)
        cand_s = _envelope_removal(b_est, small.shape, saff, s2t, RP, frame)
    removal_s = cand_s & ~protected_s

    # full grid
    removal = upsample_blocks(removal_s, factors, shape)
    protected = upsample_blocks(protected_s, factors, shape)
    brain = upsample_blocks(brain_s, factors, shape)
    head = data > t_head
    overlap_ml = float(np.count_nonzero(removal_s & check_s)) * s_ml
    removed_ml = float(np.count_nonzero(removal & head)) * vox_ml
    # face region: head tissue in the template face mask within the face frame (the mask
    # also covers cheeks and ears, which the envelope rule keeps on purpose). Kept: what the
    # removal leaves there, protected or not (a brain mask that reaches into a low-contrast
    # face protects the face with it); residual: the part of it not protected either
    xt, yt, _ = _template_coords(small.shape, saff, s2t)
    in_frame = ((np.abs(xt - frame[0]) <= RP.face_half_width_mm)
                & (yt >= frame[1] - RP.face_depth_mm))
    region = upsample_blocks((face_s >= 0.5) & in_frame, factors, shape) & head
    kept = region & ~removal
    region_ml = float(np.count_nonzero(region)) * vox_ml
    kept_ml = float(np.count_nonzero(kept)) * vox_ml
    residual_ml = float(np.count_nonzero(kept & ~protected)) * vox_ml
    background = float(P.ct_background_hu) if ct else float(data.min())
    summary = {
        "method": method,
        "modality": "ct" if ct else "mr",
        "removed_ml": round(removed_ml, 2),
        "removed_mask_ml": round(float(removal.sum()) * vox_ml, 2),
        "brain_overlap_ml": round(overlap_ml, 3),
        "registration_metric": round(fit.head_dice, 4),
        "registration_metric_name": "head Dice (subject vs registered template, 0-1)",
        "registration_mi": round(fit.mi, 4),
        "registration_start": fit.start,
        "registration_starts_optimised": n_optimised,
        "face_region_residual_ml": round(residual_ml, 2),
        "face_region_ml": round(region_ml, 2),
        "face_region_kept_ml": round(kept_ml, 2),
        "protected_ml": round(float(protected.sum()) * vox_ml, 1),
        **info,
        "params": params_dict(P, MP, RP),
    }
    if overlap_ml > P.max_brain_overlap_ml:
        raise DefaceError(
            f"{name}: the {method} removal overlaps the brain check mask (the intensity brain "
            f"core, eroded {P.check_erode_mm:g} mm) by {overlap_ml:.2f} ml (max_brain_overlap_ml "
            f"{P.max_brain_overlap_ml}); nothing was written. Inspect the registration (QC "
            "pictures)" + (" or use method 'template'" if method != "template" else
                           "; in a low-contrast image the intensity brain can reach into the face"))
    if not (P.min_removed_ml <= removed_ml <= P.max_removed_ml):
        raise DefaceError(
            f"{name}: implausible removed volume {removed_ml:.1f} ml (allowed "
            f"{P.min_removed_ml}-{P.max_removed_ml} ml); nothing was written. If the image "
            "has no face (already defaced or cropped), set min_removed_ml=0; otherwise "
            "inspect the registration")
    if P.max_face_kept_fraction is not None and kept_ml > P.max_face_kept_fraction * region_ml:
        raise DefaceError(
            f"{name}: the {method} removal leaves {kept_ml:.1f} of the {region_ml:.1f} ml of head "
            f"tissue in the registered template's face region ({kept_ml / region_ml:.0%} > "
            f"max_face_kept_fraction {P.max_face_kept_fraction:.0%}); nothing was written. The "
            "protected brain reaches into the face (a brain mask leaking into a low-contrast "
            "face protects it), so this is not a defacing; inspect the QC pictures and the "
            "independent brain mask")
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return DefaceResult(removal, brain, protected, head, s2t @ affine, background, summary)
