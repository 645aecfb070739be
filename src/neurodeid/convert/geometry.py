"""Slice stacks from DICOM headers, the independent affine check, and resampling of
tilted or unevenly spaced stacks.

Conventions
-----------
* DICOM patient space is LPS+ (mm); NIfTI world space is RAS+ (mm). ``LPS_TO_RAS``
  converts one into the other (it is its own inverse).
* A DICOM stack's voxel index is (column c, row r, slice k): pixel (r, c) of the k-th
  slice in ascending order along the slice normal.
* NIfTI affines map voxel (i, j, k) of the stored array to RAS+ mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import GeometryError
from .headers import SliceHeader

__all__ = [
    "LPS_TO_RAS",
    "Stack",
    "group_stacks",
    "stack_affine",
    "check_affine",
    "check_voxels",
    "check_resampled",
    "resample_stack",
]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: positions closer than this (mm) are one slice position
_SAME_POSITION_MM = 0.01


@dataclass
class Stack:
    """Images of one series sharing orientation and matrix: a (possibly 4D) slice stack.

    Attributes
    ----------
    u, v : ndarray (3,)
        Row and column direction cosines (LPS unit vectors): direction of increasing
        column index and of increasing row index.
    normal : ndarray (3,)
        ``u x v``; slice positions are sorted by their projection on it.
    dx, dy : float
        Column spacing (along ``u``) and row spacing (along ``v``), mm.
    rows, cols : int
    positions : ndarray (K, 3)
        Distinct slice positions (LPS mm, centre of pixel (0, 0)), ascending along ``normal``.
    members : list of list of SliceHeader
        Images at each position (several for 4D, multi-echo, magnitude/phase).
    thickness : float or None
        SliceThickness, mm (used as the third axis of single-slice stacks).
    """

    u: np.ndarray
    v: np.ndarray
    normal: np.ndarray
    dx: float
    dy: float
    rows: int
    cols: int
    positions: np.ndarray
    members: list = field(default_factory=list)
    thickness: float | None = None
    mosaic: bool = False
    tilt_deg: float = 0.0

    @property
    def n_slices(self) -> int:
        return len(self.positions)

    @property
    def first_file(self):
        return self.members[0][0].path

    def heights(self) -> np.ndarray:
        """Slice positions projected on the normal, relative to the first slice (mm)."""
        return (self.positions - self.positions[0]) @ self.normal

    def step_vector(self) -> np.ndarray:
        """Mean vector from one slice position to the next (LPS mm)."""
        if self.n_slices < 2:
            return self.normal * (self.thickness or 1.0)
        return (self.positions[-1] - self.positions[0]) / (self.n_slices - 1)

    def spacing_report(self, tol_mm: float = 0.1, gap_factor: float = 3.0) -> dict:
        """Classify the slice spacing.

        Returns
        -------
        dict
            ``kind``: ``"single"``, ``"uniform"``, ``"gaps"`` (some step exceeds
            ``gap_factor`` x the median step: split there) or ``"uneven"`` (resample);
            ``max_error_mm``: largest distance of a slice from an evenly spaced grid
            through the first and last slice; ``steps_mm``: steps along the normal;
            ``shear_deg``: angle between the stacking direction and the slice normal
            (gantry tilt); ``split_before``: slice indices that start a new piece.
        """
        if self.n_slices < 2:
            return {"kind": "single", "max_error_mm": 0.0, "steps_mm": [], "shear_deg": 0.0, "split_before": []}
        k = np.arange(self.n_slices)[:, None]
        grid = self.positions[0] + k * self.step_vector()
        err = float(np.max(np.linalg.norm(self.positions - grid, axis=1)))
        d = self.step_vector()
        along = float(d @ self.normal)
        across = np.linalg.norm(d - along * self.normal)
        shear = float(np.degrees(np.arctan2(across, along)))
        steps = np.diff(self.heights())
        med = float(np.median(steps))
        split = [int(i) + 1 for i in np.nonzero(steps > gap_factor * med + tol_mm)[0]]
        if err <= tol_mm:
            kind = "uniform"
        elif split:
            kind = "gaps"
        else:
            kind = "uneven"
        return {
            "kind": kind,
            "max_error_mm": err,
            "steps_mm": [round(float(s), 4) for s in steps],
            "shear_deg": shear,
            "split_before": split,
        }

    def pieces(self, split_before: list[int]) -> list["Stack"]:
        """Split the stack before the given slice indices (for gaps)."""
        bounds = [0, *split_before, self.n_slices]
        out = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            s = Stack(**{**self.__dict__})
            s.positions = self.positions[a:b]
            s.members = self.members[a:b]
            out.append(s)
        return out

    def window(self, start: int, n: int) -> "Stack":
        """The sub-stack of ``n`` consecutive positions from ``start``."""
        s = Stack(**{**self.__dict__})
        s.positions = self.positions[start : start + n]
        s.members = self.members[start : start + n]
        return s

    def files(self) -> list:
        return sorted({h.path for ms in self.members for h in ms})


def group_stacks(headers: list[SliceHeader]) -> list[Stack]:
    """Group images by orientation and matrix into slice stacks.

    Parameters
    ----------
    headers : list of SliceHeader

    Returns
    -------
    list of Stack
        Mosaic images contribute one position per tile (stacked along the CSA slice
        normal, SpacingBetweenSlices apart).

    Raises
    ------
    GeometryError
        When an image has no ImagePositionPatient / ImageOrientationPatient / PixelSpacing.
    """
    groups: dict[tuple, list[SliceHeader]] = {}
    for h in headers:
        if h.position is None or h.row_cosine is None or h.spacing is None:
            missing = [
                n
                for n, v in (
                    ("ImagePositionPatient", h.position),
                    ("ImageOrientationPatient", h.row_cosine),
                    ("PixelSpacing", h.spacing),
                )
                if v is None
            ]
            raise GeometryError(
                f"{h.path}: no {', '.join(missing)}; the series has no patient geometry, so it "
                "cannot be converted to a volume with a checked affine (keep it as DICOM)"
            )
        key = (
            tuple(np.round(h.row_cosine, 4)),
            tuple(np.round(h.col_cosine, 4)),
            h.rows,
            h.cols,
            round(h.spacing[0], 4),
            round(h.spacing[1], 4),
            h.mosaic_n,
        )
        groups.setdefault(key, []).append(h)
    stacks = []
    for hs in groups.values():
        h0 = hs[0]
        u, v = h0.row_cosine, h0.col_cosine
        normal = np.cross(u, v)
        normal /= np.linalg.norm(normal)
        entries: list[tuple[np.ndarray, SliceHeader]] = []
        for h in hs:
            if h.mosaic_n:
                step = h.extra["mosaic_normal"] * h.extra["spacing_between_slices"]
                entries.extend((h.position + t * step, h) for t in range(h.mosaic_n))
            else:
                entries.append((h.position, h))
        entries.sort(key=lambda e: float(e[0] @ normal))
        positions: list[np.ndarray] = []
        members: list[list[SliceHeader]] = []
        for pos, h in entries:
            for i in range(len(positions) - 1, max(-1, len(positions) - 3), -1):
                if np.linalg.norm(positions[i] - pos) < _SAME_POSITION_MM:
                    members[i].append(h)
                    break
            else:
                positions.append(pos)
                members.append([h])
        stacks.append(
            Stack(
                u=u,
                v=v,
                normal=normal,
                dx=h0.spacing[1],
                dy=h0.spacing[0],
                rows=h0.rows,
                cols=h0.cols,
                positions=np.array(positions),
                members=members,
                thickness=h0.slice_thickness,
                mosaic=bool(h0.mosaic_n),
                tilt_deg=h0.tilt_deg,
            )
        )
    return stacks


def stack_affine(stack: Stack) -> np.ndarray:
    """Voxel (c, r, k) -> LPS mm affine of an evenly spaced stack (first to last slice)."""
    a = np.eye(4)
    a[:3, 0] = stack.u * stack.dx
    a[:3, 1] = stack.v * stack.dy
    a[:3, 2] = stack.step_vector()
    a[:3, 3] = stack.positions[0]
    return a


def _corners(shape):
    return np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)], float)


def check_affine(
    affine_ras: np.ndarray, shape: tuple, stack: Stack, tol_mm: float = 0.1, name: str = ""
) -> tuple[float, np.ndarray]:
    """Check a NIfTI affine against the DICOM stack geometry.

    Every corner voxel centre of the DICOM stack (first and last slice, first and last row
    and column, from ImagePositionPatient / ImageOrientationPatient / PixelSpacing) must be
    within ``tol_mm`` of a corner voxel centre of the NIfTI grid and vice versa; grid sizes
    must agree. Axis permutations and flips are allowed (they are what converters do);
    spacing, extent, position and obliquity must agree. Which way the voxel data run is
    checked separately by :func:`check_voxels`.

    Parameters
    ----------
    affine_ras : (4, 4) ndarray
        NIfTI voxel (i, j, k) -> RAS+ mm.
    shape : tuple
        NIfTI array shape (first three axes are spatial).
    stack : Stack
    tol_mm : float
    name : str
        Output file name used in error messages.

    Returns
    -------
    (max_error_mm, index_map)
        ``index_map`` (4, 4) maps DICOM (c, r, k) to NIfTI (i, j, k) (a signed
        permutation plus integer offset).

    Raises
    ------
    GeometryError
        When any corner is further than ``tol_mm`` from where it should be.
    """
    shape3 = tuple(int(s) for s in shape[:3]) + (1,) * (3 - len(shape[:3]))
    a_lps = LPS_TO_RAS @ np.asarray(affine_ras, float)
    a_dcm = stack_affine(stack)
    dshape = (stack.cols, stack.rows, stack.n_slices)
    if sorted(shape3) != sorted(dshape):
        raise GeometryError(
            f"{name or 'output'}: grid {shape3} does not have the size of the DICOM stack {dshape} "
            f"(columns, rows, slices) of the series starting {stack.first_file}"
        )
    dc = _corners(dshape)
    wd = (a_dcm[:3, :3] @ dc.T).T + a_dcm[:3, 3]
    wn = (a_lps[:3, :3] @ _corners(shape3).T).T + a_lps[:3, 3]
    dist = np.linalg.norm(wd[:, None, :] - wn[None, :, :], axis=2)  # DICOM corner x NIfTI corner, mm
    worst = float(max(dist.min(axis=1).max(), dist.min(axis=0).max()))
    if worst > tol_mm:
        i = int(np.argmax(dist.min(axis=1)))
        j = int(np.argmin(dist[i]))
        detail = (
            f"DICOM corner voxel (c,r,k)={tuple(int(x) for x in dc[i])} is at LPS {np.round(wd[i], 3).tolist()}, "
            f"the nearest output corner at {np.round(wn[j], 3).tolist()}"
        )
        raise GeometryError(
            f"{name or 'output'}: affine disagrees with the DICOM geometry of series starting "
            f"{stack.first_file} by {worst:.3f} mm (limit {tol_mm} mm): {detail}; the series is "
            "not released; check the DICOM positions and report the case"
        )
    index_map = np.round(np.linalg.inv(a_lps) @ a_dcm)
    if stack.n_slices == 1:
        index_map[:3, 2] = 0
    lin = np.abs(index_map[:3, :3])
    if stack.n_slices > 1 and not (np.all(lin.sum(axis=0) == 1) and np.all(lin.sum(axis=1) == 1)):
        raise GeometryError(
            f"{name or 'output'}: output grid is not a permutation of the DICOM grid ({index_map[:3, :3].tolist()})"
        )
    return worst, index_map


def check_voxels(data, index_map: np.ndarray, pixels: np.ndarray, k: int, name: str = "") -> bool:
    """Check that a DICOM slice's pixels sit where the affine says in the NIfTI array.

    Parameters
    ----------
    data : array-like, shape (I, J, K[, T])
        NIfTI stored (unscaled) values.
    index_map : (4, 4) ndarray
        DICOM (c, r, k) -> NIfTI (i, j, k), from :func:`check_affine`.
    pixels : ndarray (rows, cols)
        DICOM stored values of slice ``k`` (row-major as in PixelData).
    k : int
        Slice index of ``pixels`` in the DICOM stack.

    Returns
    -------
    bool
        True when some volume of ``data`` holds exactly these values at the mapped voxels.
    """
    rows, cols = pixels.shape
    r, c = np.mgrid[0:rows, 0:cols]
    idx = index_map[:3, :3] @ np.stack([c.ravel(), r.ravel(), np.full(c.size, k)]) + index_map[:3, 3:4]
    idx = idx.astype(np.intp)
    shape = data.shape
    if np.any(idx < 0) or np.any(idx >= np.array(shape[:3])[:, None]):
        return False
    want = pixels.ravel().astype(np.float64)
    nvol = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    arr = np.asarray(data).reshape(shape[:3] + (nvol,), order="F")
    for t in range(nvol):
        got = arr[idx[0], idx[1], idx[2], t].astype(np.float64)
        if np.array_equal(got, want):
            return True
    return False


def _axis_of(a: np.ndarray, stack: Stack, rel_tol: float = 1e-3):
    """('c' | 'r', +1 | -1) when LPS column ``a`` is +-u*dx or +-v*dy, else None."""
    for which, vec, sp in (("c", stack.u, stack.dx), ("r", stack.v, stack.dy)):
        for sign in (1, -1):
            if np.linalg.norm(a - sign * vec * sp) <= rel_tol * sp:
                return which, sign
    return None


def _axis_vector(ax, stack: Stack) -> np.ndarray:
    which, sign = ax
    return sign * (stack.u * stack.dx if which == "c" else stack.v * stack.dy)


def dicom_to_nifti_slice(pixels: np.ndarray, axes) -> np.ndarray:
    """Reorder a DICOM slice (rows, cols) to NIfTI in-plane axes.

    ``axes``: for NIfTI axes 0 and 1, ('c' | 'r', +1 | -1): which DICOM axis (column or
    row index) it runs along and in which direction.
    """
    arr = pixels if axes[0][0] == "r" else pixels.T  # now [axis0, axis1]
    if axes[0][1] < 0:
        arr = arr[::-1, :]
    if axes[1][1] < 0:
        arr = arr[:, ::-1]
    return arr


def resample_stack(
    data: np.ndarray,
    affine_ras: np.ndarray,
    stack: Stack,
    name: str = "",
    first_last: tuple | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Resample a tilted and/or unevenly spaced stack onto a regular orthogonal grid.

    Only the converter's voxel data and in-plane axis directions are used, the latter
    after checking them against ImageOrientationPatient / PixelSpacing; every position
    comes from the DICOM (ImagePositionPatient of every slice), never from the converter
    (dcm2niix's origin of a tilted stack can be tens of mm off). Slices are first interpolated linearly along the stack to even
    steps (uneven spacing), then the sheared stack (gantry tilt) is resampled with
    SimpleITK (linear) onto a grid whose third axis is the slice normal.

    Parameters
    ----------
    data : ndarray (I, J, K)
        Converter output, slice axis last, K == stack.n_slices, slices in spatial order
        (ascending or descending).
    affine_ras : (4, 4) ndarray
        The converter's affine (its third column is ignored).
    stack : Stack
    first_last : (ndarray or None, ndarray or None), optional
        DICOM stored values (rows, cols) of the first and last slice of ``stack``; used to
        tell which end of the stack the converter's slice 0 is.

    Returns
    -------
    (data, affine_ras, info)
        Resampled array (same dtype), its voxel -> RAS+ mm affine, and a dict with
        ``step_mm``, ``shear_deg`` and ``method``.
    """
    import SimpleITK as sitk

    if data.ndim != 3 or data.shape[2] != stack.n_slices:
        raise GeometryError(
            f"{name}: cannot resample: expected a 3D array with {stack.n_slices} slices, got shape {data.shape}"
        )
    a_lps = LPS_TO_RAS @ np.asarray(affine_ras, float)
    axes = [_axis_of(a_lps[:3, t], stack) for t in (0, 1)]
    if None in axes or axes[0][0] == axes[1][0]:
        raise GeometryError(
            f"{name}: in-plane axes of the converter output {np.round(a_lps[:3, :2].T, 4).tolist()} are not the "
            "DICOM row/column directions times PixelSpacing; cannot resample"
        )
    # NIfTI voxel (0, 0) of a slice is DICOM pixel (c0, r0); its position comes from the DICOM only
    # (converters' own origins are not trusted for tilted stacks)
    corner = {"c": 0, "r": 0}
    for t, (which, sign) in enumerate(axes):
        if sign < 0:
            corner[which] = data.shape[t] - 1
    offset = corner["c"] * stack.dx * stack.u + corner["r"] * stack.dy * stack.v
    a0, a1 = (_axis_vector(ax, stack) for ax in axes)
    # which end of the stack is NIfTI slice 0: look at the voxel data, else at the converter's origin
    order = None
    how = "data"
    if first_last is not None:
        first, last = (None if p is None else dicom_to_nifti_slice(p, axes) for p in first_last)
        if first is not None and np.array_equal(data[:, :, 0], first):
            order = np.arange(stack.n_slices)
        elif last is not None and np.array_equal(data[:, :, 0], last):
            order = np.arange(stack.n_slices)[::-1]
        elif first is not None and last is not None:
            raise GeometryError(
                f"{name}: the converter's first slice holds neither the first nor the last DICOM slice "
                f"of the series starting {stack.first_file}; cannot resample"
            )
    if order is None:
        how = "converter origin height"
        h0 = float((a_lps[:3, 3] - stack.positions[0]) @ stack.normal)
        h1 = float((a_lps[:3, 3] - stack.positions[-1]) @ stack.normal)
        if min(abs(h0), abs(h1)) > 0.1:
            raise GeometryError(
                f"{name}: first slice of converter output is {min(abs(h0), abs(h1)):.3f} mm off both end slices"
            )
        order = np.arange(stack.n_slices) if abs(h0) <= abs(h1) else np.arange(stack.n_slices)[::-1]
    origins = stack.positions[order] + offset  # LPS position of NIfTI voxel (0, 0, k)
    heights = (origins - origins[0]) @ stack.normal
    if heights[-1] < 0:
        heights = -heights
        n_out = -stack.normal
    else:
        n_out = stack.normal.copy()
    steps = np.diff(heights)
    span = float(heights[-1])
    n_steps = int(np.ceil(span / float(np.min(steps)) - 1e-6)) if len(steps) else 0
    step = span / n_steps if n_steps else float(stack.thickness or 1.0)
    info = {"method": [], "step_mm": step, "slice_order_from": how}
    src = data
    if len(steps) and float(np.max(np.abs(steps - step))) > 1e-3:
        # 1) linear interpolation along the stack, on true slice heights
        target_h = np.arange(n_steps + 1) * step
        t = np.interp(target_h, heights, np.arange(len(heights)))
        lo = np.floor(t).astype(int).clip(0, len(heights) - 1)
        hi = np.minimum(lo + 1, len(heights) - 1)
        w = (t - lo)[None, None, :]
        src = data[:, :, lo].astype(np.float64) * (1 - w) + data[:, :, hi].astype(np.float64) * w
        origins = origins[lo] * (1 - (t - lo))[:, None] + origins[hi] * (t - lo)[:, None]
        info["method"].append(
            f"linear along the stack from {len(heights)} slices at true positions to {n_steps + 1} slices {step:.4g} mm apart"
        )
    d = (origins[-1] - origins[0]) / max(len(origins) - 1, 1)
    shear = float(np.degrees(np.arctan2(np.linalg.norm(d - (d @ n_out) * n_out), d @ n_out)))
    info["shear_deg"] = shear
    out_dtype = data.dtype
    if np.linalg.norm(d - (d @ n_out) * n_out) * (len(origins) - 1) > 0.01:
        # 2) sheared (tilted) stack -> orthogonal grid, SimpleITK linear resampling
        s0, s1 = np.linalg.norm(a0), np.linalg.norm(a1)
        e0, e1 = a0 / s0, a1 / s1
        img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(src, dtype=np.float32).T))
        img.SetSpacing((float(s0), float(s1), float(np.linalg.norm(d))))
        img.SetOrigin(tuple(float(x) for x in origins[0]))
        dn = d / np.linalg.norm(d)
        img.SetDirection(tuple(float(x) for x in np.column_stack([e0, e1, dn]).ravel()))
        # bounding box of all source voxel corners in the output frame (e0, e1, n_out)
        ni, nj, nk = src.shape
        corners = np.array(
            [origins[0] + i * a0 + j * a1 + k * d for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)]
        )
        frame = np.column_stack([e0, e1, n_out])
        proj = (corners - origins[0]) @ frame
        lo_c, hi_c = proj.min(axis=0), proj.max(axis=0)
        sp = np.array([s0, s1, float(d @ n_out)])
        size = np.ceil((hi_c - lo_c) / sp - 1e-3).astype(int) + 1  # cover every source voxel centre
        origin = origins[0] + frame @ lo_c
        res = sitk.Resample(
            img,
            [int(x) for x in size],
            sitk.Transform(),
            sitk.sitkLinear,
            tuple(float(x) for x in origin),
            tuple(float(x) for x in sp),
            tuple(float(x) for x in frame.ravel()),
            float(np.min(src)),
            sitk.sitkFloat32,
        )
        src = sitk.GetArrayFromImage(res).T
        new_lps = np.eye(4)
        new_lps[:3, :3] = frame * sp
        new_lps[:3, 3] = origin
        info["method"].append(
            f"SimpleITK linear resampling of the sheared stack ({shear:.2f} deg) onto an orthogonal grid"
        )
    else:
        new_lps = np.eye(4)
        new_lps[:3, 0], new_lps[:3, 1] = a0, a1
        new_lps[:3, 2] = n_out * step
        new_lps[:3, 3] = origins[0]
    if np.issubdtype(out_dtype, np.integer):
        info_ = np.iinfo(out_dtype)
        src = np.clip(np.rint(src), info_.min, info_.max)
    return np.asarray(src).astype(out_dtype), LPS_TO_RAS @ new_lps, info


