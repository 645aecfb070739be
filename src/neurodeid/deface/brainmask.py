"""An independent brain mask, and the brain-safety judgement of a defacing made with it.

The mask that judges defacing must share nothing with the defacer: not the vendored
template, not its Otsu threshold. :func:`extract_brain` is the surface-deformation
algorithm of FSL's Brain Extraction Tool (Smith SM, "Fast robust automated brain
extraction", Hum Brain Mapp 2002;17:143-155), written here in vectorised numpy from the
paper (the parameter names follow it and the MIT-licensed ``brainextractor`` package by
Andrew Van, which was measured against it: see ``benchmarks/results/brainmask_*.md``):

1. robust intensity range ``t2`` / ``t98`` (2nd / 98th percentile), background threshold
   ``t = t2 + 0.1 (t98 - t2)``; centre of gravity of the voxels above ``t`` (intensities
   clipped to the range); head radius from the volume above ``t``; median ``tm`` inside
   that sphere;
2. a tessellated sphere (2,562 vertices) of half the head radius at the centre of gravity
   is deformed ``iterations`` times by three forces: tangential smoothing, curvature-
   dependent normal smoothing (``rmin``, ``rmax``) and an intensity term that pushes the
   surface outwards while the tissue below it (``d1`` / ``d2`` mm inwards along the
   normal) is brighter than the local threshold ``t2 + bt (Imax - t2)``;
3. the surface is rasterised onto the image grid and filled.

Conventions: arrays are voxel ``(i, j, k)`` as nibabel returns them; ``zooms`` are voxel
sizes in mm along (i, j, k); ``affine`` is voxel -> RAS+ mm. The surface lives in *scaled
voxel space* (``index * zooms``, mm): BET is invariant to rotation, so only the voxel sizes
matter and any orientation, permutation or anisotropy is handled. Distances and margins
are in mm; volumes in ml (1 ml = 1000 mm^3).

Nothing here reads the defacing's template or thresholds; only numpy and scipy are used.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse

from ..results import Check

__all__ = [
    "EXTRACTOR",
    "BrainMask",
    "BrainSafety",
    "brain_safety",
    "extract_brain",
    "icosphere",
]

#: Name recorded with every measure made with :func:`extract_brain`.
EXTRACTOR = "bet-numpy"


# --------------------------------------------------------------------------- mesh
def icosphere(subdivisions: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere tessellated from an icosahedron.

    Returns
    -------
    vertices : float ndarray (n, 3)
        On the unit sphere (``10 * 4**subdivisions + 2`` vertices: 2,562 for 4).
    faces : int ndarray (m, 3)
        Vertex indices, counter-clockwise seen from outside (normals point outwards).
    """
    p = (1.0 + 5 ** 0.5) / 2.0
    v = np.array([[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p],
                  [0, -1, -p], [0, 1, -p], [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]],
                 float)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9],
                  [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2],
                  [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10],
                  [8, 6, 7], [9, 8, 1]], np.int64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for _ in range(subdivisions):
        edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        uniq, inv = np.unique(edges, axis=0, return_inverse=True)
        inv = inv.ravel()
        mid = v[uniq[:, 0]] + v[uniq[:, 1]]
        mid /= np.linalg.norm(mid, axis=1, keepdims=True)
        m = len(f)
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        ab, bc, ca = inv[:m] + len(v), inv[m:2 * m] + len(v), inv[2 * m:] + len(v)
        v = np.concatenate([v, mid])
        f = np.concatenate([np.stack([a, ab, ca], 1), np.stack([b, bc, ab], 1),
                            np.stack([c, ca, bc], 1), np.stack([ab, bc, ca], 1)])
    return v, f


