"""Apply PS3.15 Table E.1-1 to a pydicom Dataset, at every sequence depth.

The pure part of de-identification: :func:`deidentify_dataset` takes a
dataset (with its ``file_meta``) and rewrites it in place. File I/O lives in
:mod:`neurodeid.deid.series`.

Decisions per element (see :mod:`neurodeid.deid.rules` for the data files):

- a table row gives the action for the active options; compound codes are
  resolved by attribute type (``deid_attribute_types.tsv``);
- ``U``: UIDs become ``2.25.<int>`` from HMAC(key, uid)
  (:func:`neurodeid.keys.remap_uid`) everywhere, file meta included;
  well-known UIDs (pydicom's UID dictionary, the standard's registry) are
  kept; any other UID, under whatever root, is remapped;
- ``C`` on DA/DT (Retain Longitudinal Temporal Information with Modified
  Dates): shifted by ``cfg.date_shift_days`` whole days; on TM: kept when
  ``cfg.keep_time_of_day`` (a whole-day shift leaves the time of day
  unchanged), else the Basic Profile action; on UIDs: remapped; on
  sequences: the items are cleaned; on anything else (free text under Clean
  Descriptors, Retain Patient Characteristics or Retain Device Identity,
  binary timestamps, numbers): neurodeid cannot prove the value clean, so
  the Basic Profile action applies (stricter than the option);
- ``K`` and ``D`` on sequences: the items are cleaned (a kept sequence is
  never kept blindly);
- PatientName and PatientID become ``sub-<label>``;
- private elements: removed, except the allow-list under Retain Safe Private
  (some allow-listed elements are sanitized first, see
  :mod:`neurodeid.deid.private_transforms`);
- unlisted attributes: kept if in the safe set, else removed and counted;
- the de-identification markers are written last.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import ClassVar

from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary

from neurodeid import __version__
from neurodeid.deid.pixels import clear_unused_bits
from neurodeid.deid.private_transforms import TRANSFORMS
from neurodeid.deid.quasi import QuasiPolicy, generalise_dataset
from neurodeid.deid.rules import (
    Plan,
    load_cid7050,
    load_private_allowlist,
    plan_for_tag,
    resolve_action,
)
from neurodeid.keys import remap_uid
from neurodeid.deid.profile import DEFAULT_OPTIONS, check_options, load_table

_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")

#: Safe-set UI attributes whose values name classes, syntaxes or coding
#: resources, never an instance: kept as they are (other UIDs are remapped).
CLASS_UID_TAGS = frozenset(
    {
        0x00020002,  # MediaStorageSOPClassUID
        0x00020010,  # TransferSyntaxUID
        0x00020012,  # ImplementationClassUID (the writing software)
        0x00080016,  # SOPClassUID
        0x00081150,  # ReferencedSOPClassUID
        0x0008010D,  # ContextGroupExtensionCreatorUID
        0x00080117,  # ContextUID
        0x00080118,  # MappingResourceUID
        0x0008010C,  # CodingSchemeUID
    }
)

_TEXT_EMPTY_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT", "UI"}
)
_NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT", "US or SS", "US or SS or OW"})

#: Dummy values for the ``D`` action, per VR (valid for the VR's length and charset).
DUMMY_VALUES = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "TM": "000000",
    "UC": "ANONYMIZED",
    "UT": "ANONYMIZED",
}


class DeidError(RuntimeError):
    """De-identification cannot proceed (bad config, or no file of a series could be written)."""


@dataclass(frozen=True)
class DeidConfig:
    """What to de-identify with.

    Parameters
    ----------
    key : bytes
        The secret key (never written anywhere).
    subject_label : str
        The BIDS subject label without ``sub-`` (alphanumeric).
    session_label : str or None
        The BIDS session label without ``ses-``; recorded for the caller, not
        written into DICOM (StudyID follows the table).
    date_shift_days : int
        Whole days added to every DA/DT under Retain Longitudinal Temporal
        Information with Modified Dates (negative = into the past), usually
        :func:`neurodeid.keys.date_shift_days`.
    options : frozenset of str
        :data:`neurodeid.deid.profile.OPTIONS` names; validated by
        :func:`neurodeid.deid.profile.check_options`.
    keep_time_of_day : bool
        Under Modified Dates, keep TM values and the time part of DT (a
        whole-day shift leaves them unchanged). ``False`` applies the Basic
        Profile action to TM and drops the time part of DT.
    quasi : QuasiPolicy
        Safe Harbor age cap and generalisation of patient characteristics,
        applied after the table (:mod:`neurodeid.deid.quasi`).
    """

    key: bytes
    subject_label: str
    session_label: str | None = None
    date_shift_days: int = 0
    options: frozenset = frozenset(DEFAULT_OPTIONS)
    keep_time_of_day: bool = True
    quasi: QuasiPolicy = field(default_factory=QuasiPolicy)

    def __post_init__(self):
        if not isinstance(self.key, (bytes, bytearray)) or not self.key:
            raise DeidError("DeidConfig.key must be non-empty bytes (see neurodeid.keys.load_key)")
        if not _LABEL_RE.match(self.subject_label or ""):
            raise DeidError(f"DeidConfig.subject_label must be alphanumeric without 'sub-', got {self.subject_label!r}")
        if self.session_label is not None and not _LABEL_RE.match(self.session_label):
            raise DeidError(f"DeidConfig.session_label must be alphanumeric without 'ses-', got {self.session_label!r}")
        if not isinstance(self.date_shift_days, int):
            raise DeidError(f"DeidConfig.date_shift_days must be an int (whole days), got {self.date_shift_days!r}")
        object.__setattr__(self, "options", check_options(self.options))
        if not isinstance(self.quasi, QuasiPolicy):
            raise DeidError(f"DeidConfig.quasi must be a QuasiPolicy, got {type(self.quasi).__name__}")

    @property
    def pseudonym(self) -> str:
        """``sub-<label>``, written to PatientName and PatientID."""
        return f"sub-{self.subject_label}"


@dataclass
class DeidReport:
    """What :func:`deidentify_dataset` did to one dataset (no values, ever).

    Attributes
    ----------
    counts : collections.Counter
        Elements per final action: ``X`` removed, ``Z`` emptied, ``D`` dummy,
        ``K`` kept by the table, ``U`` UIDs remapped, ``C`` cleaned (dates
        shifted, text cleaned), ``S`` kept from the safe set, ``N`` removed
        as unlisted, ``P_kept`` / ``P_removed`` private, ``PSEUDO``.
    removed_unlisted : set of int
        Tag numbers of unlisted, unsafe elements that were removed.
    pixel_review : str
        Why the pixel data needs burned-in text review (``""`` if not).
    """

    counts: Counter = field(default_factory=Counter)
    removed_unlisted: set = field(default_factory=set)
    pixel_review: str = ""

    def to_dict(self) -> dict:
        """JSON-ready form; tags as ``"GGGGEEEE"`` strings."""
        return {
            "counts": dict(sorted(self.counts.items())),
            "removed_unlisted": [f"{t:08X}" for t in sorted(self.removed_unlisted)],
            "pixel_review": self.pixel_review,
        }


# --------------------------------------------------------------------------- helpers


def is_well_known_uid(uid: str) -> bool:
    """True for UIDs defined by the standard (SOP classes, transfer syntaxes, coding schemes).

    Only UIDs listed in the standard's registry (pydicom's UID dictionary) are
    kept: a UID merely built under a public root (``1.2.840.10008.<MRN>.<DOB>``)
    is remapped like any other.
    """
    return uid in UID_dictionary


def shift_date(value: str, days: int) -> str:
    """Shift a DA value (``YYYYMMDD``; ``YYYY.MM.DD`` accepted) by whole days.

    Returns ``""`` for anything that is not a full, valid date (a partial or
    malformed date cannot be shifted consistently, so it is emptied).
    """
    v = value.strip().replace(".", "") if len(value.strip()) == 10 else value.strip()
    if len(v) != 8 or not v.isdigit():
        return ""
    try:
        d = date(int(v[:4]), int(v[4:6]), int(v[6:8])) + timedelta(days=days)
    except (ValueError, OverflowError):
        return ""
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


_DT_RE = re.compile(r"^(\d{8})(\d{2,6}(?:\.\d{1,6})?)?([+-]\d{4})?$")


def shift_datetime(value: str, days: int, keep_time: bool = True) -> str:
    """Shift the date part of a DT value by whole days; keep or drop the time part.

    Partial (``YYYY``, ``YYYYMM``) or malformed values return ``""``.
    """
    m = _DT_RE.match(value.strip())
    if not m:
        return ""
    d = shift_date(m.group(1), days)
    if not d:
        return ""
    if not keep_time:
        return d
    return d + (m.group(2) or "") + (m.group(3) or "")


class _Context:
    """Per-call state: config, plan cache, UID cache, report."""

    _plan_cache: ClassVar[dict[frozenset, dict[int, Plan]]] = {}

    def __init__(self, cfg: DeidConfig):
        self.cfg = cfg
        self.opts = cfg.options
        self.table = load_table()
        self.plans = self._plan_cache.setdefault(self.opts, {})
        self.retain_uids = "retain_uids" in self.opts
        self.modified_dates = "retain_long_modified_dates" in self.opts
        self.safe_private = "retain_safe_private" in self.opts
        self.allowlist = load_private_allowlist()
        self.report = DeidReport()

    def plan(self, tag: int) -> Plan:
        tag = int(tag)  # int keys: a pydicom tag compares in Python, an int in C
        p = self.plans.get(tag)
        if p is None:
            p = self.plans[tag] = plan_for_tag(tag, self.opts, self.table)
        return p

    def uid(self, value: str) -> str:
        if not value or is_well_known_uid(value):
            return value
        return remap_uid(self.cfg.key, value)


def _empty_value(vr: str):
    if vr == "SQ":
        return Sequence()
    if vr in _TEXT_EMPTY_VRS:
        return ""
    if vr in _NUMERIC_VRS:
        return None
    return b""


def _map_values(value, fn):
    if isinstance(value, (list, tuple, MultiValue)):
        return [fn(str(v)) for v in value]
    return fn(str(value))


#: A UID as every value of a raw UI element must read for :func:`_remap_raw_uids`.
_PLAIN_UID = re.compile(r"[0-9.]{1,64}")


def _map_raw_values(ds: Dataset, tag, vr: str, plain: re.Pattern, fn) -> bool:
    """Map the values of the raw element ``tag`` of ``ds`` through ``fn`` when it was read
    with VR ``vr`` and its ASCII bytes hold only values that ``plain`` matches whole (split
    at backslashes, trailing spaces and NULs dropped): a new element is made with the values
    that pydicom's conversion then ``fn`` give, without converting the raw element. False
    (nothing done) for any other element."""
    raw = ds._dict[tag]
    if not raw.is_raw or raw.VR != vr or not isinstance(raw.value, bytes) or not raw.value.isascii():
        return False
    pieces = raw.value.decode("ascii").rstrip(" \x00").split("\\")
    if not all(plain.fullmatch(p) for p in pieces):
        return False
    new = [fn(p) for p in pieces]
    ds._dict[tag] = DataElement(tag, vr, new if len(new) > 1 else new[0])
    return True


def _remap_raw_uids(ds: Dataset, tag, ctx: _Context) -> bool:
    """Remap the UIDs of the raw element ``tag`` of ``ds`` read with VR UI whose values are
    plain UIDs (digits and dots), as ``_map_values(value, ctx.uid)`` after pydicom's
    conversion (:func:`_map_raw_values`). False (nothing done) for any other element."""
    return _map_raw_values(ds, tag, "UI", _PLAIN_UID, ctx.uid)


def _remap_uids(ds: Dataset, tag, ctx: _Context) -> None:
    """``elem.value = _map_values(elem.value, ctx.uid)`` for the UI element ``tag`` of
    ``ds`` when it has a value (:func:`_remap_raw_uids` when it can)."""
    if _remap_raw_uids(ds, tag, ctx):
        return
    elem = ds[tag]
    if elem.value:
        elem.value = _map_values(elem.value, ctx.uid)


_PLAIN_DATE = re.compile(r"[0-9]{8}")


def _shift_raw_dates(ds: Dataset, tag, days: int) -> bool:
    """Shift the dates of the raw element ``tag`` of ``ds`` read with VR DA whose values are
    8-digit dates, as :func:`shift_date` after pydicom's conversion (dates as text;
    :func:`_map_raw_values`). False (nothing done) for any other element, and whenever
    pydicom converts dates to date objects."""
    if pydicom_config.datetime_conversion:
        return False
    return _map_raw_values(ds, tag, "DA", _PLAIN_DATE, lambda d: shift_date(d, days))


def _written_as_read(raw) -> bool:
    """True when the raw text element ``raw`` (ASCII) is written with the bytes it was read
    with whether or not it is converted first: its bytes are its text less trailing spaces
    and NULs, padded to an even length with one space, as pydicom writes the conversion."""
    value = raw.value
    if not raw.is_raw or not isinstance(value, bytes) or not value.isascii():
        return False
    text = value.rstrip(b" \x00")
    return value == (text + b" " if len(text) % 2 else text)


#: VRs whose raw element pydicom converts keeping the VR read (no dictionary look-up, no
#: ambiguous-VR correction) and without raising on odd bytes (numbers, IS and DS, can):
#: text, the VR in which an emptied element is made anew.
_PLAIN_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR",
                             "UT"})


def _empty_raw(ds: Dataset, tag) -> bool:
    """``Z`` on the raw element ``tag`` of ``ds`` read with a text VR (explicit): a new empty
    element of that VR, as converting it and emptying its value makes. False for any other."""
    raw = ds._dict[tag]
    if not raw.is_raw or raw.VR not in _PLAIN_TEXT_VRS or raw.length == 0xFFFFFFFF:
        return False
    if pydicom_config.datetime_conversion and raw.VR in ("DA", "DT", "TM"):
        return False  # converted to dates and times, which can refuse odd bytes
    ds._dict[tag] = DataElement(tag, raw.VR, _empty_value(raw.VR))
    return True


# --------------------------------------------------------------------------- the walk


def _clean_sequence(elem, ctx: _Context, depth: int) -> None:
    for item in elem.value:
        _clean_dataset(item, ctx, depth + 1)


def _apply_dummy(ds: Dataset, tag: int, ctx: _Context, depth: int) -> None:
    if _remap_raw_uids(ds, tag, ctx):
        return
    elem = ds[tag]
    vr = elem.VR
    if vr == "SQ":
        _clean_sequence(elem, ctx, depth)
    elif vr == "UI":
        elem.value = _map_values(elem.value, ctx.uid) if elem.value else elem.value
    elif vr in DUMMY_VALUES:
        elem.value = DUMMY_VALUES[vr]
    else:
        elem.value = _empty_value(vr) if vr not in _NUMERIC_VRS else 0


def _apply_clean(ds: Dataset, tag: int, plan: Plan, ctx: _Context, depth: int, root: Dataset) -> str:
    """Apply ``C``; return the action actually applied (for counting)."""
    if _remap_raw_uids(ds, tag, ctx):
        return "C"
    if ctx.modified_dates:
        raw = ds._dict[tag]
        if raw.is_raw and raw.VR == "TM" and ctx.cfg.keep_time_of_day and _written_as_read(raw):
            return "C"  # kept: its conversion would change nothing written
        if _shift_raw_dates(ds, tag, ctx.cfg.date_shift_days):
            return "C"
    elem = ds[tag]
    vr = elem.VR
    cfg = ctx.cfg
    if vr == "SQ":
        _clean_sequence(elem, ctx, depth)
        return "C"
    if vr in ("DA", "DT", "TM") and ctx.modified_dates:
        if vr == "TM":
            if cfg.keep_time_of_day:
                return "C"
            basic = resolve_action(ctx.table.row(tag).basic, tag) if ctx.table.row(tag) else "X"
            return _apply_simple(ds, tag, basic, ctx, depth, root)
        if elem.value in (None, ""):
            return "C"
        if vr == "DA":
            elem.value = _map_values(elem.value, lambda v: shift_date(v, cfg.date_shift_days))
        else:
            elem.value = _map_values(elem.value, lambda v: shift_datetime(v, cfg.date_shift_days, cfg.keep_time_of_day))
        return "C"
    if vr == "UI":
        elem.value = _map_values(elem.value, ctx.uid) if elem.value else elem.value
        return "C"
    # Free text, binary timestamps, numbers: neurodeid cannot prove them clean,
    # so the Basic Profile action applies (stricter than the option).
    row = ctx.table.row(tag)
    basic = resolve_action(row.basic, tag) if row is not None else "X"
    return _apply_simple(ds, tag, basic, ctx, depth, root)


def _apply_simple(ds: Dataset, tag: int, action: str, ctx: _Context, depth: int, root: Dataset) -> str:
    if action == "X":
        del ds[tag]
    elif action == "Z":
        if not _empty_raw(ds, tag):
            elem = ds[tag]
            elem.value = _empty_value(elem.VR)
    elif action == "D":
        _apply_dummy(ds, tag, ctx, depth)
    elif action == "U":
        if not ctx.retain_uids and _remap_raw_uids(ds, tag, ctx):
            return action
        elem = ds[tag]
        if elem.VR == "SQ":
            _clean_sequence(elem, ctx, depth)
        elif elem.VR == "UI":
            if not ctx.retain_uids and elem.value:
                elem.value = _map_values(elem.value, ctx.uid)
        else:
            _apply_dummy(ds, tag, ctx, depth)
    return action


def _clean_private(ds: Dataset, tags: list[int], ctx: _Context) -> None:
    """Remove private elements except allow-listed ones (Retain Safe Private)."""
    counts = ctx.report.counts
    keep: set[int] = set()
    if ctx.safe_private and ctx.allowlist:
        creators = {}
        for tag in tags:
            if 0x10 <= (tag & 0xFFFF) <= 0xFF:
                value = ds[tag].value
                creators[int(tag)] = value.strip() if isinstance(value, str) else ""  # int keys compare in C
        used_creators = set()
        for tag in tags:
            el = tag & 0xFFFF
            if el < 0x1000:
                continue
            group = tag >> 16
            ctag = (group << 16) | (el >> 8)
            creator = creators.get(ctag)
            akey = (creator, group, el & 0xFF)
            if creator and akey in ctx.allowlist:
                transform = TRANSFORMS.get(akey)
                if transform is not None:
                    elem = ds[tag]
                    clean = transform(elem.value)
                    if clean is None:
                        continue
                    elem.value = clean
                keep.add(int(tag))
                used_creators.add(ctag)
        keep |= used_creators
    removed = [tag for tag in tags if int(tag) not in keep]
    if len(removed) < len(tags):
        counts["P_kept"] += len(tags) - len(removed)
    if removed:
        _delete_elements(ds, removed)
        counts["P_removed"] += len(removed)


def _delete_elements(ds: Dataset, tags: list) -> None:
    """``del ds[tag]`` for each of ``tags`` (keys of ``ds``, not pixel data), at once:
    the elements leave the dataset's dict and pydicom's record of private blocks is
    forgotten (rebuilt on its next use), as each ``del`` does when a creator goes."""
    elements = ds._dict
    for tag in tags:
        del elements[tag]
    if ds._private_blocks:
        ds._private_blocks = {}


def _clean_dataset(ds: Dataset, ctx: _Context, depth: int, root: Dataset | None = None) -> None:
    root = ds if root is None else root
    counts = ctx.report.counts
    private: list[int] = []
    for tag in list(ds._dict):
        plan = ctx.plan(tag)
        action = plan.action
        if action == "P":
            private.append(tag)
            continue
        if action in ("K", "S"):
            if plan.vr == "SQ":
                _clean_sequence(ds[tag], ctx, depth)
            elif plan.vr == "UI" and not ctx.retain_uids and tag not in CLASS_UID_TAGS:
                _remap_uids(ds, tag, ctx)
            counts[action] += 1
        elif action == "N":
            del ds[tag]
            ctx.report.removed_unlisted.add(int(tag))
            counts["N"] += 1
        elif action == "PSEUDO":
            ds[tag].value = ctx.cfg.pseudonym
            counts["PSEUDO"] += 1
        elif action == "C":
            counts[_apply_clean(ds, tag, plan, ctx, depth, root)] += 1
        else:
            counts[_apply_simple(ds, tag, action, ctx, depth, root)] += 1
    if private:
        _clean_private(ds, private, ctx)


# --------------------------------------------------------------------------- markers


def _method_text(options: frozenset[str], edition: str) -> list[str]:
    cid = load_cid7050()
    ed = edition.split(" ")[0]
    values = [f"neurodeid {__version__} PS3.15 E.1-1 {ed}"[:64], cid["basic"][1][:64]]
    values += [cid[o][1][:64] for o in sorted(options) if o in cid]
    return values


_PATIENT_IDENTITY_REMOVED = BaseTag(0x00120062)
_DEID_METHOD = BaseTag(0x00120063)
_DEID_METHOD_CODES = BaseTag(0x00120064)
_LONGITUDINAL_MODIFIED = BaseTag(0x00280303)
_PATIENT_NAME = BaseTag(0x00100010)
_PATIENT_ID = BaseTag(0x00100020)
_CODE_VALUE, _CODING_SCHEME, _CODE_MEANING = BaseTag(0x00080100), BaseTag(0x00080102), BaseTag(0x00080104)


def _marker_codes(opts: frozenset) -> list[tuple[str, str]]:
    """``(code value, code meaning)`` of the CID 7050 items for ``opts``, basic first."""
    cid = load_cid7050()
    return [cid[name] for name in ["basic"] + sorted(o for o in opts if o in cid)]


def _code_item(code: str, meaning: str) -> Dataset:
    """A DeidentificationMethodCodeSequence item: the elements that setting CodeValue,
    CodingSchemeDesignator (``DCM``) and CodeMeaning on a new Dataset makes."""
    return Dataset({
        _CODE_VALUE: DataElement(_CODE_VALUE, "SH", code),
        _CODING_SCHEME: DataElement(_CODING_SCHEME, "SH", "DCM"),
        _CODE_MEANING: DataElement(_CODE_MEANING, "LO", meaning),
    })


def _set_value(ds: Dataset, tag: BaseTag, vr: str, value) -> None:
    """``setattr(ds, keyword, value)`` for the public ``tag`` of dictionary VR ``vr``: a
    new element when ``ds`` has none, else the existing element (converted, its VR
    kept) takes the value."""
    if tag not in ds._dict:
        elem = DataElement(tag, vr, value)
        if vr == "SQ":
            ds[tag] = elem  # as setattr: pydicom passes the pixel representation on to the items
        else:
            ds._dict[tag] = elem
    else:
        elem = ds[tag]
        elem.value = value
        ds[tag] = elem


def _write_markers(ds: Dataset, ctx: _Context) -> None:
    opts = ctx.opts
    _set_value(ds, _PATIENT_IDENTITY_REMOVED, "CS", "YES")
    _set_value(ds, _DEID_METHOD, "LO", _method_text(opts, ctx.table.edition))
    _set_value(ds, _DEID_METHOD_CODES, "SQ",
               Sequence([_code_item(code, meaning) for code, meaning in _marker_codes(opts)]))
    if "retain_long_full_dates" in opts:
        longitudinal = "UNMODIFIED"
    elif "retain_long_modified_dates" in opts:
        longitudinal = "MODIFIED"
    else:
        longitudinal = "REMOVED"
    _set_value(ds, _LONGITUDINAL_MODIFIED, "CS", longitudinal)
    # Patient module, type 2: always present, carrying the pseudonym.
    _set_value(ds, _PATIENT_NAME, "PN", ctx.cfg.pseudonym)
    _set_value(ds, _PATIENT_ID, "LO", ctx.cfg.pseudonym)


#: Modalities whose pixels often carry burned-in text (PS3.15 E.1.1, Clean Pixel Data).
PIXEL_REVIEW_MODALITIES = frozenset({"US", "SC", "OT", "XC", "ES", "GM", "SM", "DOC"})


def pixel_review_reason(ds: Dataset) -> str:
    """Why ``ds`` needs burned-in text review before release, or ``""``.

    Flags BurnedInAnnotation ``YES``, the modalities in
    :data:`PIXEL_REVIEW_MODALITIES` and Secondary Capture SOP classes.
    """
    reasons = []
    if _text_of(ds, _BURNED_IN_ANNOTATION).upper() == "YES":
        reasons.append("BurnedInAnnotation YES")
    modality = _text_of(ds, _MODALITY).upper()
    if modality in PIXEL_REVIEW_MODALITIES:
        reasons.append(f"modality {modality}")
    if _text_of(ds, _SOP_CLASS_UID).startswith("1.2.840.10008.5.1.4.1.1.7"):
        reasons.append("secondary capture")
    return "; ".join(reasons)


_BURNED_IN_ANNOTATION, _MODALITY, _SOP_CLASS_UID = BaseTag(0x00280301), BaseTag(0x00080060), BaseTag(0x00080016)


def _text_of(ds: Dataset, tag: BaseTag) -> str:
    """``str(ds.get(keyword, ""))`` of the attribute ``tag``, looked up by tag."""
    elem = ds.get(tag)
    return "" if elem is None else str(elem.value)


def deidentify_dataset(ds: Dataset, cfg: DeidConfig) -> DeidReport:
    """De-identify ``ds`` (and ``ds.file_meta``) in place.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A dataset as read by :func:`pydicom.dcmread`; pixel data is not
        decoded; its unused bits above HighBit are cleared
        (:func:`neurodeid.deid.pixels.clear_unused_bits`), the stored
        values' meaning unchanged.
    cfg : DeidConfig
        Key, subject label, date shift and options.

    Returns
    -------
    DeidReport
        Per-action counts and the tag numbers (never values) of removed
        unlisted elements.
    """
    if not isinstance(cfg, DeidConfig):
        raise DeidError(f"cfg must be a DeidConfig, got {type(cfg).__name__}")
    ctx = _Context(cfg)
    ctx.report.pixel_review = pixel_review_reason(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and len(meta._dict):
        _clean_dataset(meta, ctx, 0)
    _clean_dataset(ds, ctx, 0)
    quasi = generalise_dataset(ds, cfg.quasi, "retain_patient_characteristics" in cfg.options)
    ctx.report.counts.update({f"Q_{k}": n for k, n in quasi.items()})
    # hidden bits above HighBit (overlays burned into Pixel Data): cleared, values unchanged
    high_bits = clear_unused_bits(ds)
    if high_bits:
        ctx.report.counts["PIXEL_HIGH_BITS_CLEARED"] += high_bits
    _write_markers(ds, ctx)
    if meta is not None and len(meta._dict):
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "SOPClassUID" in ds:
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
    return ctx.report
