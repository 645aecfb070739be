"""The data behind de-identification decisions, and how one tag is treated.

Everything that decides what is kept lives in files under ``neurodeid/data/``,
each entry with its reason:

- ``ps315_table_e1_1.json``: PS3.15 Table E.1-1 (see :mod:`neurodeid.deid.profile`);
- ``deid_attribute_types.tsv``: the PS3.3 attribute types that resolve the
  compound actions (``X/Z``, ``X/D``, ``X/Z/D``, ``Z/D``, ``X/Z/U*``);
- ``deid_safe_attributes.tsv``: attributes the table does not list that are
  kept (pixel, geometry, acquisition parameters, code and SR structure);
  every other unlisted attribute is removed and counted;
- ``private_allowlist.tsv``: the private elements kept under the Retain Safe
  Private option (what dcm2niix reads); every other private element is removed;
- ``deid_cid7050.tsv``: the CID 7050 codes written to
  DeidentificationMethodCodeSequence.

:func:`plan_for_tag` turns a tag number and the active options into one
:class:`Plan`; the engine caches plans per tag so a series costs one decision
per distinct tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from pydicom.datadict import dictionary_VR

from neurodeid.deid.profile import ActionTable, load_table

#: Value representations whose value is text (PS3.5 6.2).
TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT", "UI"}
)

#: Final actions a :class:`Plan` can carry.
#: ``X`` remove, ``Z`` empty, ``D`` dummy, ``K`` keep, ``U`` remap UIDs, ``C`` clean,
#: ``S`` keep because in the safe set, ``N`` remove because unlisted and not safe,
#: ``P`` private (decided per element from its creator), ``PSEUDO`` subject pseudonym.
FINAL_ACTIONS = ("X", "Z", "D", "K", "U", "C", "S", "N", "P", "PSEUDO")

#: PatientName and PatientID: replaced by ``sub-<label>`` at every depth.
PSEUDONYM_TAGS = frozenset({0x00100010, 0x00100020})


class RulesError(ValueError):
    """A de-identification data file is malformed."""


@dataclass(frozen=True)
class Plan:
    """How one tag is treated under one option set.

    Attributes
    ----------
    action : str
        One of :data:`FINAL_ACTIONS`.
    code : str
        The table's action code before resolution (``"X/Z/D"``, ...), ``""``
        for unlisted tags; used for counting.
    vr : str
        The dictionary VR (``""`` when unknown, e.g. private tags).
    """

    action: str
    code: str
    vr: str


def _data_lines(name: str) -> list[list[str]]:
    text = resources.files("neurodeid").joinpath(f"data/{name}").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return rows


@lru_cache(maxsize=1)
def load_safe_attributes() -> dict[int, tuple[str, str]]:
    """Unlisted attributes kept: ``{tag: (keyword, reason)}`` from ``deid_safe_attributes.tsv``."""
    out = {}
    for row in _data_lines("deid_safe_attributes.tsv"):
        if len(row) != 3:
            raise RulesError(f"deid_safe_attributes.tsv: expected 3 tab-separated columns, got {row!r}")
        out[int(row[0], 16)] = (row[1], row[2])
    return out


@lru_cache(maxsize=1)
def load_attribute_types() -> dict[int, str]:
    """``{tag: type}`` (``"1"``, ``"2"`` or ``"U*"``) from ``deid_attribute_types.tsv``."""
    rows = _data_lines("deid_attribute_types.tsv")
    header, body = rows[0], rows[1:]
    if header[:3] != ["tag", "keyword", "type"]:
        raise RulesError(f"deid_attribute_types.tsv: unexpected header {header!r}")
    out = {}
    for row in body:
        if row[2] not in ("1", "2", "U*"):
            raise RulesError(f"deid_attribute_types.tsv: type must be 1, 2 or U*, got {row!r}")
        out[int(row[0], 16)] = row[2]
    return out


@lru_cache(maxsize=1)
def load_private_allowlist() -> dict[tuple[str, int, int], tuple[str, str]]:
    """``{(private_creator, group, element_low_byte): (keyword, reason)}`` from ``private_allowlist.tsv``."""
    rows = _data_lines("private_allowlist.tsv")
    header, body = rows[0], rows[1:]
    expected = ["private_creator", "group", "element_low_byte", "keyword", "reason"]
    if header != expected:
        raise RulesError(f"private_allowlist.tsv: header must be {expected}, got {header!r}")
    out = {}
    for row in body:
        if len(row) != 5:
            raise RulesError(f"private_allowlist.tsv: expected 5 columns, got {row!r}")
        group = int(row[1], 16)
        if not group & 1:
            raise RulesError(f"private_allowlist.tsv: group {row[1]} is not private (even)")
        out[(row[0].strip(), group, int(row[2], 16))] = (row[3], row[4])
    return out


@lru_cache(maxsize=1)
def load_cid7050() -> dict[str, tuple[str, str]]:
    """``{option or "basic": (code_value, code_meaning)}`` from ``deid_cid7050.tsv``."""
    rows = _data_lines("deid_cid7050.tsv")
    return {r[0]: (r[1], r[2]) for r in rows[1:]}


def resolve_action(code: str, tag: int) -> str:
    """Resolve a compound table code into one action for ``tag``.

    The stricter action is chosen unless the attribute type (from
    ``deid_attribute_types.tsv``) needs the weaker one: type 1 needs ``D``,
    type 2 needs ``Z`` (``D`` where the code offers no ``Z``), type 3 or
    unknown takes ``X``. ``X/Z/U*`` rows marked ``U*`` resolve to ``U``
    (kept, cleaned inside, UIDs remapped).

    Parameters
    ----------
    code : str
        A table action such as ``"X/Z/D"``.
    tag : int
        The tag number ``0xGGGGEEEE``.

    Returns
    -------
    str
        One of ``X``, ``Z``, ``D``, ``K``, ``C``, ``U``.
    """
    if "/" not in code:
        return code
    parts = code.split("/")
    typ = load_attribute_types().get(tag, "3")
    if "U*" in parts and typ == "U*":
        return "U"
    if typ == "1" and "D" in parts:
        return "D"
    if typ in ("1", "2"):
        if "Z" in parts:
            return "Z"
        if "D" in parts:
            return "D"
    return "X" if "X" in parts else ("Z" if "Z" in parts else "D")


def _vr_of(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return ""


def plan_for_tag(tag: int, options: frozenset[str], table: ActionTable | None = None) -> Plan:
    """The :class:`Plan` for a tag under the active options.

    Order: pseudonym tags; private (odd) groups -> ``P`` (group lengths and
    (gggg,0001-000F) are removed); group-length elements (gggg,0000) of even
    groups -> ``X``; curves 50xx and every overlay element of 60xx -> ``X``
    (the table removes overlay data and comments; the rest of an overlay is
    meaningless without them, and the Clean Graphics option cannot clean a
    bitmap, so neurodeid removes it); a table row -> its resolved action;
    the safe set -> ``S``; anything else -> ``N`` (removed, counted).
    """
    table = table or load_table()
    group, elem = tag >> 16, tag & 0xFFFF
    vr = _vr_of(tag)
    if tag in PSEUDONYM_TAGS:
        return Plan("PSEUDO", table.action(tag, options) or "", vr)
    if group & 1:
        if elem == 0 or elem < 0x10:
            return Plan("X", "X", vr)
        return Plan("P", table.private_row.action(options) if table.private_row else "X", vr)
    if elem == 0 and group != 0x0002:
        return Plan("X", "", vr)
    if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
        return Plan("X", table.action(tag, options) or "X", vr)
    if 0x7F00 <= group <= 0x7FFF and tag not in (0x7FE00010, 0x7FE00008, 0x7FE00009, 0x7FE00001, 0x7FE00002):
        return Plan("N", "", vr)  # retired variable pixel data groups
    code = table.action(tag, options)
    if code is not None:
        return Plan(resolve_action(code, tag), code, vr)
    if tag in load_safe_attributes():
        return Plan("S", "", vr)
    return Plan("N", "", vr)