def check_resampled(affine_ras: np.ndarray, shape: tuple, stack: Stack, tol_mm: float = 0.1, name: str = "") -> float:
    """Independent check of a resampled (tilt-corrected or evenly re-spaced) output grid.

    The output's first two axes must lie in the DICOM slice plane (ImageOrientationPatient),
    its slice axis along the slice normal, its first and last slices on the planes of the
    first and last DICOM slices, and the in-plane corners of the first and last DICOM
    slices inside its field of view, all within ``tol_mm``.

    Returns
    -------
    float
        Largest error found (mm).

    Raises
    ------
    GeometryError
    """
    a_lps = LPS_TO_RAS @ np.asarray(affine_ras, float)
    shape3 = tuple(int(s) for s in shape[:3])
    errs = []
    span = float(max(shape3[0], shape3[1]) * np.linalg.norm(a_lps[:3, 0]))
    for col in (0, 1):
        a = a_lps[:3, col]
        errs.append(abs(float(a @ stack.normal)) / np.linalg.norm(a) * span)
    c2 = a_lps[:3, 2]
    errs.append(float(np.linalg.norm(np.cross(c2 / np.linalg.norm(c2), stack.normal))) * span)
    hs_out = sorted([float((a_lps @ np.r_[0, 0, k, 1])[:3] @ stack.normal) for k in (0, shape3[2] - 1)])
    hs_dcm = sorted([float(stack.positions[0] @ stack.normal), float(stack.positions[-1] @ stack.normal)])
    errs.extend(abs(a - b) for a, b in zip(hs_out, hs_dcm))
    inv = np.linalg.inv(a_lps)
    for p in (stack.positions[0], stack.positions[-1]):
        for c in (0, stack.cols - 1):
            for r in (0, stack.rows - 1):
                w = p + c * stack.dx * stack.u + r * stack.dy * stack.v
                idx = (inv @ np.r_[w, 1])[:3]
                out = np.maximum(0, np.maximum(-idx, idx - (np.array(shape3) - 1)))
                errs.append(float(np.linalg.norm(out * np.linalg.norm(a_lps[:3, :3], axis=0))))
    worst = float(max(errs))
    if worst > tol_mm:
        raise GeometryError(
            f"{name or 'output'}: resampled grid disagrees with the DICOM geometry of series starting "
            f"{stack.first_file} by {worst:.3f} mm (limit {tol_mm} mm)"
        )
    return worst
