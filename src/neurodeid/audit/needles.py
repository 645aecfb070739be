"""What the release audit looks for: the identifying values of the raw data (private).

A value is a needle because its **attribute is identifying**: DICOM PS3.15
Table E.1-1 does not keep it (action other than ``K``) under the active options,
or it is a private element, or it is a word of a raw file or folder name. A value
is never a needle only because it is long, and never because the pipeline itself
wrote it. What is not identifying is reviewed data with a reason per entry
(``data/audit_vocabulary.tsv``): vendor code words, private attributes that hold
technical values, measured on real vendor files.

Each needle has a **category** (name, ID, date, UID, address, path word, vendor
free text, free text) so a report can say what kind of value was found without
showing it, and **spellings**: dates in every common spelling, names in every
part and script (CJK parts of one or two characters from name attributes), IDs
with and without separators.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pydicom
from pydicom.datadict import keyword_for_tag as _pydicom_keyword
from pydicom.uid import PYDICOM_ROOT_UID, UID_dictionary

from ..deid.profile import ActionTable, load_table
from ..fileio import write_text_atomic
from ..values import is_number as _is_number

#: VRs whose values are never text; they are not turned into needles.
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "US", "SS", "UL", "SL", "FL", "FD", "AT", "SV", "UV"})

#: VRs holding numbers as text: only long digit runs are identifying.
NUMERIC_TEXT_VRS = frozenset({"IS", "DS"})

#: A needle made of digits only must have at least this many digits (dates
#: have 8; shorter numbers occur by chance everywhere).
MIN_DIGITS = 6

DEFAULT_MIN_LENGTH = 3

# Categories of needles (what the report says instead of the value).
NAME, ID, DATE, UID, ADDRESS, PATH_WORD, VENDOR_TEXT, FREE_TEXT = (
    "name", "ID", "date", "UID", "address", "path word", "vendor free text", "free text")
CATEGORIES = (NAME, ID, DATE, UID, ADDRESS, PATH_WORD, VENDOR_TEXT, FREE_TEXT)

PATH_SOURCE = "raw file/folder name"


@dataclass(frozen=True)
class Needle:
    """An identifying string, where it came from (attribute or path word) and its category."""

    text: str
    source: str
    category: str = FREE_TEXT


# --------------------------------------------------------------------------- reviewed data


def _data_lines(name: str) -> list[list[str]]:
    text = resources.files("neurodeid").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]


@lru_cache(maxsize=1)
def vocabulary() -> tuple[frozenset[str], frozenset[tuple[str, int]]]:
    """Reviewed non-identifying values and private attributes (``data/audit_vocabulary.tsv``).

    Returns
    -------
    (values, private_attributes)
        ``values``: lower-case values that are never needles (unless they come
        from a direct identifier); ``private_attributes``: ``(creator, tag)``
        pairs (tag with the block byte zeroed, e.g. ``0x0051000F``) whose values
        are technical and not needle sources.
    """
    rows = _data_lines("audit_vocabulary.tsv")
    header, rows = rows[0], rows[1:]
    assert header[:4] == ["kind", "value", "private_creator", "tag"], header
    values, private = set(), set()
    for r in rows:
        r = r + [""] * (5 - len(r))
        kind, value, creator, tag, reason = r[:5]
        if not reason.strip():
            raise ValueError(f"audit_vocabulary.tsv: entry {r[:4]} has no reason")
        if kind == "value":
            values.add(value.strip().lower())
        elif kind == "private":
            private.add((creator.strip(), int(tag, 16) & 0xFFFF00FF))
        elif kind != "placeholder":
            raise ValueError(f"audit_vocabulary.tsv: unknown kind {kind!r} (value, placeholder or private)")
    return frozenset(values), frozenset(private)


@lru_cache(maxsize=1)
def placeholder_words() -> frozenset[str]:
    """Lower-case words that stand in for an identifier (``data/audit_vocabulary.tsv``,
    kind ``placeholder``): what de-identification tools and form templates write in its
    place ("ANONYMIZED", "Last Name^First Name"). A value made of them only is never a
    needle, not even the value of a direct identifier."""
    rows = _data_lines("audit_vocabulary.tsv")[1:]
    return frozenset(r[1].strip().lower() for r in rows if r[0] == "placeholder")


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Values that identify nobody: the reviewed vocabulary's values and the words of the
    path stop list (:func:`path_stopwords`). Not needles, except as the value of a direct
    identifier (a patient really named "Long" is still found)."""
    return vocabulary()[0] | path_stopwords()


