"""QC pictures (PNG) for defacing: triplanar before/after and a 3-D surface render.

Dependency-free: numpy + scipy for resampling and a tiny PNG writer (zlib). Pictures carry
no identifying text: only the labels BEFORE, AFTER, REMOVED, FRONT, SIDE (from a built-in
5 x 7 bitmap font), never a file name or a date.

Orientation: volumes come as voxel-(i, j, k) arrays with a ``vox2ras`` affine (voxel ->
RAS+ mm). Pass the header affine, or better the voxel -> template affine from the defacing
registration (``DefaceResult.vox_to_template``) so that "front" is the real face even when
the header is rotated. Pictures are drawn in radiological-free "viewer" convention:
superior up; sagittal/side views with anterior to the right; coronal, axial and front views
with the subject's right on the viewer's left.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

__all__ = ["deface_qc", "surface_render", "to_view", "triplanar", "write_png"]

_FONT = {  # 5 x 7 glyphs, one string per row
    "A": ["01110", "10001", "10001", "11111", "10001", "10001", "10001"],
    "B": ["11110", "10001", "10001", "11110", "10001", "10001", "11110"],
    "D": ["11110", "10001", "10001", "10001", "10001", "10001", "11110"],
    "E": ["11111", "10000", "10000", "11110", "10000", "10000", "11111"],
    "F": ["11111", "10000", "10000", "11110", "10000", "10000", "10000"],
    "I": ["01110", "00100", "00100", "00100", "00100", "00100", "01110"],
    "M": ["10001", "11011", "10101", "10101", "10001", "10001", "10001"],
    "N": ["10001", "11001", "10101", "10011", "10001", "10001", "10001"],
    "O": ["01110", "10001", "10001", "10001", "10001", "10001", "01110"],
    "R": ["11110", "10001", "10001", "11110", "10100", "10010", "10001"],
    "S": ["01111", "10000", "10000", "01110", "00001", "00001", "11110"],
    "T": ["11111", "00100", "00100", "00100", "00100", "00100", "00100"],
    "V": ["10001", "10001", "10001", "10001", "10001", "01010", "00100"],
    " ": ["00000"] * 7,
}


def write_png(path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) or (H, W) uint8 array as an 8-bit RGB PNG (no metadata chunks)."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, -1)
    rgb = np.ascontiguousarray(np.clip(rgb, 0, 255).astype(np.uint8))
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(
            ">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        f.write(chunk(b"IEND", b""))


def _text(img: np.ndarray, text: str, row: int, col: int, scale: int = 2,
          color=(255, 255, 0)) -> None:
    """Draw upper-case ``text`` (letters of the built-in font only) into ``img`` in place."""
    for n, ch in enumerate(text.upper()):
        g = np.array([[c == "1" for c in r] for r in _FONT[ch]])
        g = np.kron(g, np.ones((scale, scale), bool))
        r0, c0 = row, col + n * 6 * scale
        sub = img[r0:r0 + g.shape[0], c0:c0 + g.shape[1]]
        sub[g[: sub.shape[0], : sub.shape[1]]] = color


def to_view(vol: np.ndarray, vox2ras: np.ndarray, spacing: float = 1.0, order: int = 1,
            bbox=None):
    """Resample a volume onto an axis-aligned grid (x = R, y = A, z = S) of ``spacing`` mm.

    Returns ``(view, view_affine)``; ``view`` is indexed (x, y, z) increasing R, A, S.
    ``bbox`` (2 x 3 mm) defaults to the bounding box of the volume's corners.
    """
    if bbox is None:
        corners = np.array([[a, b, c, 1] for a in (0, vol.shape[0] - 1)
                            for b in (0, vol.shape[1] - 1) for c in (0, vol.shape[2] - 1)])
        pts = corners @ np.asarray(vox2ras).T
        bbox = np.array([pts[:, :3].min(0), pts[:, :3].max(0)])
    shape = tuple(int(np.ceil((bbox[1][d] - bbox[0][d]) / spacing)) + 1 for d in range(3))
    vaff = np.diag([spacing, spacing, spacing, 1.0])
    vaff[:3, 3] = bbox[0]
    m = np.linalg.inv(vox2ras) @ vaff
    out = ndi.affine_transform(np.asarray(vol, np.float32), m[:3, :3], m[:3, 3],
                               output_shape=shape, order=order, mode="constant", cval=0.0)
    return out, vaff


def _gray(a, lo, hi):
    g = np.clip((a - lo) / max(hi - lo, 1e-6) * 255, 0, 255)
    return np.stack([g] * 3, -1)


def _pad_row(panels, gap=4):
    h = max(p.shape[0] for p in panels)
    out = []
    for p in panels:
        q = np.zeros((h, p.shape[1], 3))
        q[h - p.shape[0]:] = p
        out += [q, np.zeros((h, gap, 3))]
    return np.concatenate(out[:-1], 1)


def _stack_rows(rows, gap=4, label_w=100, labels=None):
    w = max(r.shape[1] for r in rows)
    out = []
    for n, r in enumerate(rows):
        q = np.zeros((r.shape[0], w + label_w, 3))
        q[:, label_w:label_w + r.shape[1]] = r
        if labels:
            _text(q, labels[n], 6, 4)
        out += [q, np.zeros((gap, w + label_w, 3))]
    return np.concatenate(out[:-1], 0)


def _slices(v, c):
    """Sagittal (A right, S up), coronal (R on viewer's left, S up), axial (R left, A up)."""
    sw = lambda a: np.swapaxes(a, 0, 1)
    sag = sw(v[c[0], :, :])[::-1, :]
    cor = sw(v[:, c[1], :])[::-1, ::-1]
    axi = sw(v[:, :, c[2]])[::-1, ::-1]
    return [sag, cor, axi]


def triplanar(before, after, removed, vox2ras, spacing: float = 1.0,
              center_mm=None) -> np.ndarray:
    """Triplanar before/after picture: row 1 before with the removed region in red, row 2
    after. Slices pass through ``center_mm`` (view RAS mm; default: 40 % of the height of
    the removed region's centre, i.e. through the face).

    Returns an (H, W, 3) uint8 array.
    """
    vb, vaff = to_view(before, vox2ras, spacing)
    va, _ = to_view(after, vox2ras, spacing)
    vr, _ = to_view(removed.astype(np.float32), vox2ras, spacing, order=0)
    lo, hi = np.percentile(vb[vb > vb.min()], [1, 99.5]) if np.any(vb > vb.min()) else (0, 1)
    if center_mm is None:
        if vr.any():
            c = np.round(np.argwhere(vr > 0.5).mean(0)).astype(int)
            fg = np.argwhere(vb > lo)
            c[0] = int(np.round(fg[:, 0].mean()))  # mid-sagittal
        else:
            c = np.array(vb.shape) // 2
    else:
        c = np.round(np.linalg.solve(vaff, np.r_[center_mm, 1.0])[:3]).astype(int)
    c = np.clip(c, 0, np.array(vb.shape) - 1)
    gb, ga = _gray(vb, lo, hi), _gray(va, lo, hi)
    ov = gb.copy()
    m = vr > 0.5
    ov[m] = 0.5 * ov[m] + 0.5 * np.array([255, 0, 0])
    row1 = _pad_row(_slices(ov, c))
    row2 = _pad_row(_slices(ga, c))
    img = _stack_rows([row1, row2], labels=["BEFORE", "AFTER"])
    _text(img, "REMOVED", img.shape[0] // 2 - 30, 4, color=(255, 60, 60))
    return img.astype(np.uint8)


def _depth_image(mask: np.ndarray, axis: int, from_high: bool) -> np.ndarray:
    """Ray-cast along ``axis``: first hit from the high (or low) end; shaded by depth and by
    a Lambert term from the depth gradient. Returns a 2-D float image in 0-255 (0 = no hit).
    """
    m = np.moveaxis(mask, axis, -1)
    if from_high:
        m = m[..., ::-1]
    hit = m.any(-1)
    first = np.argmax(m, -1).astype(np.float32)
    n = m.shape[-1]
    depth = np.where(hit, first, n)
    d = np.where(hit, first, np.nan)
    dmin, dmax = np.nanmin(d) if hit.any() else 0, np.nanmax(d) if hit.any() else 1
    gy, gx = np.gradient(ndi.gaussian_filter(np.where(hit, depth, dmax), 1.0))
    lam = 1.0 / np.sqrt(1 + gx**2 + gy**2)
    shade = (1 - (depth - dmin) / max(dmax - dmin, 1)) * 0.6 + 0.4 * lam
    return np.where(hit, 40 + 215 * np.clip(shade, 0, 1), 0)


def surface_render(before, after, vox2ras, threshold: float, spacing: float = 1.5) -> np.ndarray:
    """Depth-shaded surface renders of the head (``value > threshold``, largest component)
    before and after: front view (looking at the face) and right side view.

    Returns an (H, W, 3) uint8 array: row 1 BEFORE (front, side), row 2 AFTER.
    """
    rows = []
    for vol in (before, after):
        v, _ = to_view(vol, vox2ras, spacing)
        m = ndi.binary_opening(v > threshold, iterations=1)
        lab, nlab = ndi.label(m)
        if nlab:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            m = lab == sizes.argmax()
        front = _depth_image(m, 1, True)  # along A from the front: (x, z)
        front = front.T[::-1, ::-1]       # S up, subject's right on viewer's left
        side = _depth_image(m, 0, True)   # along R from the right: (y, z)
        side = side.T[::-1, :]            # S up, anterior to the right
        rows.append(_pad_row([np.stack([front] * 3, -1), np.stack([side] * 3, -1)]))
    img = _stack_rows(rows, labels=["BEFORE", "AFTER"])
    return img.astype(np.uint8)


def deface_qc(before, after, removed, vox2ras, threshold: float, out_dir) -> list[str]:
    """Write ``deface_triplanar.png`` and ``deface_render.png`` into ``out_dir``.

    Parameters
    ----------
    before, after : ndarray, voxel (i, j, k)
        Scaled intensities before and after defacing (same grid).
    removed : bool ndarray
        Removal mask on the same grid.
    vox2ras : ndarray (4, 4)
        Voxel -> RAS+ (or template-aligned) mm.
    threshold : float
        Head/background threshold for the surface render.

    Returns
    -------
    list of str
        Paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p1, p2 = out / "deface_triplanar.png", out / "deface_render.png"
    write_png(p1, triplanar(before, after, removed, vox2ras))
    write_png(p2, surface_render(before, after, vox2ras, threshold))
    return [str(p1), str(p2)]
