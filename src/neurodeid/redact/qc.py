"""Before/after picture of a redaction (no text in the picture).

Left: the input frame with boxes outlined (red: OCR boxes, blue: region-rule
rectangles, magenta: boxes masked because a crop could not remove them,
yellow: the kept crop window, green: ultrasound regions kept). Right: the same
frame after redaction (boxes outlined again unless cropped away).

The left panel shows the ORIGINAL pixels, burned-in identifiers included: a
redaction QC picture belongs with private outputs, never in the release.
"""

from __future__ import annotations

import numpy as np

from .engine import Redaction

RED, BLUE, MAGENTA, YELLOW, GREEN = (255, 0, 0), (0, 96, 255), (255, 0, 255), (255, 220, 0), (0, 200, 0)
GAP = 8


def display_range(frame: np.ndarray) -> tuple[float, float]:
    """0.5 and 99.5 percentiles of a frame (stored values)."""
    lo, hi = np.percentile(frame.astype(np.float32), [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(frame.min()), float(frame.max())
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def display8(frame: np.ndarray, photometric: str, window: tuple[float, float] | None = None) -> np.ndarray:
    """(rows, columns, 3) uint8 for display.

    Grayscale is clipped to ``window`` (stored values; default the frame's
    0.5/99.5 percentiles); RGB is scaled to 8 bits if 16-bit.
    """
    a = frame.astype(np.float32)
    if a.ndim == 2 or a.shape[-1] == 1:
        a = a.reshape(a.shape[0], a.shape[1])
        lo, hi = window or display_range(a)
        g = np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1) * 255
        if photometric == "MONOCHROME1":
            g = 255 - g
        g = g.astype(np.uint8)
        return np.stack([g, g, g], axis=-1)
    if frame.dtype.itemsize > 1:
        a = a * (255.0 / max(float(a.max()), 1.0))
    return np.clip(a, 0, 255).astype(np.uint8)


def _outline(draw, box, colour, dx=0, dy=0, width=2):
    x0, y0, x1, y1 = box
    draw.rectangle([x0 + dx, y0 + dy, x1 - 1 + dx, y1 - 1 + dy], outline=colour, width=width)


def qc_image(before: np.ndarray, after: np.ndarray, photometric: str, red: Redaction):
    """The before/after picture as a PIL image.

    Parameters
    ----------
    before, after : ndarray, shape (frames, rows, columns, samples)
        Input and output pixels; the frame shown is ``red.qc_frame``.
    """
    from PIL import Image, ImageDraw

    f = min(red.qc_frame, before.shape[0] - 1)
    # one display window for both panels, from the redacted frame, so that
    # saturated burned-in text does not squash the grey levels
    window = display_range(after[f]) if after.shape[3] == 1 else None
    left = display8(before[f], photometric, window)
    right = display8(after[f], photometric, window)
    h = max(left.shape[0], right.shape[0])
    w = left.shape[1] + GAP + right.shape[1]
    canvas = Image.new("RGB", (w, h), (40, 40, 40))
    canvas.paste(Image.fromarray(left), (0, 0))
    canvas.paste(Image.fromarray(right), (left.shape[1] + GAP, 0))
    d = ImageDraw.Draw(canvas)
    ox = left.shape[1] + GAP
    for b in red.us_keep:
        _outline(d, b, GREEN)
    for b in red.rule_boxes:
        _outline(d, b, BLUE)
    for b in red.ocr_boxes:
        _outline(d, b, RED)
    for b in red.leftover:
        _outline(d, b, MAGENTA)
    if red.window is not None:
        r0, r1, c0, c1 = red.window
        _outline(d, (c0, r0, c1, r1), YELLOW)
        if not red.resized:
            for b in red.leftover:
                _outline(d, b, MAGENTA, dx=ox - c0, dy=-r0)
    else:
        for colour, boxes in ((BLUE, red.rule_boxes), (RED, red.ocr_boxes)):
            for b in boxes:
                _outline(d, b, colour, dx=ox)
    return canvas
