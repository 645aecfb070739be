"""Fast text detection and region reading with RapidOCR (the second reader).

Screening: a text detector (PP-OCRv4 DBNet, ONNX, in the ``rapidocr-onnxruntime``
wheel; CPU, offline) finds candidate text regions on a frame and on a
contrast-normalised inverted copy (CLAHE), so low-contrast text is found.
Reading: each region is cropped and read by the PP-OCRv4 recogniser in four
orientations (0, 90, 180, 270 degrees), so vertical and upside-down text is
read. Reads come back as :class:`neurodeid.redact.ocr.Word` boxes, like
Tesseract's, so the verifier judges both readers alike.

Why RapidOCR beside Tesseract: on the real CT localizer Tesseract needs two
renderings and an upscale to read the name, RapidOCR reads it at native
resolution; its detector is segmentation-based and finds rotated and
low-contrast lines that Tesseract's page layout analysis drops; and its
detector is fast enough to screen every slice of a volume (about 40 ms per
256x256 slice on one core here). Licences: RapidOCR and the PaddleOCR models
are Apache-2.0.

Boxes are pixel indices (column, row; end-exclusive) of the frame as stored
(rows top to bottom, columns left to right).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from .ocr import Word

Box = tuple[int, int, int, int]

#: Pixels added around a detected region before it is read (in frame pixels).
READ_PAD = 4
#: Smallest recogniser score (0-1) for a region read to count as text.
MIN_SCORE = 0.5
#: The same for a tall region read turned (vertical text): the view turned by 90
#: degrees shows the columns of a mosaic and of brain slices as "lines", read as
#: "3880", "188", "88" at 0.51-0.69 on text-free controls; planted vertical text
#: (8-40 px) reads at 0.85-0.99.
MIN_SCORE_TALL = 0.75
#: Screening reads only regions at most this many pixels across their short side (see region_words).
SCREEN_MAX_LINE = 80
#: The same on the local-contrast view, which also stretches noise: on the
#: near-empty last slice of a real GE T1 (stored values 0-12) it read "ASA"
#: at 0.60; planted 10-level text reads at 0.9 and more.
MIN_SCORE_CONTRAST = 0.8
#: Smallest best-read score (0-1) for a region to count as text on its own
#: (:func:`text_regions`); weaker reads still reach the verifier. A row of
#: three round phantoms in a real Siemens EPI mosaic (dcm_qa_nih) read as
#: "000" at 0.51 and 0.55 and was masked out of the volume; planted text's
#: best read scores 0.76 and more (corpus of 48, seed 7).
MIN_REGION_SCORE = 0.65
#: Glyphs a blob of anatomy or a phantom reads as: a read made only of these
#: is not text (a round object in cross-section is an "0", two are an "8"),
#: and such a string names nobody.
BLOB_GLYPHS = frozenset("0Oo8")


def detector_available() -> tuple[bool, str]:
    """Whether RapidOCR can run here, and why not when it cannot."""
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError as exc:
        return False, f"rapidocr-onnxruntime is not installed ({exc}); pip install rapidocr-onnxruntime"
    return True, ""


@lru_cache(maxsize=1)
def _engine():
    import logging

    from rapidocr_onnxruntime import RapidOCR

    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    # "max": never upscale beyond the frame (we upscale small frames ourselves)
    return RapidOCR(det_limit_type="max", det_limit_side_len=2000, intra_op_num_threads=1,
                    inter_op_num_threads=1)


def luminance(frame: np.ndarray) -> np.ndarray:
    """Stored values (or RGB luminance) as float32, shape (rows, columns); no 8-bit quantisation."""
    a = frame.astype(np.float32)
    if a.ndim == 3:
        a = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114 if a.shape[2] >= 3 else a[..., 0]
    return a


def contrast_inverted(values: np.ndarray, size: int = 15, floor: float = 3.0) -> np.ndarray:
    """Local contrast normalisation of a frame's stored values, inverted, as uint8.

    Each pixel is scaled between the (smoothed) minimum and maximum of its
    ``size`` x ``size`` neighbourhood, so text 10 stored values above a flat
    background (lost when a 12-bit frame is squeezed to 8 bits) becomes full
    contrast, dark on light. ``floor`` (stored values) keeps flat areas flat.
    CLAHE was tried first: its clip limit leaves 10-level text on a black
    background faint, and the detector missed it.

    Parameters
    ----------
    values : ndarray, shape (rows, columns)
        Stored values or luminance (see :func:`luminance`).
    """
    from scipy import ndimage as ndi

    a = values.astype(np.float32)
    lo = ndi.uniform_filter(ndi.minimum_filter(a, size), size)
    hi = ndi.uniform_filter(ndi.maximum_filter(a, size), size)
    v = np.clip((a - lo) / np.maximum(hi - lo, floor), 0.0, 1.0)
    return (255 - np.rint(v * 255)).astype(np.uint8)


def _rgb(g: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))


def detect_scale(rows: int, cols: int) -> int:
    """Upscaling before detection: 2 for frames under 1000 pixels on their short side, else 1.

    The detector finds text of about 12 pixels and up at native size; an
    upscale by 2 finds 8-10 pixel text (vertical 10-pixel text on a 1200x900
    ultrasound frame was missed at native size). Frames whose long side then
    exceeds the detector's limit (2000 pixels) are scaled back to it.
    """
    return 2 if min(rows, cols) < 1000 else 1


def detect_regions(gray: np.ndarray, *, scale: int = 1, values: np.ndarray | None = None,
                   turns: tuple[int, ...] = (0, 1)) -> list[Box]:
    """Candidate text regions of one 8-bit frame.

    Parameters
    ----------
    gray : ndarray of uint8, shape (rows, columns)
        The frame as displayed (255 white).
    scale : int
        Integer upscaling before detection (small text is found better).
    values : ndarray, shape (rows, columns), optional
        The frame's stored values (:func:`luminance`): also detect on their
        :func:`contrast_inverted` view (low-contrast text).
    turns : tuple of int
        Quarter turns (``np.rot90`` k) of the view the detector sees. The
        detector finds horizontal lines (upside down too) far better than
        vertical ones: 8-pixel text at 270 degrees on a 12-bit mosaic was found
        only on the view turned by 90 degrees. (0, 1) covers all four
        orientations; screening uses (0,).

    Returns
    -------
    list of Box
        Axis-aligned boxes around each detected (possibly rotated) region, in
        pixel indices of ``gray``.
    """
    rows, cols = gray.shape
    eng = _engine()
    views = [gray] + ([contrast_inverted(values)] if values is not None else [])
    out: list[Box] = []
    for v0 in views:
        if scale > 1:
            v0 = np.kron(v0, np.ones((scale, scale), dtype=np.uint8))
        for k in turns:
            v = np.ascontiguousarray(np.rot90(v0, k)) if k % 4 else v0
            quads, _ = eng.text_det(_rgb(v))
            if quads is None:
                continue
            for q in quads:
                q = _unturn(np.asarray(q, dtype=np.float32), k, v0.shape) / scale
                x0, y0 = int(np.floor(q[:, 0].min())), int(np.floor(q[:, 1].min()))
                x1, y1 = int(np.ceil(q[:, 0].max())) + 1, int(np.ceil(q[:, 1].max())) + 1
                b = (max(0, x0), max(0, y0), min(cols, x1), min(rows, y1))
                if b[2] > b[0] and b[3] > b[1]:
                    out.append(b)
    return out


def _unturn(q: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Points (x, y) found on ``np.rot90(view, k)`` as points of ``view`` (shape rows, columns)."""
    rows, cols = shape[:2]
    q = q.copy()
    for step in range(k % 4, 0, -1):
        # q lies on rot90(view, step); undo one counter-clockwise quarter turn onto rot90(view, step - 1)
        prev_cols = cols if (step - 1) % 2 == 0 else rows
        x, y = q[:, 0].copy(), q[:, 1].copy()
        q[:, 0], q[:, 1] = prev_cols - y, x
    return q


