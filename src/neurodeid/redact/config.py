"""Redaction settings and region rules, as data.

A :class:`RedactionConfig` holds every choice that changes the redacted pixels
(method, fill, blur sigma, margin, crop policy, OCR settings, verification
rules). Region rules (:class:`RegionRule`) say where a given device burns text:
they match on Manufacturer, ManufacturerModelName, Rows and Columns and list
rectangles. Defaults live in ``neurodeid/data/redact_rules.json`` and
``neurodeid/data/redact_verify.json``; the workflow config may add rules.

Coordinates
-----------
A rectangle or box is ``(x0, y0, x1, y1)`` in pixel indices of the stored
image: ``x`` is the column (left to right), ``y`` the row (top to bottom),
origin at the top-left pixel, ``x1``/``y1`` exclusive. Not millimetres.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import RedactionConfigError

METHODS = ("mask", "blur", "crop")
MATCH_KEYS = ("Manufacturer", "ManufacturerModelName", "Rows", "Columns", "Modality")


def load_data_json(name: str) -> dict:
    """Return a JSON file of ``neurodeid/data`` as a dict."""
    text = resources.files("neurodeid").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class RegionRule:
    """Rectangles known to carry burned-in text on one kind of image.

    Attributes
    ----------
    name : str
        Short label reported in results (must not identify anyone).
    match : dict
        Header values to match. Strings are case-insensitive full-match regular
        expressions (``Manufacturer``, ``ManufacturerModelName``, ``Modality``);
        ``Rows``/``Columns`` are integers. A plain image (JPEG/PNG) has only
        Rows and Columns. Every key must match.
    rectangles : tuple of (x0, y0, x1, y1)
        Pixel indices (column, row), end-exclusive; ``None`` for ``x1``/``y1``
        means the image edge.
    method : {"mask", "blur", "crop"} or None
        Method for these rectangles and for the OCR boxes of a matching image;
        None means :attr:`RedactionConfig.method`.
    sigma : float or None
        Blur sigma in pixels for this rule (None: the config's).
    reason : str
        Why the rule exists (reviewable).
    """

    name: str
    match: Mapping[str, Any]
    rectangles: tuple[tuple[int, int, int | None, int | None], ...] = ()
    method: str | None = None
    sigma: float | None = None
    reason: str = ""

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> "RegionRule":
        """Build a rule from a dict (one entry of a rules JSON/YAML list)."""
        try:
            name = str(d["name"])
        except KeyError:
            raise RedactionConfigError(f"region rule {dict(d)!r} has no 'name'; give every rule a name")
        match = dict(d.get("match", {}))
        unknown = set(match) - set(MATCH_KEYS)
        if unknown:
            raise RedactionConfigError(
                f"region rule {name!r}: unknown match key(s) {sorted(unknown)}; allowed: {MATCH_KEYS}"
            )
        for key in ("Rows", "Columns"):
            if key in match and not isinstance(match[key], int):
                raise RedactionConfigError(f"region rule {name!r}: match {key} must be an integer, got {match[key]!r}")
        for key in ("Manufacturer", "ManufacturerModelName", "Modality"):
            if key in match:
                try:
                    re.compile(str(match[key]))
                except re.error as exc:
                    raise RedactionConfigError(f"region rule {name!r}: match {key} {match[key]!r} is not a valid regex: {exc}")
        rects = []
        for r in d.get("rectangles", []):
            if len(r) != 4:
                raise RedactionConfigError(f"region rule {name!r}: rectangle {r!r} must be [x0, y0, x1, y1]")
            x0, y0, x1, y1 = r
            if x0 is None or y0 is None or int(x0) < 0 or int(y0) < 0:
                raise RedactionConfigError(f"region rule {name!r}: rectangle {r!r} needs x0, y0 >= 0")
            rects.append((int(x0), int(y0), None if x1 is None else int(x1), None if y1 is None else int(y1)))
        method = d.get("method")
        if method is not None and method not in METHODS:
            raise RedactionConfigError(f"region rule {name!r}: method {method!r} is not one of {METHODS}")
        sigma = d.get("sigma")
        return cls(name=name, match=match, rectangles=tuple(rects), method=method,
                   sigma=None if sigma is None else float(sigma), reason=str(d.get("reason", "")))

    def matches(self, header: Mapping[str, Any]) -> bool:
        """True when every match key equals the image's value.

        ``header`` maps the match keys to the image's values (missing keys are
        None, which never matches).
        """
        for key, want in self.match.items():
            have = header.get(key)
            if have is None:
                return False
            if key in ("Rows", "Columns"):
                if int(have) != int(want):
                    return False
            elif not re.fullmatch(str(want), str(have).strip(), flags=re.IGNORECASE):
                return False
        return True

    def boxes(self, rows: int, columns: int) -> list[tuple[int, int, int, int]]:
        """Rectangles resolved for an image of ``rows`` x ``columns`` (clipped)."""
        out = []
        for x0, y0, x1, y1 in self.rectangles:
            x1 = columns if x1 is None else min(x1, columns)
            y1 = rows if y1 is None else min(y1, rows)
            if x1 > x0 and y1 > y0:
                out.append((x0, y0, x1, y1))
        return out


@dataclass(frozen=True)
class RedactionConfig:
    """Every setting that changes redacted pixels or the verdict.

    Attributes
    ----------
    method : {"mask", "blur", "crop"}
        Method for OCR boxes (and rule rectangles without their own method).
        ``mask`` fills with :attr:`fill`; ``blur`` replaces the box with a
        Gaussian-blurred copy (sigma :attr:`sigma` pixels; blur is weaker than
        mask: it relies on the verification OCR); ``crop`` cuts the image at
        the nearest edge past each box (geometry tags updated).
    fill : "black", "white" or number
        Mask fill. "black"/"white" are display black/white (minimum/maximum of
        the image, swapped for MONOCHROME1); a number is a stored pixel value
        (all samples).
    sigma : float
        Gaussian sigma in pixels for ``blur``.
    margin : int
        Pixels added on every side of each OCR box before redaction.
    crop_resize : bool
        After ``crop``, resample back to the original Rows x Columns (bilinear).
        This changes every pixel value and the pixel aspect ratio; PixelSpacing
        and ultrasound physical deltas are rescaled to stay true.
    crop_min_keep : float
        A crop may not keep less than this fraction of the image area.
    crop_max_cut : float
        A box is cropped off only when the cut it needs from its nearest edge
        is at most this fraction of the image height (top/bottom) or width
        (left/right): crop removes bands along the edges. Other boxes are
        masked (method reported as ``crop+mask``).
    us_blank_outside_regions : bool
        Ultrasound: fill everything outside the union of
        SequenceOfUltrasoundRegions rectangles (always with ``mask``).
    rules : tuple of RegionRule
        Region rules; the first matching rule applies.
    ocr : bool
        Redact every text box OCR reads. When False only region rules (and
        the ultrasound option) redact; the verification OCR still runs, and
        what it flags (needles, dates, names) is still boxed and redacted in a
        further pass.
    ocr_lang, ocr_psm, ocr_scale : str, int, int
        Tesseract language, page segmentation mode (11: sparse text anywhere)
        and the integer upscaling applied before OCR (0: automatic, 2 for
        images under 800 pixels on the short side, else 1).
    ocr_renderings : tuple of str
        ``gray`` (min-max scaled luminance) and/or ``bright`` (pixels >= 200 of
        255 in the brightest channel, inverted to dark-on-light).
    ocr_min_conf : float
        Confidence (0-100) a word of 3+ characters needs to seed a box
        (shorter words need more, see :func:`.ocr.text_boxes`).
    ocr_min_height : int
        Height in pixels a word needs to seed a box (speckle is read as tiny
        words).
    ocr_grow_gap : float
        A weaker word on the same text line joins a seed when the gap is at
        most this many text heights; joined words are merged into line boxes.
    ocr_threads : int
        Parallel tesseract processes (each limited to one OpenMP thread).
    max_passes : int
        Detection passes: after each, the redacted image is OCR'd again and
        anything still read (text, needles, dates, names) is redacted; the
        final OCR is the verification.
    detector : bool
        Second reader (:mod:`.detect`, RapidOCR): a text detector finds
        regions on every frame and on a local-contrast view, each region is
        read in four orientations; regions read as text are redacted and the
        reads join the verification. Without the ``rapidocr-onnxruntime``
        package an image is withheld (FAIL) unless this is False.
    verify_time_like : bool
        Treat hh:mm(:ss) as identifying in verification.
    verify : dict
        Verification rules (``redact_verify.json``).
    """

    method: str = "mask"
    fill: Any = "black"
    sigma: float = 8.0
    margin: int = 4
    crop_resize: bool = False
    crop_min_keep: float = 0.5
    crop_max_cut: float = 0.2
    us_blank_outside_regions: bool = False
    rules: tuple[RegionRule, ...] = ()
    ocr: bool = True
    ocr_lang: str = "eng"
    ocr_psm: int = 11
    ocr_scale: int = 0
    ocr_renderings: tuple[str, ...] = ("gray", "bright")
    ocr_min_conf: float = 60.0
    ocr_min_height: int = 7
    ocr_grow_gap: float = 1.5
    ocr_threads: int = 1
    max_passes: int = 3
    detector: bool = True
    verify_time_like: bool = True
    verify: Mapping[str, Any] = field(default_factory=lambda: load_data_json("redact_verify.json"))

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise RedactionConfigError(f"redaction method {self.method!r} is not one of {METHODS}")
        if not (isinstance(self.fill, (int, float)) or self.fill in ("black", "white")):
            raise RedactionConfigError(f"redaction fill {self.fill!r} must be 'black', 'white' or a number")
        if self.sigma <= 0:
            raise RedactionConfigError(f"redaction sigma {self.sigma!r} must be > 0 (pixels)")
        if self.margin < 0:
            raise RedactionConfigError(f"redaction margin {self.margin!r} must be >= 0 (pixels)")
        if not 0 < self.crop_min_keep <= 1:
            raise RedactionConfigError(f"crop_min_keep {self.crop_min_keep!r} must be in (0, 1]")
        bad = set(self.ocr_renderings) - {"gray", "bright"}
        if bad or not self.ocr_renderings:
            raise RedactionConfigError(f"ocr_renderings {self.ocr_renderings!r}: use 'gray' and/or 'bright'")
        if not 0 < self.crop_max_cut <= 1:
            raise RedactionConfigError(f"crop_max_cut {self.crop_max_cut!r} must be in (0, 1]")
        if self.ocr_scale < 0 or self.max_passes < 1 or self.ocr_threads < 1:
            raise RedactionConfigError("ocr_scale must be >= 0 (0: automatic); max_passes and ocr_threads >= 1")

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | None = None, *, default_rules: bool = True) -> "RedactionConfig":
        """Build a config from a dict (the ``redaction:`` section of the workflow config).

        Keys are the attribute names. ``rules`` is a list of rule dicts;
        ``rules_file`` names a JSON file shaped like ``redact_rules.json`` whose
        rules come after the inline ones; the packaged default rules come last
        unless ``default_rules`` is False.
        """
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        rules = [RegionRule.from_mapping(r) for r in d.pop("rules", []) or []]
        rules_file = d.pop("rules_file", None)
        if rules_file:
            rules += load_rules(rules_file)
        if default_rules:
            rules += load_rules(None)
        unknown = set(d) - names
        if unknown:
            raise RedactionConfigError(f"unknown redaction setting(s) {sorted(unknown)}; known: {sorted(names)}")
        if "ocr_renderings" in d:
            d["ocr_renderings"] = tuple(d["ocr_renderings"])
        return cls(rules=tuple(rules), **d)

    def rule_for(self, header: Mapping[str, Any]) -> RegionRule | None:
        """The first rule matching ``header``, or None."""
        for rule in self.rules:
            if rule.matches(header):
                return rule
        return None

    def as_params(self) -> dict:
        """Settings as plain JSON-able data (for Snakemake ``params:``)."""
        d = dataclasses.asdict(self)
        d.pop("verify")
        return json.loads(json.dumps(d, default=str))


def load_rules(path: str | Path | None) -> list[RegionRule]:
    """Read region rules from a JSON file (None: the packaged defaults)."""
    if path is None:
        data = load_data_json("redact_rules.json")
        where = "neurodeid/data/redact_rules.json"
    else:
        where = str(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RedactionConfigError(f"cannot read region rules {where}: {exc}; give a JSON file shaped like redact_rules.json")
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RedactionConfigError(f"region rules {where}: expected an object with a 'rules' list")
    return [RegionRule.from_mapping(r) for r in data["rules"]]


def header_values(ds_or_size: Any) -> dict:
    """Match keys of a pydicom Dataset, or of a plain image given as (rows, columns)."""
    if isinstance(ds_or_size, Sequence) and len(ds_or_size) == 2:
        return {"Rows": int(ds_or_size[0]), "Columns": int(ds_or_size[1])}
    ds = ds_or_size
    return {k: ds.get(k) for k in MATCH_KEYS}