@lru_cache(maxsize=1)
def direct_identifiers() -> frozenset[str]:
    """Keywords of direct identifiers (``data/audit_direct_identifiers.tsv``): their values
    are needles even when they look like vocabulary, and can never be allowed by a site."""
    rows = _data_lines("audit_direct_identifiers.tsv")
    return frozenset(r[0] for r in rows[1:])


@lru_cache(maxsize=1)
def path_stopwords() -> frozenset[str]:
    """Words of file and folder names that identify nobody (``data/audit_path_stopwords.txt``)."""
    text = resources.files("neurodeid").joinpath("data/audit_path_stopwords.txt").read_text()
    words = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.update(w.lower() for w in line.split())
    return frozenset(words)


@lru_cache(maxsize=1)
def own_release_words() -> frozenset[str]:
    """Lower-case words of the fixed text neurodeid writes into every release (its README
    and dataset_description.json: "original", "error", "conversion"...): a raw file or
    folder name that holds one of them does not make it a needle (it would be found in
    neurodeid's own text, put there whatever the input)."""
    from neurodeid.release.dataset import fixed_text  # lazy: the release imports the audit's results

    return frozenset(w.lower() for w in _PATH_SPLIT.split(fixed_text()) if w and not w.isdigit())


# --------------------------------------------------------------------------- spellings


def is_cjk(text: str) -> bool:
    """True when ``text`` holds a Han, Kana or Hangul character."""
    if text.isascii():
        return False
    for c in text:
        name = unicodedata.name(c, "")
        if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")):
            return True
    return False


_WORDS = re.compile(r"[^\W_]+")


@lru_cache(maxsize=1 << 16)  # needle lists repeat a text for many attributes (one date, many elements)
def keep_needle(text: str, min_length: int, category: str = FREE_TEXT) -> bool:
    """Is ``text`` specific enough to be looked for?

    Too short (except CJK name parts, which are words of one or two
    characters), no letter or digit, or a number (other than a run of at least
    :data:`MIN_DIGITS` digits, which may be an ID or a date): not a needle.
    """
    text = text.strip()
    if not any(c.isalnum() for c in text):
        return False
    if len(text) > 2 and len({c.lower() for c in set(text) if c.isalnum()}) == 1:
        return False  # a filler run ("XXXXXXXX", "00000000"): a placeholder, and what cleaning writes
    words = _WORDS.findall(text.lower())
    if words and all(w in placeholder_words() for w in words):
        return False  # "ANONYMIZED", "Last Name^First Name": stands in for an identifier
    if len(text) < min_length and not (category in (NAME, PATH_WORD) and is_cjk(text)):
        return False
    if _is_number(text):
        return text.isdigit() and len(text) >= MIN_DIGITS
    return True


#: Root UIDs of DICOM toolkits (pydicom, OFFIS dcmtk, GDCM), written as the creator or the
#: implementation of files they make: they name the software, never an instance. A UID
#: made under such a root (a longer one) is an instance's and stays a needle.
SOFTWARE_ROOT_UIDS = frozenset({PYDICOM_ROOT_UID.rstrip("."), "1.2.276.0.7230010.3", "1.2.826.0.1.3680043.2.1143"})


def is_public_uid(value: str) -> bool:
    """A UID defined by the standard (transfer syntax, SOP class, coding scheme...) or the
    root UID of a DICOM toolkit (:data:`SOFTWARE_ROOT_UIDS`)."""
    return value in UID_dictionary or value in SOFTWARE_ROOT_UIDS


_MONTHS = [calendar.month_abbr[i] for i in range(13)]
_MONTHS_FULL = [calendar.month_name[i] for i in range(13)]