def _ascii_alnum(text: str) -> str:
    """The ASCII letters and digits of ``text``, in order."""
    return "".join(ch for ch in text if ch.isascii() and ch.isalnum())


def orientations(height: int, width: int) -> tuple[int, ...]:
    """Quarter turns (``np.rot90`` k) worth reading for a region of this shape.

    A line of text is much longer than tall: a wide region holds text at 0 or
    180 degrees, a tall one at 90 or 270; a squarish one (a short word, a
    single character) is read in all four.
    """
    if width >= 1.5 * height:
        return (0, 2)
    if height >= 1.5 * width:
        return (1, 3)
    return (0, 1, 2, 3)


#: Recogniser reads remembered (a crop's digest -> (text, score)), least recently used
#: forgotten first: the overlay of a cine or of a series repeats the same crops in every
#: frame and file (86 % of the crops of a 120-frame echo cine).
_READS: OrderedDict = OrderedDict()
_READS_MAX = 4096


def pixels_key(arr: np.ndarray) -> tuple:
    """A key equal for two arrays exactly when their pixels are (shape, dtype and a
    BLAKE2b digest of their bytes): what a reader reads again needs no second read."""
    return arr.shape, arr.dtype.str, hashlib.blake2b(np.ascontiguousarray(arr).tobytes(), digest_size=20).digest()


def recognise(crops: list[np.ndarray]) -> list[tuple[str, float]]:
    """RapidOCR's recogniser on each crop alone: ``(text, score)`` per crop.

    Each crop is read in a batch of its own, so its read depends on its pixels only (in
    a batch, crops are padded to the widest and their scores move by a few hundredths
    with their neighbours); a crop read before (same shape, same bytes: a BLAKE2b digest)
    is not read again.
    """
    eng = _engine()
    out = []
    for c in crops:
        key = pixels_key(c)
        hit = _READS.get(key)
        if hit is None:
            results, _ = eng.text_rec([c])
            hit = _READS[key] = (results[0][0], float(results[0][1]))
            if len(_READS) > _READS_MAX:
                _READS.popitem(last=False)
        else:
            _READS.move_to_end(key)
        out.append(hit)
    return out


