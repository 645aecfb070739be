"""Intensity-based head and brain estimates (no registration).

Pure functions over voxel-(i, j, k) arrays; ``zooms`` are voxel sizes in mm along (i, j, k).
Morphology radii are in mm and use Euclidean distance transforms (so anisotropic voxels
are handled). Used by the ``threshold-morphology`` and ``connected-threshold`` methods and,
for every method, as the independent brain *check* mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .template import otsu


def erode(mask: np.ndarray, r_mm: float, zooms) -> np.ndarray:
    """Binary erosion by a ball of radius ``r_mm``."""
    if r_mm <= 0:
        return mask.copy()
    return ndi.distance_transform_edt(mask, sampling=zooms) > r_mm


def dilate(mask: np.ndarray, r_mm: float, zooms) -> np.ndarray:
    """Binary dilation by a ball of radius ``r_mm``."""
    if r_mm <= 0:
        return mask.copy()
    return ndi.distance_transform_edt(~mask, sampling=zooms) <= r_mm


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest 6-connected component (empty mask stays empty)."""
    lab, n = ndi.label(mask)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def head_threshold(data: np.ndarray, ct: bool, ct_skin_hu: float = -300.0) -> float:
    """Head/background threshold: Otsu of the whole image (MR) or the skin level in HU (CT)."""
    if ct:
        return float(ct_skin_hu)
    sample = data[:: 2, :: 2, :: 2] if data.size > 2_000_000 else data
    return otsu(sample)


def head_mask(data, zooms, thr, closing_mm=4.0) -> np.ndarray:
    """Head mask: ``data > thr``, closing, hole filling, largest component."""
    m = data > thr
    m = erode(dilate(m, closing_mm, zooms), closing_mm, zooms) | m
    m = ndi.binary_fill_holes(m)
    return largest_component(m)


def brain_threshold_morphology(data, zooms, *, ct=False, ct_skin_hu=-300.0,
                               closing_mm=4.0, erode_mm=5.0, brain_low=0.1):
    """Brain estimate of the ``threshold-morphology`` method.

    Head mask as :func:`head_mask`; brain candidates are head voxels above
    ``t_head + brain_low * (t_tissue - t_head)`` (MR; ``t_tissue`` = Otsu inside the head)
    or within 0-100 HU (CT); eroded by ``erode_mm``, largest component, re-dilated by
    ``erode_mm`` inside the candidates, hole-filled.

    Returns
    -------
    head, brain : bool ndarrays, voxel (i, j, k)
    """
    t_head = head_threshold(data, ct, ct_skin_hu)
    head = head_mask(data, zooms, t_head, closing_mm)
    if ct:
        cand = head & (data >= 0) & (data <= 100)
    else:
        t_tissue = otsu(data[head])
        cand = head & (data > t_head + brain_low * (t_tissue - t_head))
    core = largest_component(erode(cand, erode_mm, zooms))
    brain = dilate(core, erode_mm, zooms) & cand
    brain = ndi.binary_fill_holes(brain)
    return head, brain


def brain_connected_threshold(data, zooms, *, ct=False, ct_skin_hu=-300.0,
                              n_seeds=8, k_mad=1.5, open_mm=5.0, dilate_mm=2.0):
    """Brain estimate of the ``connected-threshold`` method (seeded region growing).

    Seeds are the ``n_seeds`` deepest head voxels (distance to the head surface, mm) whose
    intensity lies between the 25th and 75th percentile of the head's deep interior (so a
    ventricle or a vessel is not picked); not the image centre. The growing interval is
    median +/- ``k_mad`` MAD of the deep interior intensities.

    Returns
    -------
    head, brain, seeds : bool, bool, int ndarray (n, 3) voxel indices
    """
    t_head = head_threshold(data, ct, ct_skin_hu)
    head = head_mask(data, zooms, t_head)
    depth = ndi.distance_transform_edt(head, sampling=zooms)
    deep = depth > 0.6 * depth.max()
    vals = data[deep]
    q25, q50, q75 = np.percentile(vals, [25, 50, 75])
    mad = np.median(np.abs(vals - q50)) * 1.4826 + 1e-6
    ok = deep & (data >= q25) & (data <= q75)
    idx = np.argwhere(ok)
    order = np.argsort(-depth[ok])
    # spread seeds: take deepest, then the deepest ones at least 15 mm from chosen seeds
    seeds = []
    for n in order:
        p = idx[n]
        if all(np.linalg.norm((p - s) * zooms) > 15 for s in seeds):
            seeds.append(p)
        if len(seeds) >= n_seeds:
            break
    seeds = np.array(seeds, int)
    lo, hi = q50 - k_mad * mad, q50 + k_mad * mad
    cand = head & (data >= lo) & (data <= hi)
    cand = dilate(erode(cand, open_mm, zooms), open_mm, zooms) & cand
    lab, _ = ndi.label(cand)
    ids = lab[tuple(seeds.T)]
    ids = ids[ids > 0]
    if ids.size == 0:
        return head, np.zeros_like(head), seeds
    keep = np.bincount(ids).argmax()
    brain = lab == keep
    brain = erode(dilate(brain, 4.0, zooms), 4.0, zooms)
    brain = ndi.binary_fill_holes(brain)
    brain = dilate(brain, dilate_mm, zooms)
    return head, brain, seeds