def date_spellings(value: str) -> list[str]:
    """A DICOM date (``YYYYMMDD``, first 8 digits of a DT) in every common spelling.

    ``YYYYMMDD``, ``YYYY-MM-DD``, ``YYYY.MM.DD``, ``YYYY/MM/DD``, ``DD.MM.YYYY``,
    ``DD/MM/YYYY``, ``MM/DD/YYYY``, ``DD-MM-YYYY``, the same without leading
    zeros, ``DD Mon YYYY``, ``DD-Mon-YYYY``, ``Mon DD, YYYY``, full month
    names, and two-digit years (``DD.MM.YY``, ``DD/MM/YY``, ``MM/DD/YY``).
    A value that is not a valid date gives itself only.
    """
    v = value.strip()
    digits = v.replace(".", "").replace("-", "").replace("/", "")[:8]
    if len(digits) < 8 or not digits.isdigit():
        return [v] if v else []
    y, m, d = digits[:4], digits[4:6], digits[6:8]
    try:
        mi, di = int(m), int(d)
        if not (1 <= mi <= 12 and 1 <= di <= 31):
            return [v]
    except ValueError:
        return [v]
    yy, m1, d1 = y[2:], str(mi), str(di)
    mon, month = _MONTHS[mi], _MONTHS_FULL[mi]
    out = [v, f"{y}{m}{d}", f"{y}-{m}-{d}", f"{y}.{m}.{d}", f"{y}/{m}/{d}",
           f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}-{m}-{y}", f"{m}-{d}-{y}",
           f"{d1}.{m1}.{y}", f"{d1}/{m1}/{y}", f"{m1}/{d1}/{y}",
           f"{d} {mon} {y}", f"{d1} {mon} {y}", f"{d}-{mon}-{y}", f"{d}{mon}{y}", f"{mon} {d1}, {y}", f"{mon} {d1} {y}",
           f"{d1} {month} {y}", f"{month} {d1}, {y}", f"{month} {d1} {y}",
           f"{d}.{m}.{yy}", f"{d}/{m}/{yy}", f"{m}/{d}/{yy}", f"{d}-{mon}-{yy}"]
    return list(dict.fromkeys(out))


_SEPARATORS = re.compile(r"[\s\-./_:]+")


def id_spellings(value: str) -> list[str]:
    """An ID with and without its separators (``12-345-678`` and ``12345678``)."""
    v = value.strip()
    out = [v]
    bare = _SEPARATORS.sub("", v)
    if bare != v and bare:
        out.append(bare)
    return out


_NAME_SPLIT = re.compile(r"[\^=\s,;\-]+")


def name_spellings(value: str) -> list[str]:
    """A person name (PN) whole, per component group, and every part of it, in any script."""
    v = value.strip()
    out = [v]
    for group in v.split("="):
        g = group.strip("^ ")
        if g and g != v:
            out.append(g)
            out.append(" ".join(p for p in g.split("^") if p))
    out += [w for w in _NAME_SPLIT.split(v) if w]
    return list(dict.fromkeys(o for o in out if o))


# --------------------------------------------------------------------------- categories


_ADDRESS_WORDS = ("Address", "Telephone", "Country", "Region", "Institution", "Department", "Station", "Location")


def category_of(keyword: str, vr: str, private: bool) -> str:
    """The category of an attribute's values (see :data:`CATEGORIES`)."""
    if vr == "PN":
        return NAME
    if vr in ("DA", "DT") or "Date" in keyword:
        return DATE
    if vr == "UI":
        return UID
    if private:
        return VENDOR_TEXT
    if keyword.endswith(("ID", "IDs", "Number", "Numbers", "Identifier", "Locator")) or "ID" in keyword:
        return ID
    if any(w in keyword for w in _ADDRESS_WORDS):
        return ADDRESS
    return FREE_TEXT


@lru_cache(maxsize=1 << 16)
def keyword_for_tag(tag: int) -> str:
    """pydicom's keyword of ``tag`` (``""`` when it has none), remembered per tag: the
    dictionary lookup of a private tag (no keyword) costs a failed search each time."""
    return _pydicom_keyword(int(tag))


