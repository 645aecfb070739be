"""Quasi-identifiers in de-identified DICOM: Safe Harbor ages and generalisation.

Removing names and IDs is not enough when what is kept singles a subject out.
After the PS3.15 table ran (:mod:`neurodeid.deid.engine`), :func:`generalise_dataset`
rewrites, at every sequence depth and inside the kept vendor private blocks:

- **ages** (every AS value, PatientAge included): an age of ``age_cap_years``
  (default 90, HIPAA Safe Harbor: "90 or older") or more becomes the cap
  (``090Y``); with ``age_band_years`` > 0, younger ages become the lower bound
  of their band in years (``042Y`` -> ``040Y`` for bands of 5);
- **size and weight** (PatientSize in m, PatientWeight in kg): rounded to
  ``height_step_m`` / ``weight_step_kg`` when > 0;
- ``remove``: characteristics removed entirely (``age``, ``sex``, ``height``,
  ``weight``, ``ethnic_group``);
- ``dates_to_year``: every DA becomes ``YYYY0101`` and every DT ``YYYY`` (of the
  already shifted date);
- ``drop_free_text``: the free text of kept patient characteristics
  (EthnicGroup, Allergies, ... see :data:`FREE_TEXT_TAGS`) is removed;
- vendor private items listed in ``data/quasi_private_items.tsv`` (Siemens CSA
  ``PatReinPattern``, ``UsedPatientWeight``): the same rules, field by field,
  length-preserving; with the option ``retain_patient_characteristics`` off,
  every age, sex, size and weight in them is removed, as the table removes the
  standard attributes.

A birth date is never kept by the table (PatientBirthDate is ``Z``/``X`` under
every option); fractional ages (CSA ``PatReinPattern`` gives 33.68 years) would
give it back with the study date, so ages are always written in whole years.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from neurodeid.deid.bytesmemo import memo_by_bytes
from neurodeid.values import is_number as _is_number  # one definition of "a number" for both

#: Characteristics :attr:`QuasiPolicy.remove` may name, and their standard tags.
CHARACTERISTIC_TAGS = {
    "age": (0x00101010,),  # PatientAge
    "sex": (0x00100040, 0x00102203),  # PatientSex, PatientSexNeutered
    "height": (0x00101020,),  # PatientSize (m)
    "weight": (0x00101030,),  # PatientWeight (kg)
    "ethnic_group": (0x00102160,),  # EthnicGroup
}

#: Free text kept under Retain Patient Characteristics (dropped by ``drop_free_text``):
#: EthnicGroup (SH), Allergies (LO), SpecialNeeds (LO), PatientState (LO),
#: PreMedication (LO), AdditionalPatientHistory (LT).
FREE_TEXT_TAGS = frozenset({0x00102160, 0x00102110, 0x00380050, 0x00380500, 0x00400012, 0x001021B0})

PATIENT_SIZE = 0x00101020
PATIENT_WEIGHT = 0x00101030

#: Fixed widths are kept in CSA text: a value never grows.
_AS_RE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$")
_YEARS_PER_UNIT = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


class QuasiError(ValueError):
    """A generalisation setting or a data file that cannot be used."""


@dataclass(frozen=True)
class QuasiPolicy:
    """How patient characteristics are generalised (config ``quasi``).

    Parameters
    ----------
    age_cap_years : int
        Ages of this many years or more become ``"{cap:03d}Y"`` (Safe Harbor: 90).
    age_band_years : int
        0: ages kept in their own unit; > 0: ages below the cap become the
        lower bound of their band, in years.
    height_step_m, weight_step_kg : float
        0: kept; > 0: rounded to the nearest multiple (m, kg).
    remove : frozenset of str
        Characteristics removed entirely (keys of :data:`CHARACTERISTIC_TAGS`).
    dates_to_year : bool
        Dates (already shifted) reduced to their year.
    drop_free_text : bool
        Free text of kept characteristics (:data:`FREE_TEXT_TAGS`) removed.
    """

    age_cap_years: int = 90
    age_band_years: int = 0
    height_step_m: float = 0.0
    weight_step_kg: float = 0.0
    remove: frozenset = field(default_factory=frozenset)
    dates_to_year: bool = False
    drop_free_text: bool = False

    def __post_init__(self):
        if not isinstance(self.age_cap_years, int) or not 1 <= self.age_cap_years <= 90:
            raise QuasiError(
                f"quasi.age_cap: the cap must be between 001Y and 090Y (Safe Harbor allows no higher), "
                f"got {self.age_cap_years!r} years"
            )
        if not isinstance(self.age_band_years, int) or self.age_band_years < 0:
            raise QuasiError(f"quasi.age_band_years must be a whole number >= 0, got {self.age_band_years!r}")
        for name in ("height_step_m", "weight_step_kg"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v < 0 or math.isnan(v):
                raise QuasiError(f"quasi.{name} must be a number >= 0 (0 keeps the value), got {v!r}")
        object.__setattr__(self, "remove", frozenset(self.remove))
        unknown = sorted(self.remove - set(CHARACTERISTIC_TAGS))
        if unknown:
            raise QuasiError(f"quasi.remove: unknown characteristic(s) {unknown}; known: {sorted(CHARACTERISTIC_TAGS)}")

    @classmethod
    def from_mapping(cls, cfg: dict | None) -> QuasiPolicy:
        """Build from the config section ``quasi`` (unknown keys are ignored here: the schema checks them).

        ``age_cap`` is an age string (``"090Y"``); the rest map to the fields.
        """
        cfg = dict(cfg or {})
        cap = str(cfg.get("age_cap", "090Y"))
        m = _AS_RE.match(cap)
        if not m or m.group(2) != "Y":
            raise QuasiError(f"quasi.age_cap must be an age in years like '090Y', got {cap!r}")
        return cls(
            age_cap_years=int(m.group(1)),
            age_band_years=int(cfg.get("age_band_years", 0) or 0),
            height_step_m=float(cfg.get("height_step_m", 0) or 0),
            weight_step_kg=float(cfg.get("weight_step_kg", 0) or 0),
            remove=frozenset(cfg.get("remove", ()) or ()),
            dates_to_year=bool(cfg.get("dates_to_year", False)),
            drop_free_text=bool(cfg.get("drop_free_text", False)),
        )

    def to_mapping(self) -> dict:
        """The config form (inverse of :meth:`from_mapping`)."""
        return {
            "age_cap": f"{self.age_cap_years:03d}Y",
            "age_band_years": self.age_band_years,
            "height_step_m": self.height_step_m,
            "weight_step_kg": self.weight_step_kg,
            "remove": sorted(self.remove),
            "dates_to_year": self.dates_to_year,
            "drop_free_text": self.drop_free_text,
        }

    def applied(self) -> list[str]:
        """One sentence per generalisation in force, for the report and the release README."""
        out = [f"ages of {self.age_cap_years} years or more written as {self.age_cap_years:03d}Y (Safe Harbor)"]
        if self.age_band_years:
            out.append(f"ages in bands of {self.age_band_years} years (the band's lower bound)")
        if self.height_step_m and "height" not in self.remove:
            out.append(f"height rounded to {self.height_step_m:g} m")
        if self.weight_step_kg and "weight" not in self.remove:
            out.append(f"weight rounded to {self.weight_step_kg:g} kg")
        if self.remove:
            out.append("removed: " + ", ".join(sorted(self.remove)))
        if self.dates_to_year:
            out.append("dates reduced to the year (after the date shift)")
        if self.drop_free_text:
            out.append("free text of kept patient characteristics dropped")
        return out


# --------------------------------------------------------------------------- values


def age_years(value: str) -> float | None:
    """An AS value (``nnnD``/``W``/``M``/``Y``) in years, or ``None`` if it is not one."""
    m = _AS_RE.match(str(value))
    if not m:
        return None
    return int(m.group(1)) * _YEARS_PER_UNIT[m.group(2)]


def generalise_years(years: float, policy: QuasiPolicy) -> int:
    """Whole years after the cap and the bands (never more than the cap)."""
    whole = int(math.floor(years + 1e-9))
    if whole >= policy.age_cap_years:
        return policy.age_cap_years
    if policy.age_band_years:
        whole = whole // policy.age_band_years * policy.age_band_years
    return min(whole, policy.age_cap_years)


def generalise_age(value: str, policy: QuasiPolicy) -> str:
    """Generalise one AS value; ``""`` for a value that is not an age (it cannot be judged).

    Ages of a year or more are written in whole years (``999M`` -> ``083Y``: months
    or days of an adult narrow down the birth date); below one year they stay in their
    own unit unless bands are on.
    """
    m = _AS_RE.match(str(value))
    if not m:
        return ""
    n, unit = int(m.group(1)), m.group(2)
    years = n * _YEARS_PER_UNIT[unit]
    if years >= 1 or policy.age_band_years or unit == "Y":
        return f"{generalise_years(years, policy):03d}Y"
    return f"{n:03d}{unit}"


def round_to_step(value: float, step: float) -> float:
    """``value`` rounded to the nearest multiple of ``step`` (``step`` 0: unchanged)."""
    if not step:
        return value
    return round(round(value / step) * step, 6)


def _format_ds(x: float) -> str:
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return s or "0"


# --------------------------------------------------------------------------- the standard header


def _map(value, fn):
    if isinstance(value, (list, tuple, MultiValue)):
        return [fn(str(v)) for v in value]
    return fn(str(value))


def _year_of_da(v: str) -> str:
    v = v.strip()
    return f"{v[:4]}0101" if len(v) >= 4 and v[:4].isdigit() else ""


def _year_of_dt(v: str) -> str:
    v = v.strip()
    return v[:4] if len(v) >= 4 and v[:4].isdigit() else ""


def _number(value: str, step: float) -> str:
    try:
        x = float(value)
    except ValueError:
        return ""
    if not math.isfinite(x):
        return ""
    return _format_ds(round_to_step(x, step))


def generalise_dataset(ds: Dataset, policy: QuasiPolicy, retain_characteristics: bool = True) -> dict:
    """Apply ``policy`` to ``ds`` in place, at every sequence depth and in kept private blocks.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A dataset the PS3.15 table has already been applied to.
    policy : QuasiPolicy
    retain_characteristics : bool
        Whether the option ``retain_patient_characteristics`` is on; off, every
        age, sex, size and weight of the kept private items is removed too.

    Returns
    -------
    dict
        Counts of what changed (``age``, ``height``, ``weight``, ``removed``,
        ``date``, ``free_text``, ``private_items``), never values.
    """
    counts: dict[str, int] = {}
    remove_tags = {t for name in policy.remove for t in CHARACTERISTIC_TAGS[name]}
    _walk(ds, policy, retain_characteristics, remove_tags, counts, creators={})
    return counts


def _bump(counts, key):
    counts[key] = counts.get(key, 0) + 1


_VR_CACHE: dict[int, str] = {}


def _vr(tag: int, raw) -> str:
    """The element's VR without converting a raw element (dictionary VR when read implicitly)."""
    vr = getattr(raw, "VR", None)
    if vr:
        return str(vr)
    vr = _VR_CACHE.get(tag)
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = ""
        _VR_CACHE[tag] = vr
    return vr