def read_regions(gray: np.ndarray, boxes: list[Box], frame_index: int = 0, *,
                 min_score: float = MIN_SCORE) -> list[Word]:
    """Read each region with the RapidOCR recogniser in the orientations its shape allows (:func:`orientations`).

    Returns
    -------
    list of Word
        One word per (region, orientation) read with score >= ``min_score``
        and at least one ASCII letter or digit; ``conf`` is the score x 100;
        the box is the region (not the read text's own extent).
    """
    if not boxes:
        return []
    rows, cols = gray.shape
    crops, meta = [], []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        c = gray[max(0, y0 - READ_PAD):min(rows, y1 + READ_PAD), max(0, x0 - READ_PAD):min(cols, x1 + READ_PAD)]
        if c.size == 0:
            continue
        if c.shape[0] < 24:  # the recogniser works on 48-pixel lines
            f = int(np.ceil(24 / c.shape[0]))
            c = np.kron(c, np.ones((f, f), dtype=np.uint8))
        for rot in orientations(y1 - y0, x1 - x0):
            crops.append(_rgb(np.rot90(c, rot)))
            meta.append((i, rot))
    words: list[Word] = []
    for (i, rot), (text, score) in zip(meta, recognise(crops)):
        text = (text or "").strip()
        x0, y0, x1, y1 = boxes[i]
        need = max(min_score, MIN_SCORE_TALL) if (y1 - y0) >= 1.5 * (x1 - x0) else min_score
        if score >= need and _ascii_alnum(text):
            # one Word per token, all with the region's box and one line key: the
            # verifier tests tokens and the joined line alike
            for tok in text.split():
                words.append(Word(tok, float(score) * 100.0, x0, y0, x1, y1, frame_index, ("rapidocr", i, rot, 0)))
    return words


def region_words(frame: np.ndarray, photometric: str = "MONOCHROME2", frame_index: int = 0, *,
                 scale: int | None = None, contrast: bool = True, max_line: int | None = None,
                 turns: tuple[int, ...] = (0, 1)) -> list[Word]:
    """Detect then read: the second reader's words of one frame.

    Parameters
    ----------
    frame : ndarray, shape (rows, columns) or (rows, columns, samples)
        Stored pixel values.
    contrast : bool
        Also detect and read on the local-contrast view (low-contrast text).
    max_line : int, optional
        Regions larger than this many frame pixels on both sides are not read
        (screening: a line of 8-40 pixel text is at most about 50 pixels
        across its short side; on brain slices the detector returns squarish
        blobs of anatomy whose reading cost 130 ms each and found nothing).
    turns : tuple of int
        Views the detector sees (:func:`detect_regions`).
    """
    from .ocr import to_gray8

    gray = to_gray8(frame, photometric)
    if scale is None:
        scale = detect_scale(*gray.shape)
    values = luminance(frame) if contrast else None
    def found(img):
        boxes = detect_regions(img, scale=scale, turns=turns)
        if max_line:
            boxes = [b for b in boxes if min(b[2] - b[0], b[3] - b[1]) <= max_line]
        return boxes

    words = read_regions(gray, found(gray), frame_index)
    if contrast:
        # low-contrast text is readable only in the contrast view
        cv = contrast_inverted(values)
        words += [Word(w.text, w.conf, w.x0, w.y0, w.x1, w.y1, w.frame, ("rapidocr", 1000 + w.line[1]) + w.line[2:])
                  for w in read_regions(cv, found(cv), frame_index,
                                        min_score=MIN_SCORE_CONTRAST)]
    return words


def text_regions(words: list[Word], min_alnum: int = 3, min_score: float = MIN_REGION_SCORE) -> list[Box]:
    """Regions whose best read (over orientations) holds at least ``min_alnum`` ASCII letters/digits.

    These are the second reader's boxes to redact. Three, not two: on the
    real CT localizer, after the name was masked, the local-contrast view of
    the anatomy read as "40" and "10" (scores 0.64, 0.94); two-character
    tokens (orientation letters, numbers) do not identify anybody on their
    own, and the verifier still judges every read. A read counts only with
    score >= ``min_score`` (x 100 in ``Word.conf``) and when it is not made of
    blob glyphs alone (:data:`BLOB_GLYPHS`).
    """
    reads: dict[tuple, list[Word]] = {}
    boxes: dict[tuple, Box] = {}
    for w in words:
        if w.line and w.line[0] == "rapidocr":
            reads.setdefault((w.frame, w.line[1], w.line[2]), []).append(w)
            boxes[(w.frame, w.line[1])] = w.box
    best: dict[tuple, int] = {}
    for (f, i, _), ws in reads.items():
        alnum = _ascii_alnum("".join(w.text for w in ws))
        if ws[0].conf < min_score * 100.0 or set(alnum) <= BLOB_GLYPHS:
            continue
        best[(f, i)] = max(best.get((f, i), 0), len(alnum))
    return [boxes[k] for k, n in best.items() if n >= min_alnum]