def _values(elem) -> list[str]:
    if elem.VR == "UN" or isinstance(elem.value, (bytes, bytearray)):
        raw = elem.value if isinstance(elem.value, (bytes, bytearray)) else b""
        return [r.decode("ascii").strip() for r in re.findall(rb"[\x20-\x7e]{3,}", bytes(raw))]
    values = elem.value if isinstance(elem.value, pydicom.multival.MultiValue) else [elem.value]
    return [str(v).strip().rstrip("\x00").strip() for v in values if v is not None]


def element_needles(elem, min_length: int, category: str | None = None) -> list[tuple[str, str]]:
    """``(text, category)`` of the needles of one data element's value.

    Binary VRs and code strings (CS: defined terms and enumerated values) give
    none; numbers only as long digit runs; dates, names and IDs in all their
    spellings.
    """
    vr = elem.VR
    if vr in BINARY_VRS or vr == "CS":
        return []
    return _text_needles(int(elem.tag), vr, _values(elem), min_length, category)


def _text_needles(tag: int, vr: str, values: list[str], min_length: int,
                  category: str | None = None) -> list[tuple[str, str]]:
    """:func:`element_needles` of an element of tag ``tag``, VR ``vr`` (not binary, not
    CS) whose values read as ``values`` (each stripped, as :func:`_values` gives them)."""
    keyword = keyword_for_tag(tag) or ""
    cat = category or category_of(keyword, vr, bool((tag >> 16) & 1))
    out: list[str] = []
    for text in values:
        if not text:
            continue
        if is_public_uid(text):
            continue  # a UID of the standard (SOP class, transfer syntax), also in private text
        if vr in NUMERIC_TEXT_VRS and not (text.isdigit() and len(text) >= MIN_DIGITS):
            continue
        if vr in ("DA", "DT"):
            out.extend(date_spellings(text[:8]))
            if len(text) > 8:
                out.append(text)
            continue
        if vr == "PN" or cat == NAME:
            out.extend(name_spellings(text))
            continue
        if cat == ID:
            out.extend(id_spellings(text))
            continue
        out.append(text)
    return [(t, cat) for t in dict.fromkeys(out) if keep_needle(t, min_length, cat)]


#: Private VRs whose ASCII values :func:`_raw_values` reads as pydicom does: text split at
#: backslashes (single-valued LT, ST, UT whole), dates and times as strings (pydicom's
#: default), UIDs, decimal strings. Not PN (a PersonName), IS, UR, UN, binary, SQ.
_RAW_TEXT_VRS = frozenset({"AE", "AS", "DA", "DS", "DT", "LO", "SH", "TM", "UC", "UI"})
_RAW_SINGLE_VRS = frozenset({"LT", "ST", "UT"})


def _raw_values(vr: str, value: bytes) -> list[str] | None:
    """:func:`_values` of a raw element of VR ``vr`` (in :data:`_RAW_TEXT_VRS` or
    :data:`_RAW_SINGLE_VRS`) holding ASCII ``value`` without an escape byte (which
    reads the same in every character set), without converting it; None for a decimal
    string pydicom would refuse (its conversion then raises as before)."""
    text = value.decode("ascii")
    if vr in _RAW_SINGLE_VRS:
        pieces = [text]
    elif vr == "DS":  # multi_string(text.strip(), DSfloat): each number's string, stripped
        pieces = text.strip().rstrip(" \x00").split("\\")
        for p in pieces:
            if p.strip():
                try:
                    float(p)
                except ValueError:
                    return None
    else:
        pieces = text.split("\\")
    return [p.strip().rstrip("\x00").strip() for p in pieces]


def _block_tag(tag) -> int:
    return int(tag) & 0xFFFF00FF


def _name(tag: int) -> str:
    """An attribute's keyword, or ``(GGGG,EEEE)``."""
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _repeat_key(tag: int, raw) -> tuple | None:
    """``(tag, VR, bytes)`` of a raw public element whose needles depend on nothing else
    (an explicit VR other than SQ and UN, ASCII bytes without an escape, which read the
    same in every character set); None for any other element."""
    if not raw.is_raw or (tag >> 16) & 1 or raw.VR in (None, "SQ", "UN"):
        return None
    value = raw.value
    if not isinstance(value, bytes) or not value.isascii() or b"\x1b" in value:
        return None
    return (tag, raw.VR, value)