def _walk(ds: Dataset, policy, retain, remove_tags, counts, creators) -> None:
    """Only the elements that can matter are converted from their raw form: sequences, ages,
    the listed tags, dates when reduced, and private elements of a listed creator."""
    blocks = _listed_blocks()
    elems = ds._dict
    local_creators = {}
    for tag in elems:
        group, el = tag >> 16, tag & 0xFFFF
        if group & 1 and 0x10 <= el <= 0xFF:
            v = ds[tag].value
            v = v.strip() if isinstance(v, str) else ""
            if v in blocks:
                local_creators[(group, el)] = v
    special = remove_tags | _SPECIAL_TAGS | (FREE_TEXT_TAGS if policy.drop_free_text else frozenset())
    for tag in list(elems):
        group, el = tag >> 16, tag & 0xFFFF
        if group & 1:
            if el < 0x1000 or (group, el >> 8) not in local_creators:
                continue
            elem = ds[tag]
            if isinstance(elem.value, (bytes, bytearray)):
                clean = generalise_csa(elem.value, local_creators[(group, el >> 8)], policy, retain)
                if clean is None:
                    del ds[tag]
                    _bump(counts, "private_items")
                elif clean != elem.value:
                    elem.value = clean
                    _bump(counts, "private_items")
            continue
        vr = _vr(tag, elems[tag])
        if vr == "SQ":
            for item in ds[tag].value or []:
                _walk(item, policy, retain, remove_tags, counts, creators)
            continue
        if not (vr == "AS" or tag in special or (policy.dates_to_year and vr in ("DA", "DT"))):
            continue
        if tag in remove_tags or (policy.drop_free_text and tag in FREE_TEXT_TAGS):
            del ds[tag]
            _bump(counts, "removed" if tag in remove_tags else "free_text")
            continue
        elem = ds[tag]
        if elem.value in (None, "", b""):
            continue
        if vr == "AS":
            new = _map(elem.value, lambda v: generalise_age(v, policy))
            if new != elem.value:
                elem.value = new
                _bump(counts, "age")
        elif tag == PATIENT_SIZE and policy.height_step_m:
            elem.value = _map(elem.value, lambda v: _number(v, policy.height_step_m))
            _bump(counts, "height")
        elif tag == PATIENT_WEIGHT and policy.weight_step_kg:
            elem.value = _map(elem.value, lambda v: _number(v, policy.weight_step_kg))
            _bump(counts, "weight")
        elif policy.dates_to_year and vr in ("DA", "DT"):
            elem.value = _map(elem.value, _year_of_da if vr == "DA" else _year_of_dt)
            _bump(counts, "date")


