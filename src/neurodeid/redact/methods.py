"""Redaction methods on pixel arrays: mask, blur, crop (pure functions).

Arrays are ``frames`` shaped (frames, rows, columns, samples) holding stored
pixel values (no rescale applied); boxes are (x0, y0, x1, y1) pixel indices
(column, row; end-exclusive).
"""

from __future__ import annotations

import math

import numpy as np

Box = tuple[int, int, int, int]


def pad_box(box: Box, margin: int, rows: int, columns: int) -> Box:
    """Grow a box by ``margin`` pixels on every side, clipped to the image."""
    x0, y0, x1, y1 = box
    return (max(0, x0 - margin), max(0, y0 - margin), min(columns, x1 + margin), min(rows, y1 + margin))


def boxes_mask(boxes, rows: int, columns: int) -> np.ndarray:
    """Boolean (rows, columns) mask, True inside any box."""
    m = np.zeros((rows, columns), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        m[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    return m


def fill_value(frames: np.ndarray, fill, photometric: str):
    """The stored value used by ``mask``.

    "black"/"white" are display black/white: the image minimum/maximum
    (swapped for MONOCHROME1); a number is used as is (clipped to the dtype).
    """
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):
        info = np.iinfo(frames.dtype) if frames.dtype.kind in "ui" else np.finfo(frames.dtype)
        return np.clip(fill, info.min, info.max).astype(frames.dtype)
    lo, hi = frames.min(), frames.max()
    black, white = (hi, lo) if photometric == "MONOCHROME1" else (lo, hi)
    return black if fill == "black" else white


def apply_mask(frames: np.ndarray, mask2d: np.ndarray, value) -> np.ndarray:
    """Copy of ``frames`` with every pixel under ``mask2d`` (rows, columns) set to ``value`` (all frames, all samples)."""
    out = frames.copy()
    out[:, mask2d, :] = value
    return out


def _gauss_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(math.ceil(3 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def _blur_axis(a: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    r = (len(k) - 1) // 2
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r, r)
    p = np.pad(a, pad, mode="edge")
    out = np.zeros_like(a)
    n = a.shape[axis]
    for i, w in enumerate(k):
        sl = [slice(None)] * a.ndim
        sl[axis] = slice(i, i + n)
        out += w * p[tuple(sl)]
    return out


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over rows and columns of a (rows, columns, samples) float array (edges replicated)."""
    k = _gauss_kernel(sigma)
    return _blur_axis(_blur_axis(image.astype(np.float32), k, 0), k, 1)


def apply_blur(frames: np.ndarray, mask2d: np.ndarray, sigma: float) -> np.ndarray:
    """Copy of ``frames`` with the pixels under ``mask2d`` replaced by a Gaussian blur (sigma in pixels).

    Only a window around the mask (3 sigma beyond its bounding box) is
    filtered. Blur hides text from OCR and eyes at a large enough sigma but is
    not a proof against deconvolution of a known font: prefer ``mask`` where
    the content under the box is not needed.
    """
    out = frames.copy()
    if not mask2d.any():
        return out
    rows, cols = mask2d.shape
    ys, xs = np.nonzero(mask2d)
    r = int(math.ceil(3 * sigma))
    y0, y1 = max(0, ys.min() - r), min(rows, ys.max() + 1 + r)
    x0, x1 = max(0, xs.min() - r), min(cols, xs.max() + 1 + r)
    sub_mask = mask2d[y0:y1, x0:x1]
    info = np.iinfo(frames.dtype) if frames.dtype.kind in "ui" else None
    for f in range(frames.shape[0]):
        blurred = gaussian_blur(frames[f, y0:y1, x0:x1, :], sigma)
        if info is not None:
            blurred = np.clip(np.rint(blurred), info.min, info.max)
        region = out[f, y0:y1, x0:x1, :]
        region[sub_mask] = blurred[sub_mask].astype(frames.dtype)
    return out


def crop_window(boxes, rows: int, columns: int, min_keep: float,
                max_cut: float = 1.0) -> tuple[tuple[int, int, int, int], list[Box]]:
    """Largest-keeping crop that cuts each box off at its cheapest image edge.

    Boxes are handled nearest-edge first; for each box that still intersects
    the window, the cut (top, bottom, left or right, through the far side of
    the box) that keeps the most area is taken among the cuts no deeper than
    ``max_cut`` of the image height/width, unless it would leave less than
    ``min_keep`` of the original area. A box with no such cut is returned in
    ``leftover`` (to be masked instead).

    Returns
    -------
    (r0, r1, c0, c1), leftover
        Kept rows ``r0:r1`` and columns ``c0:c1`` of the input image, and the
        boxes the crop could not remove.
    """
    r0, r1, c0, c1 = 0, rows, 0, columns
    total = rows * columns

    def edge_distance(b):
        x0, y0, x1, y1 = b
        return min(y0, rows - y1, x0, columns - x1)

    leftover = []
    for b in sorted(boxes, key=edge_distance):
        x0, y0, x1, y1 = b
        if x1 <= c0 or x0 >= c1 or y1 <= r0 or y0 >= r1:
            continue
        options = [
            ((max(r0, y1), r1, c0, c1), y1 <= max_cut * rows),              # cut the top through the box bottom
            ((r0, min(r1, y0), c0, c1), rows - y0 <= max_cut * rows),       # cut the bottom
            ((r0, r1, max(c0, x1), c1), x1 <= max_cut * columns),           # cut the left
            ((r0, r1, c0, min(c1, x0)), columns - x0 <= max_cut * columns),  # cut the right
        ]
        options = [w for w, ok in options if ok]
        best = max(options, key=lambda w: max(0, w[1] - w[0]) * max(0, w[3] - w[2]), default=None)
        if best is None or max(0, best[1] - best[0]) * max(0, best[3] - best[2]) < min_keep * total:
            leftover.append(b)
        else:
            r0, r1, c0, c1 = best
    # leftovers that the final window no longer contains need nothing
    leftover = [b for b in leftover if not (b[2] <= c0 or b[0] >= c1 or b[3] <= r0 or b[1] >= r1)]
    return (r0, r1, c0, c1), leftover


def resize_frames(frames: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Bilinear resampling of every frame and sample to (rows, columns); values rounded and clipped to the dtype."""
    from PIL import Image

    out = np.empty((frames.shape[0], rows, columns, frames.shape[3]), dtype=frames.dtype)
    info = np.iinfo(frames.dtype) if frames.dtype.kind in "ui" else None
    for f in range(frames.shape[0]):
        for s in range(frames.shape[3]):
            img = Image.fromarray(np.ascontiguousarray(frames[f, :, :, s], dtype=np.float32))
            r = np.asarray(img.resize((columns, rows), Image.Resampling.BILINEAR), dtype=np.float32)
            if info is not None:
                r = np.clip(np.rint(r), info.min, info.max)
            out[f, :, :, s] = r.astype(frames.dtype)
    return out
