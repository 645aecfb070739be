"""Text detection with Tesseract (through pytesseract).

Frames are rendered to 8-bit grayscale (one or more renderings), upscaled,
padded, and read by ``tesseract`` with a sparse-text page segmentation. Words
come back as :class:`Word` boxes in pixel indices of the input frame.

Privacy note: pytesseract hands each rendering to the ``tesseract`` process
through a temporary PNG in the system temporary directory, deleted at once.
Point ``TMPDIR`` at a private disk when that matters.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import OCRUnavailableError

#: Pixels of padding (in the upscaled rendering) around the image: Tesseract
#: misses text that touches the border (the CT name on row 0).
PAD = 16
#: Threshold (0-255 after min-max scaling) of the ``bright`` rendering.
BRIGHT_THRESHOLD = 200


@dataclass(frozen=True)
class Word:
    """One word read by Tesseract.

    ``x0, y0, x1, y1`` are pixel indices (column, row; end-exclusive) of the
    frame that was read. ``line`` identifies the Tesseract text line (the
    rendering name, block, paragraph and line numbers). ``conf`` is 0-100.
    """

    text: str
    conf: float
    x0: int
    y0: int
    x1: int
    y1: int
    frame: int
    line: tuple

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


def tesseract_available() -> tuple[bool, str]:
    """Whether OCR can run here, and why not when it cannot."""
    if shutil.which("tesseract") is None:
        return False, "the tesseract program is not on PATH (Debian: apt-get install tesseract-ocr)"
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return False, "the pytesseract package is missing (pip install pytesseract)"
    return True, ""


def tesseract_version() -> str:
    """``tesseract X.Y.Z`` for reports."""
    import pytesseract

    return f"tesseract {pytesseract.get_tesseract_version()}"


def to_gray8(frame: np.ndarray, photometric: str = "MONOCHROME2") -> np.ndarray:
    """Luminance of a frame scaled min-max to uint8.

    Parameters
    ----------
    frame : ndarray, shape (rows, columns) or (rows, columns, samples)
        Stored pixel values (RGB when 3 samples).
    photometric : str
        MONOCHROME1 is inverted so that 255 is displayed white.

    Returns
    -------
    ndarray of uint8, shape (rows, columns)
    """
    a = frame.astype(np.float32)
    if a.ndim == 3:
        a = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114 if a.shape[2] >= 3 else a[..., 0]
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    g = (a - lo) * (255.0 / (hi - lo))
    if photometric == "MONOCHROME1":
        g = 255.0 - g
    return np.clip(np.rint(g), 0, 255).astype(np.uint8)


def _bright8(frame: np.ndarray, photometric: str) -> np.ndarray:
    """Dark-on-light binary image of the brightest pixels (burned-in text is usually white or a saturated colour)."""
    a = frame.astype(np.float32)
    if a.ndim == 3:
        a = a.max(axis=2)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.full(a.shape, 255, dtype=np.uint8)
    g = (a - lo) * (255.0 / (hi - lo))
    if photometric == "MONOCHROME1":
        g = 255.0 - g
    return np.where(g >= BRIGHT_THRESHOLD, 0, 255).astype(np.uint8)


def renderings(frame: np.ndarray, photometric: str, names: tuple[str, ...], scale: int):
    """Yield (name, PIL image) pairs ready for Tesseract (upscaled by ``scale``, padded by PAD)."""
    from PIL import Image, ImageOps

    for name in names:
        if name == "gray":
            g = to_gray8(frame, photometric)
            pad_value = 0
        else:
            g = _bright8(frame, photometric)
            pad_value = 255
        img = Image.fromarray(g)
        if scale > 1:
            img = img.resize((img.width * scale, img.height * scale),
                             Image.Resampling.LANCZOS if name == "gray" else Image.Resampling.NEAREST)
        yield name, ImageOps.expand(img, PAD, fill=pad_value)


def _read(img, name: str, frame_index: int, scale: int, shape: tuple[int, int], lang: str, psm: int) -> list[Word]:
    import pytesseract

    try:
        d = pytesseract.image_to_data(img, lang=lang, config=f"--psm {psm}", output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractError as exc:
        raise OCRUnavailableError(
            f"tesseract failed (lang={lang!r}, psm={psm}): {exc}; check the language data is installed "
            f"(Debian: tesseract-ocr-{lang})"
        ) from exc
    rows, cols = shape
    words = []
    for i, text in enumerate(d["text"]):
        text = (text or "").strip()
        if not text:
            continue
        conf = float(d["conf"][i])
        x0 = (d["left"][i] - PAD) / scale
        y0 = (d["top"][i] - PAD) / scale
        x1 = x0 + d["width"][i] / scale
        y1 = y0 + d["height"][i] / scale
        bx0, by0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        bx1, by1 = min(cols, int(np.ceil(x1))), min(rows, int(np.ceil(y1)))
        if bx1 <= bx0 or by1 <= by0:
            continue
        line = (name, d["block_num"][i], d["par_num"][i], d["line_num"][i])
        words.append(Word(text, conf, bx0, by0, bx1, by1, frame_index, line))
    return words


def auto_scale(rows: int, columns: int) -> int:
    """Upscaling for OCR: 2 for images under 800 pixels on their short side, else 1.

    Tesseract reads best when capitals are 20-30 pixels tall; small images
    (CT localizers, 640x480 ultrasound) carry 8-14 pixel fonts.
    """
    return 2 if min(rows, columns) < 800 else 1


def ocr_frames(frames: np.ndarray, photometric: str, *, renderings_: tuple[str, ...] = ("gray", "bright"),
               scale: int | None = None, lang: str = "eng", psm: int = 11, threads: int = 1) -> list[list[Word]]:
    """Read every frame.

    Parameters
    ----------
    frames : ndarray, shape (frames, rows, columns, samples)
        Stored pixel values; samples is 1 (grayscale) or 3 (RGB).
    photometric : str
        Photometric interpretation of ``frames`` (MONOCHROME1, MONOCHROME2, RGB).
    scale : int or None
        Upscaling before OCR; None or 0: :func:`auto_scale`.

    Returns
    -------
    list (one per frame) of list of Word
        Boxes in pixel indices of the frame.

    Raises
    ------
    OCRUnavailableError
        When tesseract or pytesseract is missing.
    """
    ok, why = tesseract_available()
    if not ok:
        raise OCRUnavailableError(f"cannot run OCR: {why}")
    if threads > 1:
        # one OpenMP thread per tesseract process when we run several at once
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    shape = frames.shape[1:3]
    if not scale:
        scale = auto_scale(*shape)
    jobs = []
    for f in range(frames.shape[0]):
        fr = frames[f, :, :, 0] if frames.shape[3] == 1 else frames[f]
        for name, img in renderings(fr, photometric, renderings_, scale):
            jobs.append((img, name, f))
    out: list[list[Word]] = [[] for _ in range(frames.shape[0])]
    if threads > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(lambda j: _read(j[0], j[1], j[2], scale, shape, lang, psm), jobs))
    else:
        results = [_read(img, name, f, scale, shape, lang, psm) for img, name, f in jobs]
    for (_, _, f), words in zip(jobs, results):
        out[f].extend(words)
    return out


def _has_alnum(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _same_line(a: tuple, b: tuple, gap_factor: float) -> bool:
    """Boxes a and b sit on one text line and are close enough to be one phrase."""
    ha, hb = a[3] - a[1], b[3] - b[1]
    if ha <= 0 or hb <= 0 or max(ha, hb) > 2.5 * min(ha, hb):
        return False
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    if overlap < 0.5 * min(ha, hb):
        return False
    gap = max(a[0], b[0]) - min(a[2], b[2])
    return gap <= gap_factor * max(ha, hb)


def text_boxes(words: list[Word], min_conf: float, gap_factor: float,
               min_height: int = 7, *, confirm: list[tuple[int, int, int, int]] | None = None,
               unconfirmed_min_conf: float = 80.0) -> list[tuple[int, int, int, int]]:
    """Boxes to redact from the words of one frame.

    Seeds are words at least ``min_height`` pixels tall with 3+ alphanumeric
    characters and confidence >= ``min_conf`` (2 characters need
    max(min_conf, 70), 1 character 85: speckle is read as short words).
    Any word on the same text line
    within ``gap_factor`` text heights of an accepted box joins it (this takes
    in the half-read rest of a name); joined words become one line box.

    With ``confirm`` (the second reader's regions of the frame), a seed that
    overlaps none of them needs ``unconfirmed_min_conf``: Tesseract reads
    brain texture in a mosaic as "86060606" at confidence 65, which the
    second reader's detector does not see as text.

    Returns
    -------
    list of (x0, y0, x1, y1)
        Pixel indices (column, row), end-exclusive, no margin added.
    """
    def confirmed(b) -> bool:
        return confirm is None or any(b[0] < c[2] and c[0] < b[2] and b[1] < c[3] and c[1] < b[3] for c in confirm)

    cands = [w for w in words if _has_alnum(w.text) or w.conf >= min_conf]
    accepted: list[list[int]] = []
    pool = []
    for w in cands:
        n_alnum = sum(ch.isalnum() for ch in w.text)
        need = min_conf if n_alnum >= 3 else (max(min_conf, 70) if n_alnum == 2 else 85)
        if not confirmed(w.box):
            need = max(need, unconfirmed_min_conf)
        if n_alnum and w.conf >= need and w.height >= min_height:
            accepted.append(list(w.box))
        else:
            pool.append(w.box)
    changed = True
    while changed and pool:
        changed = False
        rest = []
        for b in pool:
            hit = next((a for a in accepted if _same_line(a, b, gap_factor)), None)
            if hit is not None:
                accepted.append(list(b))
                changed = True
            else:
                rest.append(b)
        pool = rest
    # merge boxes of one line into line boxes
    merged = True
    boxes = [tuple(b) for b in accepted]
    while merged:
        merged = False
        out: list[tuple[int, int, int, int]] = []
        for b in boxes:
            for i, a in enumerate(out):
                inter = not (b[2] < a[0] or a[2] < b[0] or b[3] < a[1] or a[3] < b[1])
                if inter or _same_line(a, b, gap_factor):
                    out[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    return boxes