_DIGIT_RUN = re.compile(rb"[0-9]{%d}" % MIN_DIGITS)


def _gives_no_needle(tag: int, raw, action: str | None) -> bool:
    """True when a raw (not yet converted) element gives no needle whatever its value,
    so that :func:`dataset_needles` skips it without decoding it.

    Only an element read with an explicit VR other than SQ and UN qualifies (its VR
    then stays as read): a public attribute kept or not listed, a private creator, a
    binary or code string value, a time under modified dates, a number (IS, DS) whose
    ASCII bytes hold no run of :data:`MIN_DIGITS` digits.
    """
    if not raw.is_raw:
        return False
    vr = raw.VR
    if vr is None or vr in ("SQ", "UN"):
        return False
    if vr in BINARY_VRS or vr == "CS":
        return True
    if vr in NUMERIC_TEXT_VRS and raw.value is not None and raw.value.isascii() and not _DIGIT_RUN.search(raw.value):
        return True
    if (tag >> 16) & 1:
        return 0x10 <= (tag & 0xFFFF) <= 0xFF
    return action is None or action == "K" or (action == "C" and vr == "TM")


#: Plan actions after which a public element's value never reaches the output as read:
#: removed (X, N), or converted by the table before it is emptied, replaced or cleaned
#: (Z, D, U, C, PSEUDO: every one of them reads the element first).
_REPLACED = frozenset({"X", "N", "Z", "D", "U", "C", "PSEUDO"})
#: ``{(table, options): {tag: the plan's action is in _REPLACED}}``, across files.
_ENGINE_REPLACES: dict[tuple, dict[int, bool]] = {}

#: ``{(table, options): {(tag, VR)}}``: raw elements that give no needle whatever their
#: value (:func:`_gives_no_needle` for any VR but IS and DS), remembered across files.
_NO_NEEDLE: dict[tuple, set] = {}

#: ``{(table, options, min_length): {key: texts}}``: the raw values judged in the last
#: dataset, looked up before judging a value again (the files of a series repeat most
#: values); one dataset's worth is held.
_LAST_REPEATS: dict[tuple, dict] = {}
#: ``{(table, options, min_length): {(source, id(texts)): (texts, needles)}}``: the
#: needles made in the last dataset, per source and judged value.
_LAST_MADE: dict[tuple, dict] = {}


def forget_memos() -> None:
    """Forget what earlier datasets taught (values judged, needles made, tags found to give
    none, texts found specific enough), so the next dataset is judged as in a fresh
    process; the plans per tag (:data:`_ENGINE_REPLACES`) are the table's and stay."""
    _NO_NEEDLE.clear()
    _LAST_REPEATS.clear()
    _LAST_MADE.clear()
    keep_needle.cache_clear()