_SPECIAL_TAGS = frozenset({PATIENT_SIZE, PATIENT_WEIGHT})


@lru_cache(maxsize=1)
def _listed_blocks() -> frozenset[str]:
    return frozenset(block for block, _ in load_private_items())


# --------------------------------------------------------------------------- vendor private items


@lru_cache(maxsize=1)
def load_private_items() -> dict[tuple[str, str], dict[int, str]]:
    """``{(block, item): {field: kind}}`` from ``data/quasi_private_items.tsv``."""
    text = resources.files("neurodeid").joinpath("data/quasi_private_items.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    expected = ["block", "item", "field", "kind", "reason"]
    if rows[0] != expected:
        raise QuasiError(f"quasi_private_items.tsv: header must be {expected}, got {rows[0]!r}")
    out: dict[tuple[str, str], dict[int, str]] = {}
    for row in rows[1:]:
        if len(row) != 5 or row[3] not in ("keep", "age", "sex", "height", "weight"):
            raise QuasiError(f"quasi_private_items.tsv: bad row {row!r} (5 columns, kind keep/age/sex/height/weight)")
        out.setdefault((row[0], row[1]), {})[int(row[2])] = row[3]
    return out


def _generalise_field(text: str, kind: str, policy: QuasiPolicy, retain: bool) -> str:
    """One characteristic written as text (a CSA field); ``""`` when removed."""
    if kind == "keep":
        return text
    if not retain or kind in policy.remove:
        return ""
    if kind == "sex":
        return text
    try:
        x = float(text)
    except ValueError:
        return ""
    if not math.isfinite(x):
        return ""
    if kind == "age":
        return str(generalise_years(x, policy))
    step = policy.weight_step_kg if kind == "weight" else policy.height_step_m
    decimals = len(text.split(".")[1]) if "." in text else 0
    y = round_to_step(x, step)
    return f"{y:.{decimals}f}" if decimals else str(int(round(y)))


def generalise_item_value(value: str, fields: dict[int, str], policy: QuasiPolicy, retain: bool) -> str:
    """Rewrite a listed item's text: field 0 is the whole value (a removed number
    becomes the dummy ``0``), else ``;``-separated fields (a removed field becomes
    empty); a field without a row is unknown and becomes ``0``."""
    if 0 in fields:
        new = _generalise_field(value, fields[0], policy, retain)
        # a removed number becomes the dummy 0: readers parse the slot as a number (IS/DS)
        return new if new or not _is_number(value) else "0"

    parts = value.split(";")
    out = []
    for i, part in enumerate(parts, start=1):
        kind = fields.get(i)
        if kind is None:
            out.append("0" if part else "")
        else:
            out.append(_generalise_field(part, kind, policy, retain))
    return ";".join(out)


@memo_by_bytes()
def generalise_csa(value: bytes, creator: str, policy: QuasiPolicy, retain: bool = True) -> bytes | None:
    """Rewrite the listed items of a Siemens CSA2 header; length-preserving.

    Each item value is NUL-terminated text inside a fixed-length slot; the new
    text (never longer: a longer one removes the element) is written followed
    by NULs, so every length and offset stays valid. Returns ``value``
    unchanged for blocks without listed items, ``None`` when a listed block
    does not parse (the caller removes the element). The result for the last
    few values is remembered (:func:`neurodeid.deid.bytesmemo.memo_by_bytes`).
    """
    from neurodeid.audit import csa_items  # lazy, as deid.crosscheck: the one CSA2 parser

    items = {item: fields for (block, item), fields in load_private_items().items() if block == creator}
    if not items or value[:4] != b"SV10":
        return value
    ranges = csa_items(value)
    if ranges is None:
        return None
    data = bytearray(value)
    for name, start, end in ranges:
        fields = items.get(name)
        if fields is None:
            continue
        text = bytes(data[start:end]).split(b"\x00", 1)[0].decode("latin-1")
        new = generalise_item_value(text, fields, policy, retain).encode("latin-1")
        if len(new) > len(text):
            return None
        data[start:end] = new + b"\x00" * (end - start - len(new))
    return bytes(data)
