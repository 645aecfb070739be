"""Image-grid helpers shared by defacing and morphometry: voxel sizes, block averaging,
and the SimpleITK bridge.

Conventions
-----------
* Arrays are indexed in voxel order ``(i, j, k)`` as nibabel returns them.
* Affines are voxel -> **RAS+ mm** (nibabel). SimpleITK works in **LPS mm**; the flip
  happens only in :func:`to_sitk` (and in callers that read ITK transforms, with
  :data:`LPS`).
"""

from __future__ import annotations

import numpy as np

#: RAS+ <-> LPS+ flip of a 4 x 4 affine (its own inverse).
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def zooms(affine) -> np.ndarray:
    """Voxel sizes (mm) along i, j, k: the column norms of the affine's 3 x 3 part."""
    return np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)


def block_mean(arr, affine, target_mm: float):
    """Downsample by averaging blocks of about ``target_mm`` (an integer factor per axis).

    Returns ``(small, small_affine, factors)``: ``small`` is float32, ``small_affine`` maps
    block centres to RAS+ mm, ``factors`` the block size per axis. Trailing voxels that do
    not fill a block are dropped. Sums are float64: exact for integer-valued data, so the
    result does not depend on the summation order numpy picks (which varies with memory
    alignment). An axis shorter than its block (three radiographs stacked 0.1 mm apart) is
    averaged whole into one voxel.
    """
    f = np.maximum(1, np.round(target_mm / zooms(affine))).astype(int)
    f = np.minimum(f, np.maximum(1, np.asarray(np.shape(arr)[:3])))
    if np.all(f == 1):
        return np.asarray(arr, np.float32), np.array(affine, float), f
    s = [n // k * k for n, k in zip(arr.shape, f)]
    a = np.array(arr[: s[0], : s[1], : s[2]], np.float64)
    a = a.reshape(s[0] // f[0], f[0], s[1] // f[1], f[1], s[2] // f[2], f[2]).mean(axis=(1, 3, 5))
    aff = np.array(affine, float)
    aff[:3, 3] = aff[:3, :3] @ ((f - 1) / 2.0) + aff[:3, 3]
    aff[:3, :3] = aff[:3, :3] * f
    return a.astype(np.float32), aff, f


def upsample(mask, factors, shape) -> np.ndarray:
    """Inverse of :func:`block_mean` for labels: replicate blocks, zero-pad to ``shape``."""
    m = mask
    for ax, k in enumerate(factors):
        if k > 1:
            m = np.repeat(m, k, axis=ax)
    out = np.zeros(shape, m.dtype)
    out[: m.shape[0], : m.shape[1], : m.shape[2]] = m
    return out


def to_sitk(arr, affine):
    """Voxel-(i, j, k) array with a RAS+ affine -> SimpleITK image (LPS geometry), same dtype.

    The direction matrix is the affine's 3 x 3 part with unit columns; shears are not
    representable in ITK and are approximated by the nearest orthonormal matrix.
    """
    import SimpleITK as sitk

    lps = LPS @ np.asarray(affine, float)
    m = lps[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    u, _, vt = np.linalg.svd(m / spacing)
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(arr).transpose(2, 1, 0)))
    img.SetSpacing([float(x) for x in spacing])
    img.SetOrigin([float(x) for x in lps[:3, 3]])
    img.SetDirection([float(x) for x in (u @ vt).ravel()])
    return img


def from_sitk(img) -> np.ndarray:
    """SimpleITK image -> voxel-(i, j, k) array (the inverse of :func:`to_sitk`'s transpose)."""
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(img).transpose(2, 1, 0)
