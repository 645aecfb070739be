"""Planted-text corpus: identifying text drawn onto real image backgrounds (issue 19).

Each :class:`Sample` is stored pixel values (frames, rows, columns, samples)
with the identifying tokens planted in it (names, IDs, dates in several
spellings, free text), drawn with a font (PIL's default and DejaVu TTFs from
Debian or the opencv wheel), a size (8-40 px), a contrast (full, or 10 stored
values above the local background), an orientation (0/90/180/270 degrees) and
a position; multi-frame samples carry the text on one frame only. Controls
are the same backgrounds without text, plus the RGB PET control of shared data.

Backgrounds (real, from ``../shared/data``; licences in its PROVENANCE.md):
the TCIA CT localizer with its burned-in band masked, a GE 3D T1 slice
(dcm_qa_deident), a 12-bit slice (dcm_qa_12bit), the ultrasound JPEG below its
text band, and the PET RGB secondary capture.
"""

from __future__ import annotations

import glob
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("NEURODEID_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

NAMES = ("KOWALSKI", "Marguerite", "OKONKWO", "Lindqvist", "BRANNIGAN")
IDS = ("MRN 4839201", "PID 77310452", "ID:A9931847")
DATES = ("1947-12-25", "25.12.1947", "12/25/1947", "19471225", "25 DEC 1947", "03.09.2012")
FREE = ("St Mary Hospital", "Dr Hendricks")


@dataclass
class Sample:
    name: str
    frames: np.ndarray  # (frames, rows, columns, samples), stored values
    photometric: str
    tokens: list[str] = field(default_factory=list)  # planted identifying tokens ([] for a control)
    meta: dict = field(default_factory=dict)


def fonts() -> list[tuple[str, object]]:
    """(name, loader(size)) for PIL's default font and the DejaVu TTFs found on this machine."""
    from PIL import ImageFont

    out = [("pil-default", lambda s: ImageFont.load_default(size=s))]
    cands = sorted(glob.glob("/usr/share/fonts/truetype/dejavu/DejaVu*.ttf"))
    try:
        import cv2

        cands += sorted(glob.glob(str(Path(cv2.__file__).parent / "qt" / "fonts" / "DejaVu*.ttf")))
    except ImportError:
        pass
    seen = set()
    for path in cands:
        base = Path(path).name
        if base in seen or base not in ("DejaVuSans.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf",
                                        "DejaVuSans-Bold.ttf", "DejaVuSansCondensed.ttf"):
            continue
        seen.add(base)
        out.append((base.removesuffix(".ttf"), lambda s, p=path: ImageFont.truetype(p, s)))
    return out


def backgrounds() -> dict[str, tuple[np.ndarray, str]]:
    """Real text-free backgrounds: name -> ((rows, columns, samples) stored values, photometric)."""
    import pydicom
    from PIL import Image

    out = {}
    ct = SHARED / "dicom" / "burned_in" / "ct_burned_in_text.dcm"
    if ct.exists():
        a = pydicom.dcmread(ct).pixel_array.copy()
        a[:40, :260] = a[60:100, :260].min()  # the burned-in band masked: a clean CT localizer
        out["ct_localizer"] = (a[..., None], "MONOCHROME2")
    t1 = sorted(glob.glob(str(SHARED / "dicom" / "dcm_qa_deident" / "In" / "0*.dcm")))
    if t1:
        out["mr_t1"] = (pydicom.dcmread(t1[len(t1) // 2]).pixel_array[..., None], "MONOCHROME2")
    twelve = SHARED / "dicom" / "dcm_qa_12bit" / "In" / "12bitUnsigned.dcm"
    if twelve.exists():
        out["mr_12bit"] = (pydicom.dcmread(twelve).pixel_array[..., None], "MONOCHROME2")
    us = SHARED / "images" / "identifiable_us.jpg"
    if us.exists():
        a = np.asarray(Image.open(us).convert("L"))
        out["us"] = (a[110:, :][..., None], "MONOCHROME2")  # below the name/date band
    pet = SHARED / "dicom" / "burned_in" / "pet_rgb_no_text.dcm"
    if pet.exists():
        out["pet_rgb"] = (pydicom.dcmread(pet).pixel_array, "RGB")
    return out


def _draw(bg: np.ndarray, text: str, font, angle: int, contrast: str, rng: random.Random) -> np.ndarray:
    """bg with text drawn (stored values); ``contrast`` "full" (the frame's max) or "low" (local bg + 10)."""
    from PIL import Image, ImageDraw

    rows, cols = bg.shape[:2]
    l, t, r, b = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    tile = Image.new("L", (r - l + 4, b - t + 4), 0)
    ImageDraw.Draw(tile).text((2 - l, 2 - t), text, fill=255, font=font)
    m = np.asarray(tile.rotate(angle, expand=True)) > 127
    h, w = m.shape
    if h >= rows or w >= cols:
        raise ValueError("text does not fit")
    y, x = rng.randrange(0, rows - h), rng.randrange(0, cols - w)
    if contrast == "low":  # low contrast is meant on a flat background (10 levels over texture is noise)
        tries = [(rng.randrange(0, rows - h), rng.randrange(0, cols - w)) for _ in range(30)]
        y, x = min(tries, key=lambda p: float(bg[p[0]:p[0] + h, p[1]:p[1] + w].std()))
    out = bg.copy()
    region = out[y:y + h, x:x + w]
    if contrast == "full":
        value = np.array(bg.reshape(-1, bg.shape[2]).max(axis=0))
    else:
        value = np.median(region.reshape(-1, bg.shape[2]), axis=0) + 10
    region[m] = np.clip(value, 0, np.iinfo(bg.dtype).max).astype(bg.dtype)
    return out


def make_corpus(n: int = 24, seed: int = 19, multiframe_every: int = 6) -> tuple[list[Sample], list[Sample]]:
    """(samples with planted text, text-free controls), reproducible for a seed."""
    rng = random.Random(seed)
    bgs = backgrounds()
    fts = fonts()
    gray = [k for k in bgs if bgs[k][1] != "RGB"]
    samples = []
    for i in range(n):
        key = gray[i % len(gray)]
        bg, pi = bgs[key]
        fname, loader = fts[i % len(fts)]
        size = (8, 10, 12, 16, 24, 40)[i % 6]
        angle = (0, 90, 180, 270)[(i // 2) % 4]
        contrast = "low" if i % 5 == 4 else "full"
        kind = i % 3
        if kind == 0:
            text = f"{rng.choice(NAMES)} {rng.choice(DATES)}"
        elif kind == 1:
            text = f"{rng.choice(IDS)} DOB {rng.choice(DATES)}"
        else:
            text = f"{rng.choice(NAMES)} {rng.choice(FREE)}"
        try:
            frame = _draw(bg, text, loader(size), angle, contrast, rng)
        except ValueError:
            frame = _draw(bg, text, loader(12), angle, contrast, rng)
            size = 12
        frames = frame[None]
        if multiframe_every and i % multiframe_every == multiframe_every - 1:
            frames = np.stack([bg, frame, bg])  # text on the middle frame only
        tokens = [t for t in text.replace(":", " ").split() if sum(c.isalnum() for c in t) >= 4
                  and t.upper() not in ("DOB", "MARY", "HOSPITAL")]
        samples.append(Sample(f"{i:02d}-{key}-{fname}-{size}px-{angle}deg-{contrast}", frames, pi, tokens,
                              dict(background=key, font=fname, size=size, angle=angle, contrast=contrast,
                                   frames=int(frames.shape[0]))))
    controls = [Sample(f"control-{k}", bg[None], pi) for k, (bg, pi) in bgs.items() if k != "us"]
    controls += extra_controls()
    return samples, controls


def extra_controls(per_series: int = 4) -> list[Sample]:
    """More text-free controls: real slices of real series in shared data (MR, CT, classic and enhanced).

    ``per_series`` slices spread over each series (first and last included).
    The ultrasound image is a control only as its clean crop: the full frame
    holds real vendor text ("CRL : 20.2mm", "18fps") that is rightly boxed.
    """
    import pydicom
    from PIL import Image

    out = []
    us = SHARED / "images" / "identifiable_us.jpg"
    if us.exists():
        a = np.asarray(Image.open(us).convert("L"))
        out.append(Sample("control-us_clean", a[None, 180:660, 140:900, None], "MONOCHROME2"))
    series = {
        "ge_t1": SHARED / "dicom" / "dcm_qa_deident" / "In",
        "xa30": SHARED / "dicom" / "dcm_qa_xa30" / "In",
        "nih": SHARED / "dicom" / "dcm_qa_nih" / "In",
        "ts": SHARED / "dicom" / "dcm_qa_ts" / "In",
    }
    for key, folder in series.items():
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ""))
        by_series: dict[str, list[Path]] = {}
        for f in files:
            try:
                h = pydicom.dcmread(f, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - not DICOM
                continue
            if "PixelData" not in h and "Rows" not in h:
                continue
            by_series.setdefault(str(h.get("SeriesInstanceUID", f.parent)), []).append(f)
        for uid, fs in sorted(by_series.items())[:3]:
            fs = sorted(fs)
            picks = sorted({round(i * (len(fs) - 1) / max(1, per_series - 1)) for i in range(per_series)})
            for i in picks:
                try:
                    a = pydicom.dcmread(fs[i]).pixel_array
                except Exception:  # noqa: BLE001 - a codec this machine lacks: not a control
                    continue
                if a.ndim == 3 and a.shape[-1] != 3:
                    a = a[a.shape[0] // 2]  # a multi-frame object: its middle frame
                pi = "RGB" if a.ndim == 3 else "MONOCHROME2"
                out.append(Sample(f"control-{key}-{fs[i].name}", (a if a.ndim == 3 else a[..., None])[None], pi))
    return out


# ------------------------------------------------------------------ judging
def _compact(s: str) -> str:
    return "".join(ch for ch in s.upper() if ch.isalnum())


def reads_token(read: list[str], token: str) -> bool:
    """A token is read when a read token (or two joined) contains it or is within 1 edit per 5 letters,
    after OCR confusions (O->0, I/l->1, S->5, B->8) in digit tokens."""
    conf = str.maketrans("OILSB", "01158")
    t = _compact(token)
    digits = sum(c.isdigit() for c in t) >= 2
    if digits:
        t = t.translate(conf)
    reads = [_compact(r) for r in read]
    reads += [a + b for a, b in zip(reads, reads[1:])]
    for r in reads:
        if digits:
            r = r.translate(conf)
        if len(r) < 3:
            continue
        if t in r:
            return True
        if len(r) == len(t) and sum(a != b for a, b in zip(r, t)) <= max(1, len(t) // 5):
            return True
    return False


def judge_read(frame: np.ndarray, photometric: str) -> list[str]:
    """Both judges on one frame: Tesseract (2 scales, 2 psm, plain and binarised) and RapidOCR at its
    defaults, on the frame, its inversions and the local-contrast view, in 4 orientations."""
    import pytesseract
    from PIL import Image, ImageOps
    from rapidocr_onnxruntime import RapidOCR

    from neurodeid.redact.detect import contrast_inverted, luminance
    from neurodeid.redact.ocr import to_gray8

    global _RAPID
    if "_RAPID" not in globals():
        _RAPID = RapidOCR()
    g = to_gray8(frame, photometric)
    views = [g, contrast_inverted(luminance(frame))]
    out: list[str] = []
    for v in views:
        for k in range(4):
            r = np.ascontiguousarray(np.rot90(v, k))
            res, _ = _RAPID(np.repeat(r[:, :, None], 3, axis=2))
            out += [t for x in (res or []) for t in x[1].split()]
            img = ImageOps.expand(Image.fromarray(r).resize((r.shape[1] * 2, r.shape[0] * 2)), 20, fill=int(np.median(r)))
            out += pytesseract.image_to_string(img, config="--psm 11").split()
    return out