def _mesh_operators(n_vertices: int, faces: np.ndarray):
    """Sparse ``(neighbour_mean, vertex_face)`` operators and the unique edges of a mesh."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    rows = np.concatenate([e[:, 0], e[:, 1]])
    cols = np.concatenate([e[:, 1], e[:, 0]])
    adj = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vertices,) * 2)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    neighbour_mean = sparse.diags(1.0 / deg) @ adj
    vf = sparse.csr_matrix((np.ones(faces.size), (faces.ravel(),
                                                   np.repeat(np.arange(len(faces)), 3))),
                           shape=(n_vertices, len(faces)))
    return neighbour_mean.tocsr(), vf, e


def _vertex_normals(v, faces, vf):
    """Unit outward vertex normals (sum of the area-weighted normals of adjacent faces)."""
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = vf @ fn
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _rasterise(v, faces, zooms, shape) -> np.ndarray:
    """Filled voxel mask (bool, ``shape``) of a closed surface given in scaled voxel mm.

    The surface may leave the grid (a brainstem cut by the field of view): it is filled on a
    grid padded to hold all of it, then cropped."""
    tri = v[faces] / np.asarray(zooms, float)  # voxel units
    lo = np.minimum(np.floor(tri.reshape(-1, 3).min(0)).astype(int) - 2, 0)
    hi = np.maximum(np.ceil(tri.reshape(-1, 3).max(0)).astype(int) + 3, shape)
    tri = tri - lo
    pshape = tuple(int(x) for x in hi - lo)
    longest = np.max(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2))
    n = max(1, int(np.ceil(longest / 0.4)))  # sample points at most 0.4 voxel apart
    a, b = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = a + b <= n
    wa, wb = a[keep] / n, b[keep] / n
    w = np.stack([1.0 - wa - wb, wa, wb], 1)  # barycentric (k, 3)
    surf = np.zeros(pshape, bool)
    for chunk in np.array_split(np.arange(len(tri)), max(1, len(tri) // 1024)):
        pts = np.einsum("kc,tcd->tkd", w, tri[chunk]).reshape(-1, 3)
        idx = np.rint(pts).astype(np.int64)
        surf[tuple(idx.T)] = True
    # close one-voxel diagonal gaps before filling, then undo the closing's growth
    thick = ndi.binary_dilation(surf, iterations=1)
    filled = ndi.binary_fill_holes(thick)
    full = ndi.binary_erosion(filled, iterations=1, border_value=0) | surf
    return full[-lo[0]: -lo[0] + shape[0], -lo[1]: -lo[1] + shape[1],
                -lo[2]: -lo[2] + shape[2]].copy()


# --------------------------------------------------------------------------- extraction
@dataclass
class BrainMask:
    """Result of :func:`extract_brain`.

    Attributes
    ----------
    mask : bool ndarray, voxel (i, j, k) on the input grid
        Brain (BET's surface filled: brain, ventricles, the CSF inside the surface and the
        brainstem down to where the surface closes).
    volume_ml : float
    seconds : float
        Wall time of the extraction.
    extractor : str
        :data:`EXTRACTOR`.
    params : dict
        The parameters used (mm, fractions).
    centre_mm : tuple of float
        Initial centre of gravity, scaled voxel space (index * zooms), mm.
    radius_mm : float
        Head radius estimate (the initial sphere has half of it).
    """

    mask: np.ndarray
    volume_ml: float
    seconds: float
    extractor: str
    params: dict
    centre_mm: tuple
    radius_mm: float


def extract_brain(data, zooms, *, bt: float = 0.5, iterations: int = 1000,
                  d1_mm: float = 20.0, d2_mm: float = 10.0, rmin_mm: float = 3.33,
                  rmax_mm: float = 10.0, subdivisions: int = 4,
                  work_mm: float | None = None, ct: bool = False) -> BrainMask:
    """Brain mask of a head volume by BET surface deformation (see the module docstring).

    Parameters
    ----------
    data : ndarray, voxel (i, j, k), 3-D
        Scaled intensities of a head (T1-weighted MR in mind; any orientation).
    zooms : sequence of 3 float
        Voxel sizes (mm) along i, j, k.
    bt : float
        BET's fractional intensity threshold (0-1; smaller gives a larger brain).
    iterations : int
        Surface deformation steps.
    d1_mm, d2_mm : float
        How far inwards (mm) along the normal the local minimum and maximum intensities are
        searched.
    rmin_mm, rmax_mm : float
        Radii of curvature (mm) between which the normal smoothing goes from strong to weak.
    subdivisions : int
        Icosphere subdivisions (4: 2,562 vertices, as BET).
    work_mm : float, optional
        Deform the surface on a block-averaged copy of about this voxel size (mm): faster
        sampling; the surface is still rasterised on the full grid. ``None``: the full grid
        (the default: on a 2 mm copy the blurred skull gap let the surface leak into the
        scalp of one test head).
    ct : bool
        ``data`` is CT in Hounsfield units: it is mapped to a T1-like contrast first (0-100
        HU kept, air, fat and bone above 100 HU set to 0, so the skull is a dark gap). Not
        validated on a real CT head here.

    Returns
    -------
    BrainMask

    Raises
    ------
    ValueError
        Not a 3-D volume, or no voxel above the background threshold.
    """
    t0 = time.perf_counter()
    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f"extract_brain: expected a 3-D volume, got shape {data.shape}")
    zooms = np.asarray(zooms, float)
    shape = data.shape
    img = np.asarray(data, np.float32)
    if ct:
        img = np.where(img > 100.0, 0.0, np.clip(img, 0.0, 100.0)).astype(np.float32)
    if work_mm:
        f = np.maximum(1, np.round(work_mm / zooms)).astype(int)
        s = [n // k * k for n, k in zip(shape, f)]
        img = img[: s[0], : s[1], : s[2]].reshape(
            s[0] // f[0], f[0], s[1] // f[1], f[1], s[2] // f[2], f[2]).mean(axis=(1, 3, 5))
        wz = zooms * f
        offset = zooms * (f - 1) / 2.0  # block centre in full-grid scaled mm
    else:
        wz, offset = zooms, np.zeros(3)
    img = np.ascontiguousarray(img, np.float32)

    # 1. intensity statistics, centre of gravity and radius (on every 2nd voxel of grids
    #    finer than 1.5 mm: these are volume statistics, and it saves a second per head)
    sub = np.where(wz < 1.5, 2, 1).astype(int)
    sample = img[:: sub[0], :: sub[1], :: sub[2]]
    sz = wz * sub  # mm between sample voxels
    t2, t98 = (float(x) for x in np.percentile(sample, [2, 98]))
    t = t2 + 0.1 * (t98 - t2)
    above = sample > t
    if not above.any():
        raise ValueError(f"extract_brain: no voxel above the background threshold {t:g}")
    w = np.clip(sample, t2, t98) * above
    pos = [np.arange(n, dtype=np.float32) * float(sz[a])
           for a, n in enumerate(sample.shape)]  # mm along each axis (separable)
    ws = w.sum()
    cog = np.array([(w.sum(axis=tuple(b for b in range(3) if b != a)) * pos[a]).sum() / ws
                    for a in range(3)])
    radius = float(np.cbrt(3.0 * above.sum() * np.prod(sz) / (4.0 * np.pi)))
    r2 = ((pos[0] - cog[0]) ** 2)[:, None, None] + ((pos[1] - cog[1]) ** 2)[None, :, None] \
        + ((pos[2] - cog[2]) ** 2)[None, None, :]
    core = (r2 <= radius ** 2) & (sample > t2) & (sample < t98)
    tm = float(np.median(sample[core])) if core.any() else float(np.median(sample[above]))
    del w, r2, core, above

    # 2. surface deformation, in the working grid's scaled voxel mm
    unit, faces = icosphere(subdivisions)
    v = cog + 0.5 * radius * unit
    nmean, vf, edges = _mesh_operators(len(v), faces)
    E = (1.0 / rmin_mm + 1.0 / rmax_mm) / 2.0
    F = 6.0 / (1.0 / rmin_mm - 1.0 / rmax_mm)
    step = float(wz.min())
    s1 = np.arange(0.0, d1_mm + 1e-6, step)
    n2 = int(np.searchsorted(s1, d2_mm + 1e-6))
    # the image padded with t2 (what lies outside the grid) so that profiles need no bounds
    # checks; positions beyond the padding are clipped onto it
    pad = int(np.ceil(d1_mm / wz.min())) + 2
    flat = np.pad(img, pad, constant_values=t2).ravel()
    pshape = np.asarray(img.shape) + 2 * pad
    hi = (pshape - 1).astype(np.float32)
    st0, st1 = int(pshape[1] * pshape[2]), int(pshape[2])
    inv_wz = (1.0 / wz).astype(np.float32)
    offs = (s1[None, :, None] * inv_wz[None, None, :]).astype(np.float32)
    pts = np.empty((len(v), len(s1), 3), np.float32)
    for _ in range(int(iterations)):
        n = _vertex_normals(v, faces, vf)
        l_mean = float(np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1).mean())
        s = nmean @ v - v
        sn_len = np.einsum("ij,ij->i", s, n)
        sn = sn_len[:, None] * n
        st = s - sn
        rl = l_mean ** 2 / (2.0 * np.maximum(np.abs(sn_len), 1e-9))
        f2 = (1.0 + np.tanh(F * (1.0 / rl - E))) / 2.0
        # intensities inwards along the normal, nearest voxel (outside the grid: t2)
        vc = (v * inv_wz + pad).astype(np.float32)
        nc = n.astype(np.float32)
        np.subtract(vc[:, None, :], offs * nc[:, None, :], out=pts)
        np.clip(pts, 0, hi, out=pts)
        ii = (pts + 0.5).astype(np.int64)
        prof = flat[ii[..., 0] * st0 + ii[..., 1] * st1 + ii[..., 2]]
        i_min = np.maximum(t2, np.minimum(tm, prof.min(axis=1)))
        i_max = np.minimum(tm, np.maximum(t, prof[:, :n2].max(axis=1)))
        tl = (i_max - t2) * bt + t2
        f3 = 0.05 * 2.0 * (i_min - tl) / np.maximum(i_max - t2, 1e-9) * l_mean
        v = v + 0.5 * st + f2[:, None] * sn + f3[:, None] * n

    # 3. back to the full grid's scaled voxel mm, rasterise and fill
    mask = _rasterise(v + offset, faces, zooms, shape)
    vol = float(mask.sum()) * float(np.prod(zooms)) / 1000.0
    params = {"bt": bt, "iterations": int(iterations), "d1_mm": d1_mm, "d2_mm": d2_mm,
              "rmin_mm": rmin_mm, "rmax_mm": rmax_mm, "subdivisions": subdivisions,
              "work_mm": work_mm, "ct": bool(ct)}
    return BrainMask(mask, round(vol, 2), round(time.perf_counter() - t0, 2), EXTRACTOR,
                     params, tuple(round(float(x), 2) for x in cog + offset), round(radius, 2))


# --------------------------------------------------------------------------- judgement
@dataclass
class BrainSafety:
    """Verdict of :func:`brain_safety`.

    Attributes
    ----------
    verdict : Check
        PASS or FAIL.
    brain_voxels_changed : int
        Voxels that differ between original and defaced inside the brain mask (must be 0).
    changed_voxels : int
        All voxels that differ.
    min_distance_mm : float
        Smallest distance (mm, between voxel centres) from a changed voxel to the brain
        mask; 0 when a brain voxel changed; ``inf`` when nothing changed.
    margin_mm : float
        The configured margin it is judged against.
    reasons : list of str
        Why it failed, with the numbers and their thresholds (empty on PASS).
    """

    verdict: Check
    brain_voxels_changed: int
    changed_voxels: int
    min_distance_mm: float
    margin_mm: float
    reasons: list

    def as_dict(self) -> dict:
        return asdict(self)


def brain_safety(original, defaced, mask, spacing, margin_mm: float) -> BrainSafety:
    """Judge whether a defacing kept away from the brain.

    Parameters
    ----------
    original, defaced : ndarray, voxel (i, j, k), 3-D or 4-D (a voxel counts as changed
        when any volume differs)
        The image before and after defacing, on the same grid.
    mask : bool ndarray, voxel (i, j, k)
        Independent brain mask on the same grid (e.g. :func:`extract_brain` of ``original``).
    spacing : sequence of 3 float
        Voxel sizes (mm) along i, j, k.
    margin_mm : float
        Required distance (mm) between every changed voxel and the brain mask.

    Returns
    -------
    BrainSafety
        PASS only when no brain voxel changed and the minimum distance is at least
        ``margin_mm``.
    """
    original = np.asarray(original)
    defaced = np.asarray(defaced)
    mask = np.asarray(mask, bool)
    if original.shape != defaced.shape:
        raise ValueError(f"brain_safety: original {original.shape} and defaced "
                         f"{defaced.shape} grids differ")
    changed = original != defaced
    if changed.ndim > 3:
        changed = changed.reshape(changed.shape[:3] + (-1,)).any(axis=3)
    if mask.shape != changed.shape:
        raise ValueError(f"brain_safety: mask {mask.shape} is not on the image grid "
                         f"{changed.shape}")
    n_changed = int(changed.sum())
    inside = int(np.logical_and(changed, mask).sum())
    if n_changed == 0:
        dmin = math.inf
    elif inside:
        dmin = 0.0
    elif not mask.any():
        dmin = math.inf
    else:
        dist = ndi.distance_transform_edt(~mask, sampling=np.asarray(spacing, float))
        dmin = float(dist[changed].min())
    reasons = []
    if not mask.any():
        reasons.append("FAIL independent brain mask is empty: brain safety cannot be judged")
    if inside:
        reasons.append(f"FAIL brain_voxels_changed_independent = {inside} voxels (> 0; "
                       f"independent brain mask, {EXTRACTOR})")
    if dmin < margin_mm:
        reasons.append(f"FAIL brain_min_distance_mm = {dmin:.2f} mm (< margin {margin_mm:g} "
                       f"mm from the independent brain mask)")
    return BrainSafety(Check.FAIL if reasons else Check.PASS, inside, n_changed,
                       round(dmin, 3) if math.isfinite(dmin) else dmin, float(margin_mm),
                       reasons)