def dataset_needles(
    ds: pydicom.Dataset, options=(), table: ActionTable | None = None, min_length: int = DEFAULT_MIN_LENGTH
) -> set[Needle]:
    """All needles of one dataset, at every depth, private elements included.

    An element contributes needles unless Table E.1-1 gives it ``K`` under
    ``options``. Elements the table does not list contribute too when they are
    private (odd group), unless the reviewed vocabulary lists the private
    attribute as technical; other unlisted standard elements (pixel and
    geometry attributes, acquisition parameters) do not. Sequences are always
    entered, whatever their action. Under Retain Safe Private, private elements
    of the allow-list (``private_allowlist.tsv``) are kept, hence not needle
    sources (the scan still reads them in the release). A needle's value that is also in a kept
    attribute stays a needle (that kept attribute is a leak to clean, not an
    excuse). Common words (:func:`common_words`) are not needles, except as values
    of direct identifiers; placeholders (:func:`placeholder_words`) never are.
    """
    from neurodeid.deid.rules import load_private_allowlist, plan_for_tag  # lazy: deid imports this module

    table = table or load_table()
    _, private_vocab = vocabulary()
    vocab = common_words()
    # Under Retain Safe Private, allow-listed private elements are kept (sanitised):
    # kept, not needle sources, like K attributes (the scan still reads them).
    safe = load_private_allowlist() if "retain_safe_private" in options else {}
    direct = direct_identifiers()
    found: set[Needle] = set()

    def texts_of(elem, action: str | None) -> list[tuple[str, str]]:
        """``(text, category)`` of the needles of one element (not a sequence)."""
        if elem.tag.is_private_creator:
            return []  # "SIEMENS CSA HEADER": names a vendor's block, not a person
        if (action is None and not elem.tag.is_private) or action == "K":
            return []
        if action == "C" and elem.VR == "TM":
            return []  # modified dates shift whole days: the time of day is kept by design
        if elem.tag.is_private:
            creator = getattr(elem, "private_creator", None) or ""
            if (creator, _block_tag(elem.tag)) in private_vocab:
                return []
            if (creator, elem.tag.group, elem.tag.element & 0xFF) in safe:
                return []
        is_direct = keyword_for_tag(elem.tag) in direct
        return [(text, cat) for text, cat in element_needles(elem, min_length)
                if is_direct or text.strip().lower() not in vocab]

    frozen_options = frozenset(options)
    # a value repeated (per frame, or in the dataset before): judged once
    repeats: dict[tuple, list[tuple[str, str]]] = {}
    previous = _LAST_REPEATS.get((table, frozen_options, min_length), {})

    def repeated(key: tuple | None):
        """The texts of a raw value judged before in this dataset or the last one, or None."""
        texts = repeats.get(key)
        if texts is None:
            texts = previous.get(key)
            if texts is not None:
                repeats[key] = texts
        return texts

    made: dict[tuple, tuple] = {}
    previous_made = _LAST_MADE.get((table, frozen_options, min_length), {})

    def needles_of(where: str, texts: list) -> tuple:
        """The needles of ``texts`` found at ``where``; made once per source and judged
        value (a value judged in this dataset or the last one is the same list)."""
        key = (where, id(texts))
        hit = made.get(key) or previous_made.get(key)
        if hit is None or hit[0] is not texts:  # the list held with its id: never another's
            hit = (texts, tuple(Needle(text, where, cat) for text, cat in texts))
        made[key] = hit
        return hit[1]

    no_needle = _NO_NEEDLE.setdefault((table, frozen_options), set())
    engine_replaces = _ENGINE_REPLACES.setdefault((table, frozen_options), {})
    kept_private = load_private_allowlist() if "retain_safe_private" in options else None

    creators: dict[tuple[int, int], object] = {}  # (id of a dataset, creator tag) -> value

    def creator_of(dataset: pydicom.Dataset, ctag: int):
        """The value of the private creator element ``ctag`` of ``dataset`` (converted, as
        pydicom converts it to name a private element's creator), looked up once."""
        key = (id(dataset), ctag)
        if key not in creators:
            creators[key] = dataset[ctag].value
        return creators[key]

    def removed_private_texts(dataset: pydicom.Dataset, tag: int, raw, action: str | None):
        """``texts_of`` of a raw private element that de-identification removes, read
        from its bytes (the element is not converted: it never reaches the output), or
        None when that is not sure (kept by the allow-list, another VR, non-ASCII bytes,
        an unusual creator): the caller converts it."""
        vr, value = raw.VR, raw.value
        if vr not in _RAW_TEXT_VRS and vr not in _RAW_SINGLE_VRS:
            return None
        if not isinstance(value, bytes) or not value.isascii() or b"\x1b" in value:
            return None
        group, el = tag >> 16, tag & 0xFFFF
        if el < 0x100:
            return None  # a private creator, or an element without a block
        ctag = (group << 16) | (el >> 8)
        if ctag in dataset._dict:
            creator = creator_of(dataset, ctag)  # as pydicom names the element's private_creator
            if not isinstance(creator, str):
                return None
            if kept_private is not None and el >= 0x1000 and (creator.strip(), group, el & 0xFF) in kept_private:
                return None  # the allow-list may keep it: converted as before
        else:
            creator = None
        key = (tag, vr, value, creator)
        texts = repeated(key)
        if texts is None:
            values = _raw_values(vr, value)
            if values is None:
                return None
            texts = repeats[key] = private_texts(tag, vr, values, creator or "", action)
        return texts

    def replaced_public_texts(tag: int, raw, action: str | None):
        """``texts_of`` of a raw public element (explicit VR, ASCII, see
        :func:`_repeat_key`) whose value de-identification removes or replaces (the table
        converts it then, or deletes it: this reading leaves it unconverted, which changes
        nothing), read from its bytes; None otherwise (the caller converts it)."""
        vr = raw.VR
        if vr not in _RAW_TEXT_VRS and vr not in _RAW_SINGLE_VRS:
            return None
        replaced = engine_replaces.get(tag)
        if replaced is None:
            replaced = engine_replaces[tag] = plan_for_tag(tag, frozen_options, table).action in _REPLACED
        if not replaced:
            return None
        values = _raw_values(vr, raw.value)
        if values is None:
            return None
        if action is None or action == "K" or (action == "C" and vr == "TM"):
            return []
        is_direct = keyword_for_tag(tag) in direct
        return [(text, cat) for text, cat in _text_needles(tag, vr, values, min_length)
                if is_direct or text.strip().lower() not in vocab]

    def maybe_kept_private(dataset: pydicom.Dataset, tag: int) -> bool:
        """Whether de-identification may keep the private element ``tag`` (the
        allow-list under Retain Safe Private; an unusual creator: maybe)."""
        if kept_private is None or (tag & 0xFFFF) < 0x1000:
            return False
        ctag = (tag >> 16 << 16) | ((tag & 0xFFFF) >> 8)
        if ctag not in dataset._dict:
            return False
        creator = dataset[ctag].value
        return not isinstance(creator, str) or (creator.strip(), tag >> 16, tag & 0xFF) in kept_private

    def private_texts(tag: int, vr: str, values: list[str], creator: str, action: str | None):
        """``texts_of`` of a private element (not a creator, not a sequence)."""
        if action == "K":
            return []
        if action == "C" and vr == "TM":
            return []
        if (creator, _block_tag(tag)) in private_vocab:
            return []
        if (creator, tag >> 16, tag & 0xFF) in safe:
            return []
        is_direct = keyword_for_tag(tag) in direct
        return [(text, cat) for text, cat in _text_needles(tag, vr, values, min_length)
                if is_direct or text.strip().lower() not in vocab]

    def walk(dataset: pydicom.Dataset, path: str, in_private: bool = False) -> None:
        """Needles of ``dataset`` (``in_private``: inside a private sequence that the
        allow-list may keep whole: every element converted, as before)."""
        for btag in sorted(dataset._dict, key=int):  # ints compare faster than tags
            tag = int(btag)
            raw = dataset._dict[btag]
            if raw.is_raw and (tag, raw.VR) in no_needle:
                continue
            action = table.action(tag, options)
            if _gives_no_needle(tag, raw, action):
                if raw.is_raw and raw.VR not in NUMERIC_TEXT_VRS:
                    no_needle.add((tag, raw.VR))  # decided by tag and VR alone
                continue
            texts = None
            if (tag >> 16) & 1 and raw.is_raw and not in_private:
                texts = removed_private_texts(dataset, tag, raw, action)
            key = None
            if texts is None:
                key = _repeat_key(tag, raw)
                texts = repeated(key)
                if texts is None and key is not None and not in_private:
                    texts = replaced_public_texts(tag, raw, action)
                    if texts is not None:
                        repeats[key] = texts
            if texts is None:
                elem = dataset[btag]
                if elem.VR == "SQ":
                    where = f"{path}{_name(tag)}"
                    inner_private = in_private or bool((tag >> 16) & 1) and maybe_kept_private(dataset, tag)
                    for i, item in enumerate(elem.value or []):
                        walk(item, f"{where}[{i}].", inner_private)
                    continue
                texts = texts_of(elem, action)
                if key is not None:
                    repeats[key] = texts
            if texts:
                found.update(needles_of(f"{path}{_name(tag)}", texts))

    walk(ds, "")
    _LAST_REPEATS[(table, frozen_options, min_length)] = repeats
    _LAST_MADE[(table, frozen_options, min_length)] = made
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        v = str(meta.get("MediaStorageSOPInstanceUID", "") or "")
        if v and not is_public_uid(v):
            found.add(Needle(v, "MediaStorageSOPInstanceUID", UID))
        software = str(meta.get("ImplementationClassUID", "") or "").strip()
        if software:  # the software that wrote the file (dcmtk, a vendor's), named again as creator
            found.discard(Needle(software, "InstanceCreatorUID", UID))
    return found


