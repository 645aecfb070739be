"""One de-identified series through the text stage: every pixel object is read before release.

Two modes, chosen by the release plan (:func:`neurodeid.plan.text_mode`):

``read``
    2D series (localizers, scouts, screen saves, secondary captures,
    ultrasound, anything not converted as a volume), of any modality: every
    image and every frame is read by both readers, redacted and re-read
    (:func:`.files.redact_dicom_file`). An image that still shows something
    identifying, or cannot be decoded, is not written (withheld with its
    reason); the others are.
``screen``
    Slices of 3D volumes (converted series): the detector screens every
    slice/frame; the first, middle and last slices and every slice whose
    ImageType holds DERIVED or SECONDARY are read carefully (both readers,
    local-contrast view). Nothing found: every file is passed on unchanged
    (hard link, else copy). Text found anywhere: the whole series is read and
    redacted as in ``read``; if any slice still fails, NO slice is written and
    the series is withheld (a volume with a missing slice would mislead), with
    the reason.

With ``face_screen`` (a series released as DICOM that is not converted), a ``read``
series' pixels are also searched for a face (:mod:`neurodeid.deface.screen`): a face
withholds the whole series.

Outputs: the folder of files that may go on (conversion and the release read
it, never the de-identified folder directly), one JSON result (``status``
PASS/FAIL, ``mode``, per-file rows), per-image QC pictures and one series QC
picture (private: they show the original pixels).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from ..failure import failure_reason
from ..results import Check, StageResult, write_stage_result
from .config import RedactionConfig
from .detect import SCREEN_MAX_LINE, detect_scale, region_words, text_regions
from .errors import RedactionError
from .verify import Verifier

MODES = ("read", "screen")


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def careful_indices(n: int, derived: Sequence[bool] = ()) -> list[int]:
    """Slices read carefully in a volume of ``n``: first, middle, last, and every DERIVED/SECONDARY one."""
    if n <= 0:
        return []
    idx = {0, n // 2, n - 1} | {i for i, d in enumerate(derived) if d}
    return sorted(i for i in idx if 0 <= i < n)


def _is_derived(ds) -> bool:
    values = ds.get("ImageType") or []
    if isinstance(values, str):
        values = values.split("\\")
    return any(str(v).strip().upper() in ("DERIVED", "SECONDARY") for v in values)


def screen_frames(frames: np.ndarray, photometric: str, cfg: RedactionConfig, verifier: Verifier,
                  careful: Sequence[int] = ()) -> list[str]:
    """Screen frames for text; return what was found (kinds and frame numbers, never the text).

    Parameters
    ----------
    frames : ndarray, shape (frames, rows, columns, samples)
        Stored values.
    careful : sequence of int
        Frames also read by Tesseract and on the local-contrast view.

    Returns
    -------
    list of str
        One reason per frame where text was found; empty when none.
    """
    from .ocr import ocr_frames

    found = []
    for f in range(frames.shape[0]):
        fr = frames[f, :, :, 0] if frames.shape[3] == 1 else frames[f]
        deep = f in careful
        # screening: detector at native size; careful: upscaled and the contrast view too
        scale = detect_scale(*fr.shape[:2]) if deep else 1
        words = region_words(fr, photometric, f, scale=scale, contrast=deep,
                             max_line=None if deep else SCREEN_MAX_LINE, turns=(0, 1) if deep else (0,))
        if deep:
            tw = ocr_frames(frames[f:f + 1], photometric, renderings_=cfg.ocr_renderings, scale=cfg.ocr_scale,
                            lang=cfg.ocr_lang, psm=cfg.ocr_psm, threads=cfg.ocr_threads)[0]
            # Tesseract's words count through the verifier only: on tiny or noisy
            # slices (the example's 16x16 CT) it reads speckle as short words
            words = list(words) + list(tw)
        if text_regions(words):
            found.append(f"frame {f}: the detector finds text")
        kinds = sorted({fd.kind for fd in verifier.findings([words])})
        if kinds:
            found.append(f"frame {f}: {', '.join(kinds)}-like text")
    return found


def run_series(dicom_dir, out_dir, result_path, cfg: RedactionConfig, needles=None, *, mode: str = "read",
               qc_dir=None, qc_png=None, face_screen: bool = False) -> StageResult:
    """Read every image of one series for burned-in text; write what may go on.

    Parameters
    ----------
    dicom_dir : path
        The de-identified series (``*.dcm``); read only.
    out_dir : path
        Receives the files that may go on (see the module docstring).
    result_path : path
        JSON result (:func:`neurodeid.results.write_stage_result`): ``{"status", "mode",
        "reason", "files": [{"file", "status", "reasons", "method", "boxes",
        "pixels_changed", "frames"}], ["screened"]}``.
    cfg : RedactionConfig
    needles : see :func:`.files.redact_dicom_file`
    mode : "read" or "screen"
    qc_dir, qc_png : path, optional
        Per-image QC pictures and the series' picture (private).
    face_screen : bool
        In ``read`` mode, first look for a face in the pixels
        (:func:`neurodeid.deface.screen.screen_files`: for a series released as DICOM
        without a converted volume whose face check would decide): a face, or pixels the
        screen cannot read, and nothing is read or written, every row FAIL with the
        reason; ``measures["face_screen"]`` holds the screen's summary,
        ``qc_dir/face_screen.png`` its renders (private).

    Returns
    -------
    StageResult
        The result written to ``result_path``.
    """
    import pydicom

    from .dicom_pixels import holds_no_image, read_frames
    from .files import redact_dicom_file

    if mode not in MODES:
        raise ValueError(f"text stage mode {mode!r} is not one of {MODES}")
    src, out = Path(dicom_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.is_file():
            stale.unlink()
    qcd = Path(qc_dir) if qc_dir else None
    if qcd:
        qcd.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.iterdir() if p.suffix == ".dcm")
    reason, measures = "", {"mode": mode}

    def read_all() -> list[dict]:
        rows = []
        for f in files:
            try:
                r = redact_dicom_file(f, out / f.name, cfg, needles, qc_png=(qcd / f"{f.stem}.png") if qcd else None)
            except Exception as exc:  # noqa: BLE001 - undecodable, OCR missing, a crash: withheld, never released unread
                (out / f.name).unlink(missing_ok=True)
                r = {"status": Check.FAIL, "reasons": [failure_reason(exc, f.name)]}
            rows.append({"file": f.name, "status": r["status"], "reasons": r.get("reasons", []),
                         "method": r.get("method", ""), "boxes": r.get("boxes", 0),
                         "pixels_changed": r.get("pixels_changed", 0), "frames": r.get("frames", 0)})
            if qcd and (qcd / f"{f.stem}.png").is_file():
                rows[-1]["qc"] = [f"{f.stem}.png"]
        return rows

    face, unscreened = _face_screen(files, measures, qcd) if face_screen and mode == "read" else ("", {})
    if face:  # withheld whatever its text: not read
        reason = face
        rows = [{"file": f.name, "status": Check.FAIL, "reasons": [face], "method": "", "boxes": 0,
                 "pixels_changed": 0, "frames": 0} for f in files]
    elif mode == "read":
        rows = read_all()
        for r in rows:  # not looked at for a face: never released, whatever the text stage made of it
            if r["file"] in unscreened and r["status"] == Check.PASS:
                (out / r["file"]).unlink(missing_ok=True)
                r.update(status=Check.FAIL, reasons=[f"not screened for a face: {unscreened[r['file']]}"])
    else:
        found: list[str] = []
        verifier = Verifier(cfg.verify, needles, cfg.verify_time_like)
        try:
            heads = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
            careful = set(careful_indices(len(files), [_is_derived(h) for h in heads]))
            for i, f in enumerate(files):
                ds = pydicom.dcmread(f)
                if holds_no_image(ds):
                    continue
                frames, photometric = read_frames(ds)
                n = frames.shape[0]
                deep = careful_indices(n) if (i in careful or n > 1) else []
                found += [f"{f.name} {x}" for x in screen_frames(frames, photometric, cfg, verifier, deep)]
        except Exception as exc:  # noqa: BLE001 - anything unreadable is read image by image (default deny)
            found.append(f"could not be screened ({failure_reason(exc)})")
        if not found:
            for f in files:
                _link_or_copy(f, out / f.name)
            rows = [{"file": f.name, "status": Check.PASS, "reasons": [], "method": "screened: no text", "boxes": 0,
                     "pixels_changed": 0, "frames": 0} for f in files]
        else:
            measures["screened"] = found
            rows = read_all()
            if not all(r["status"] == Check.PASS for r in rows):
                for p in out.iterdir():
                    p.unlink()
                bad = [r["file"] for r in rows if r["status"] != Check.PASS]
                reason = (f"text found in a volume ({found[0]}) and not removable from {len(bad)} "
                                    f"slice(s) ({', '.join(bad[:3])}): the whole series is withheld")
    status = Check.PASS
    if not rows or not all(r["status"] == Check.PASS for r in rows):
        status = Check.FAIL
        if not reason:
            reason = "no image" if not rows else \
                f"{sum(r['status'] != Check.PASS for r in rows)} of {len(rows)} image(s) still show text or could not be read"
    shown = [n for n in ("face_screen.png",) if qcd and (qcd / n).is_file()]
    result = StageResult("redact", status, reason, files=rows, qc=shown, measures=measures)
    if qc_png is not None:
        _series_qc(files, qcd, qc_png)
    write_stage_result(result_path, result)
    return result


def _face_screen(files: list[Path], measures: dict, qcd: Path | None) -> tuple[str, dict]:
    """Look for a face in the series' pixels (``measures["face_screen"]``, the renders in
    ``qcd/face_screen.png``). Returns why the series is withheld (``''``: no face) and the
    files whose pixels could not be read (name: reason), which must not be released. The
    de-identified pixels are screened: redaction only blanks text, it cannot hide a face."""
    from ..deface.screen import screen_files

    try:
        screen = screen_files(files)
    except Exception as exc:  # noqa: BLE001 - no decision, no release
        measures["face_screen"] = {"face": None, "errors": [failure_reason(exc)]}
        return f"the face screen could not run ({failure_reason(exc)}): withheld", {}
    measures["face_screen"] = screen.summary()
    if qcd is not None and screen.checks:
        from PIL import Image

        from ..deface.face import detection_picture

        best = max(screen.checks, key=lambda c: c.best_score)
        Image.fromarray(detection_picture(best)).save(qcd / "face_screen.png", format="PNG")
    return screen.reason(), screen.unread


def _series_qc(files: list[Path], qcd: Path | None, qc_png) -> None:
    """The first per-image picture, else the middle slice (before = after), else a black placeholder."""
    from PIL import Image

    first = next((qcd / f"{f.stem}.png" for f in files if qcd and (qcd / f"{f.stem}.png").is_file()), None)
    if first is not None:
        shutil.copyfile(first, qc_png)
        return
    try:
        import pydicom

        from .dicom_pixels import read_frames
        from .engine import Redaction
        from .qc import qc_image

        frames, photometric = read_frames(pydicom.dcmread(files[len(files) // 2]))
        fr = frames[:1]
        img = qc_image(fr, fr, photometric, Redaction(result={}))
        k = max(1, -(-256 // max(1, min(img.size))))  # small slices (a 16x16 CT) enlarged, nearest neighbour
        if k > 1:
            img = img.resize((img.size[0] * k, img.size[1] * k), Image.NEAREST)
        img.save(qc_png, format="PNG")
    except Exception:  # no picture could be made: a black placeholder, so the report shows the gap
        Image.new("RGB", (64, 64)).save(qc_png, format="PNG")
