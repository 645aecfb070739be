"""The redaction engine on pixel arrays: rules, OCR passes, verification.

:func:`redact_frames` takes stored pixel values and returns redacted ones with
a result record. It does no file I/O and knows nothing of DICOM beyond the
photometric interpretation and the header values rules match on.

Multi-frame images: every frame is read by OCR and the boxes of all frames are
applied to all frames (union of boxes). Burned-in text of a cine is usually
static, and a box read in one frame but missed by OCR in another is then still
removed everywhere. Verification reads every output frame again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from ..results import Check
from .config import RedactionConfig
from .methods import (apply_blur, apply_mask, boxes_mask, crop_window, fill_value, pad_box,
                      resize_frames)
from .detect import detector_available, pixels_key, region_words, text_regions
from .errors import OCRUnavailableError
from .ocr import auto_scale, ocr_frames, tesseract_version, text_boxes
from .verify import Finding, Verifier

Box = tuple[int, int, int, int]


@dataclass
class Redaction:
    """What :func:`redact_frames` did, for writers and the QC picture.

    All boxes are in pixel indices (column, row; end-exclusive) of the INPUT
    image. ``window`` is the kept (r0, r1, c0, c1) of a crop, else None;
    ``resized`` says whether the crop was resampled back to the input size.
    """

    result: dict
    rule_boxes: list[Box] = field(default_factory=list)
    ocr_boxes: list[Box] = field(default_factory=list)
    leftover: list[Box] = field(default_factory=list)
    us_keep: list[Box] = field(default_factory=list)
    window: tuple[int, int, int, int] | None = None
    resized: bool = False
    qc_frame: int = 0
    findings: list[Finding] = field(default_factory=list)


def _inside(b: Box, boxes: Sequence[Box]) -> bool:
    return any(b[0] >= a[0] and b[1] >= a[1] and b[2] <= a[2] and b[3] <= a[3] for a in boxes)


def _shift(b: Box, dx: int, dy: int) -> Box:
    return (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)


def _pixels_changed(before: np.ndarray, after: np.ndarray, window) -> int:
    if before.shape == after.shape:
        return int(np.any(before != after, axis=-1).sum())
    r0, r1, c0, c1 = window
    kept = before[:, r0:r1, c0:c1, :]
    f, rows, cols = before.shape[:3]
    removed = f * (rows * cols - (r1 - r0) * (c1 - c0))
    return removed + int(np.any(kept != after, axis=-1).sum())


def redact_frames(
    frames: np.ndarray,
    photometric: str,
    cfg: RedactionConfig,
    needles: Sequence[str] | Mapping[str, str] | None = None,
    *,
    header: Mapping | None = None,
    us_regions: Sequence[Box] | None = None,
) -> tuple[np.ndarray, Redaction]:
    """Find and remove burned-in text; verify by OCR.

    Parameters
    ----------
    frames : ndarray, shape (frames, rows, columns, samples)
        Stored pixel values, rows top to bottom, columns left to right;
        samples 1 (grayscale) or 3 (RGB, interleaved).
    photometric : str
        MONOCHROME1, MONOCHROME2 or RGB.
    cfg : RedactionConfig
    needles : list of str or dict label -> value
        The subject's identifying strings, used only to judge the
        verification OCR; never stored in the result.
    header : dict
        Values for region-rule matching (Manufacturer, ManufacturerModelName,
        Modality, Rows, Columns).
    us_regions : list of Box
        Ultrasound region rectangles (input pixel indices, end-exclusive), used
        when ``cfg.us_blank_outside_regions``.

    Returns
    -------
    out : ndarray, shape (frames, rows', columns', samples)
        Redacted pixels, same dtype (rows'/columns' differ only after a crop
        without resize).
    Redaction
        The result record (``.result``) and the boxes.
    """
    if frames.ndim != 4:
        raise ValueError(f"frames must be (frames, rows, columns, samples), got shape {frames.shape}")
    nf, rows, cols, _ = frames.shape
    header = dict(header or {})
    header.setdefault("Rows", rows)
    header.setdefault("Columns", cols)
    rule = cfg.rule_for(header)
    method = (rule.method if rule and rule.method else cfg.method)
    sigma = (rule.sigma if rule and rule.sigma else cfg.sigma)
    rule_boxes = rule.boxes(rows, cols) if rule else []
    fillv = fill_value(frames, cfg.fill, photometric)
    verifier = Verifier(cfg.verify, needles, cfg.verify_time_like)
    reasons: list[str] = []

    pre_mask = None
    us_keep: list[Box] = []
    if cfg.us_blank_outside_regions and us_regions:
        us_keep = [(max(0, x0), max(0, y0), min(cols, x1), min(rows, y1)) for x0, y0, x1, y1 in us_regions]
        us_keep = [b for b in us_keep if b[2] > b[0] and b[3] > b[1]]
        if us_keep:
            pre_mask = ~boxes_mask(us_keep, rows, cols)
        else:
            reasons.append("no ultrasound region lies inside the image: nothing blanked outside regions")

    def render(boxes: list[Box]):
        out = frames if pre_mask is None else apply_mask(frames, pre_mask, fillv)
        if method == "crop":
            window, leftover = crop_window(boxes, rows, cols, cfg.crop_min_keep, cfg.crop_max_cut)
            if leftover:
                out = apply_mask(out, boxes_mask(leftover, rows, cols), fillv)
            r0, r1, c0, c1 = window
            return out[:, r0:r1, c0:c1, :], window, leftover
        m = boxes_mask(boxes, rows, cols)
        if method == "mask":
            out = apply_mask(out, m, fillv)
        else:
            out = apply_blur(out, m, sigma)
        return out, None, []

    ocr_kw = dict(renderings_=cfg.ocr_renderings, scale=cfg.ocr_scale, lang=cfg.ocr_lang,
                  psm=cfg.ocr_psm, threads=cfg.ocr_threads)
    if cfg.detector:
        ok, why = detector_available()
        if not ok:
            raise OCRUnavailableError(f"cannot run the second reader: {why} (or set redact.detector: false)")

    def read(arr: np.ndarray) -> list[list]:
        """Both readers on every frame: Tesseract on whole frames, RapidOCR on detected
        regions. A frame equal to an earlier one (a cine's repeated or frozen frames) is
        read once: its words are the earlier frame's, with its own frame number."""
        first = first_of_equal_frames(arr)
        unique = sorted(set(first))
        # no copy when every frame is new (a long multi-frame image is large)
        read_u = ocr_frames(arr if len(unique) == arr.shape[0] else arr[unique], photometric, **ocr_kw)
        words_of = {}
        for u, f in enumerate(unique):
            words = [replace(w, frame=f) for w in read_u[u]]
            if cfg.detector:
                fr = arr[f, :, :, 0] if arr.shape[3] == 1 else arr[f]
                words += region_words(fr, photometric, f)
            words_of[f] = words
        return [words_of[f] if first[f] == f else [replace(w, frame=f) for w in words_of[first[f]]]
                for f in range(arr.shape[0])]
    ocr_boxes: list[Box] = []
    qc_frame = 0
    passes = 0
    while True:
        out, window, leftover = render(rule_boxes + ocr_boxes)
        words = read(out)
        passes += 1
        if passes == 1:
            counts = [len(w) for w in words]
            qc_frame = int(np.argmax(counts)) if counts else 0
        findings = verifier.findings(words)
        if passes > cfg.max_passes:
            break
        dx, dy = (window[2], window[0]) if window else (0, 0)
        rr, cc = out.shape[1:3]
        new: list[Box] = []
        if cfg.ocr:
            for fw in words:
                tess = [w for w in fw if not (w.line and w.line[0] == "rapidocr")]
                confirm = [w.box for w in fw if w.line and w.line[0] == "rapidocr"] if cfg.detector else None
                for b in text_boxes(tess, cfg.ocr_min_conf, cfg.ocr_grow_gap, cfg.ocr_min_height, confirm=confirm):
                    new.append(_shift(pad_box(b, cfg.margin, rr, cc), dx, dy))
                for b in text_regions(fw):
                    new.append(_shift(pad_box(b, cfg.margin, rr, cc), dx, dy))
        for fd in findings:
            new.append(_shift(pad_box(fd.box, cfg.margin, rr, cc), dx, dy))
        existing = rule_boxes + ocr_boxes
        fresh: list[Box] = []
        for b in new:
            if not _inside(b, existing + fresh):
                fresh.append(b)
        if not fresh:
            break
        ocr_boxes += fresh

    resized = False
    if method == "crop" and window is not None and (window[1] - window[0], window[3] - window[2]) != (rows, cols):
        if cfg.crop_resize:
            out = resize_frames(out, rows, cols)
            resized = True
            findings = verifier.findings(read(out))
            passes += 1
    used = method
    if method == "crop" and leftover:
        used = "crop+mask"
    reasons += [f.reason() for f in _dedupe(findings)]
    status = Check.FAIL if findings else Check.PASS
    result = {
        "status": status,
        "method": used,
        "boxes": len(rule_boxes) + len(ocr_boxes),
        "rule_boxes": len(rule_boxes),
        "ocr_boxes": len(ocr_boxes),
        "rule": rule.name if rule else None,
        "frames": int(nf),
        "pixels_changed": _pixels_changed(frames, out, window),
        "shape_in": [int(nf), int(rows), int(cols)],
        "shape_out": [int(x) for x in out.shape[:3]],
        "crop": list(window) if window and method == "crop" else None,
        "crop_resized": resized,
        "us_blanked_outside_regions": bool(pre_mask is not None),
        "box_scope": "union of all frames",
        "ocr_passes": passes,
        "ocr": f"{tesseract_version()} lang={cfg.ocr_lang} psm={cfg.ocr_psm} "
               f"scale={cfg.ocr_scale or auto_scale(rows, cols)} "
               f"renderings={','.join(cfg.ocr_renderings)}"
               + ("; rapidocr PP-OCRv4 regions, 4 orientations, local-contrast view" if cfg.detector else ""),
        "reasons": reasons,
    }
    return out, Redaction(result=result, rule_boxes=rule_boxes, ocr_boxes=ocr_boxes, leftover=leftover,
                          us_keep=us_keep, window=window if method == "crop" else None, resized=resized,
                          qc_frame=qc_frame, findings=findings)


def first_of_equal_frames(frames: np.ndarray) -> list[int]:
    """For each frame, the index of the first frame with the same pixels (itself when it
    is the first): frames compared by :func:`.detect.pixels_key`."""
    seen: dict[tuple, int] = {}
    return [seen.setdefault(pixels_key(frames[f]), f) for f in range(frames.shape[0])]


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen, out = set(), []
    for f in findings:
        key = (f.kind, f.label, f.frame)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