#: Splits a file or folder name into words: anything that is not a letter or digit
#: (any script), and the change from letters to digits.
_PATH_SPLIT = re.compile(r"[\W_]+")
_GLUE = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])|(?<=[a-z])(?=[A-Z])")


def path_words(part: str) -> list[str]:
    """The words of one file or folder name: split on punctuation, and glued sub-tokens
    (letters/digits changes, camelCase) too."""
    out = []
    for word in _PATH_SPLIT.split(part):
        if not word:
            continue
        out.append(word)
        subs = [s for s in _GLUE.split(word) if s]
        if len(subs) > 1:
            out.extend(subs)
    return out


def path_needles(relative_paths, min_length: int = DEFAULT_MIN_LENGTH) -> set[Needle]:
    """Needles from the words of raw file and folder names.

    Names are split on anything that is not a letter or digit (any script) and
    on glued sub-tokens; words in the stop list (``dicom``, ``series``, ``t1``,
    vendors, file extensions...), vocabulary and short numbers are dropped.
    """
    stop = path_stopwords() | own_release_words()
    vocab, _ = vocabulary()
    found: set[Needle] = set()
    for rel in relative_paths:
        for part in str(rel).split("/"):
            for word in path_words(part):
                low = word.lower()
                if low in stop or low in vocab or not keep_needle(word, min_length, PATH_WORD):
                    continue
                found.add(Needle(word, PATH_SOURCE, PATH_WORD))
    return found


def read_file_needles(path: str | os.PathLike, options=(), min_length: int = DEFAULT_MIN_LENGTH) -> set[Needle]:
    """Needles of one raw DICOM file (header only; pixel data is never read)."""
    ds = pydicom.dcmread(os.fspath(path), stop_before_pixels=True, force=True)
    return dataset_needles(ds, options, min_length=min_length)


def save_needles(path: str | os.PathLike, needles: set[Needle]) -> None:
    """Write needles as sorted JSON rows ``[text, source, category]`` (private)."""
    rows = sorted({(n.text, n.source, n.category) for n in needles})
    write_text_atomic(path, json.dumps(rows, ensure_ascii=False, indent=0) + "\n")


def load_needles(paths, min_length: int | None = None) -> list[Needle]:
    """Needles from saved lists; with ``min_length``, only those the audit looks for
    at that length (the lists are collected with a lower bound, the config decides)."""
    rows: set[tuple[str, str, str]] = set()
    for p in paths:
        rows.update((r[0], r[1], r[2] if len(r) > 2 else FREE_TEXT)
                    for r in json.loads(Path(p).read_text(encoding="utf-8")))
    if min_length is not None:
        rows = {r for r in rows if keep_needle(r[0], min_length, r[2])}
    return [Needle(*r) for r in sorted(rows)]


def collect_series_needles(files, options, min_length: int, out) -> tuple[int, int]:
    """The audit's needles of a raw series, saved to ``out`` (private); a file the index
    accepted but whose header cannot be read in full is reported on stderr and skipped.

    Returns ``(needles, unreadable files)``.
    """
    import sys

    needles: set = set()
    failed = 0
    for path in files:
        try:
            needles |= read_file_needles(path, options, min_length=min_length)
        except Exception as exc:  # noqa: BLE001 - a file the index accepted but that cannot be parsed fully
            failed += 1
            print(f"needles: {path}: header cannot be read in full ({type(exc).__name__}: {exc})", file=sys.stderr)
    save_needles(out, needles)
    return len(needles), failed
