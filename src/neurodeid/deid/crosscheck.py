"""Kept values that repeat the subject's identifying values are cleaned.

Table E.1-1 keeps some attributes that can carry free text (``SequenceName``,
coil names, code meanings) and the safe-private allow-list keeps Siemens CSA
headers whose items (``ImageHistory``, ``ImaCoilString``...) are text. A scanner
or a person can copy a patient's name, ID or birth date into any of them. After
the table's actions, every kept text value of the de-identified dataset (at every
depth) and every CSA item value is compared with the identifying values of the
same raw dataset (:func:`neurodeid.audit.needles.dataset_needles`, matched as the
release audit matches), and each match is overwritten with ``X`` of the same
length (so CSA item lengths and offsets stay valid for converters).
"""

from __future__ import annotations

from functools import lru_cache

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from neurodeid.audit.needles import UID, Needle
from neurodeid.deid.bytesmemo import memo_by_bytes

#: Text VRs whose kept values are checked (UIDs are remapped, dates shifted elsewhere).
_TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})

#: VRs that never hold text of :data:`_TEXT_VRS` nor a CSA header: numbers, dates, times,
#: UIDs. A raw element read with one of them is not checked, and so not converted: it is
#: written as it was read (as is raw text in which no needle is found).
_UNCHECKED_VRS = frozenset(
    {"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT", "DA", "DT", "TM", "DS", "IS", "UI", "UR"}
)
#: Binary VRs: checked (as a CSA header) only in private elements.
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})


def _unchecked(tag: int, raw, matcher, clear: set) -> bool:
    """True when the raw (not yet converted) element ``raw`` holds no text to clean: it
    cannot hold checked text, or it is ASCII text in which ``matcher`` finds nothing
    (``clear``: values in which it found nothing before, added to).

    The values of a text element are pieces of its bytes split at backslashes, less
    their padding: a piece's match is a match in the whole, whose edges (a backslash, a
    space) end a token as the ends of the piece do. Without an escape byte, ASCII bytes
    read the same in every character set.
    """
    if not raw.is_raw:
        return False
    vr = raw.VR
    if vr in _TEXT_VRS:
        value = raw.value
        if value in clear:
            return True
        if value is not None and value.isascii() and b"\x1b" not in value and not matcher.find(value.decode("ascii")):
            if len(value) <= _CLEAR_LONGEST:
                clear.add(value)
            return True
        return False
    return vr in _UNCHECKED_VRS or (vr in _BINARY_VRS and not (tag >> 16) & 1)


def _fill(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for a, b in spans:
        for i in range(a, min(b, len(chars))):
            chars[i] = "X"
    return "".join(chars)


def _spans(matcher, text: str) -> list[tuple[int, int]]:
    return [(o, o + len(n.text)) for o, n in matcher.find(text)]


#: ``[matcher, values]``: the raw ASCII text values in which the matcher of the last
#: dataset found no needle (the files of a series repeat most values and most needles).
_LAST_CLEAR: list = [None, set()]
#: Values held at most (then forgotten), each at most ``_CLEAR_LONGEST`` bytes: a bound
#: on the memory of a long series.
_CLEAR_MAX = 50_000
_CLEAR_LONGEST = 1024


def _clear_values(matcher) -> set:
    """The set of raw text values already found clear by ``matcher`` (empty for a matcher
    other than the last dataset's)."""
    if _LAST_CLEAR[0] is not matcher or len(_LAST_CLEAR[1]) > _CLEAR_MAX:
        _LAST_CLEAR[0], _LAST_CLEAR[1] = matcher, set()
    return _LAST_CLEAR[1]


@lru_cache(maxsize=4)
def _matcher(texts: frozenset):
    """The matcher of the needle texts ``texts`` (one per text): a match is a span of the
    text whatever the needle's source, so the files of a series whose needles read the
    same share one."""
    from neurodeid.audit import Matcher

    return Matcher([Needle(t, "") for t in sorted(texts)])


def forget_memos() -> None:
    """Forget the values found clear and the matchers made (a new series starts cold);
    :func:`_clean_csa`'s memo is emptied by :func:`neurodeid.deid.bytesmemo.forget_all`."""
    _LAST_CLEAR[0], _LAST_CLEAR[1] = None, set()
    _matcher.cache_clear()


@memo_by_bytes()
def _clean_csa(value: bytes, texts: frozenset) -> bytes | None:
    """``value`` with every match of ``texts`` in the item values of a Siemens CSA2 header
    overwritten with ``X`` (lengths kept); None when it is not one or nothing matched.
    Remembered for the last few values (a series header repeats in every file)."""
    from neurodeid.audit import csa_items

    matcher = _matcher(texts)
    if not matcher.occurs_in_bytes(value):
        return None  # no spelling anywhere in the bytes: none in an item's text
    items = csa_items(value)
    if not items:
        return None
    buf = bytearray(value)
    changed = False
    for _name, a, b in items:
        text = bytes(buf[a:b]).decode("latin-1")
        for s, e in _spans(matcher, text):
            buf[a + s : a + min(e, b - a)] = b"X" * (min(e, b - a) - s)
            changed = True
    return bytes(buf) if changed else None


def clean_kept_values(ds: Dataset, needles: set[Needle] | list[Needle]) -> list[str]:
    """Overwrite every occurrence of ``needles`` in the kept text of ``ds`` (in place).

    Parameters
    ----------
    ds : Dataset
        A de-identified dataset (after the table's actions).
    needles : iterable of Needle
        The identifying values of the same raw dataset; UIDs are ignored (they
        are remapped by the engine).

    Returns
    -------
    list of str
        The element paths that were cleaned (for the de-identification report).
    """
    # one needle per text: a match is a span of the text whatever the needle's source
    # (an enhanced file repeats each per-frame value under as many sources as frames)
    texts = frozenset({n.text for n in needles if n.category != UID})
    matcher = _matcher(texts)
    if matcher.empty:
        return []
    cleaned: list[str] = []
    clear = _clear_values(matcher)

    def walk(dataset: Dataset, path: str) -> None:
        for tag in sorted(dataset._dict, key=int):  # ints compare faster than tags
            if _unchecked(tag, dataset._dict[tag], matcher, clear):
                continue
            elem = dataset[tag]
            if elem.VR == "SQ":
                where = f"{path}{elem.keyword or elem.tag}"
                for i, item in enumerate(elem.value or []):
                    walk(item, f"{where}[{i}].")
                continue
            value = elem.value
            if isinstance(value, (bytes, bytearray)) and elem.tag.is_private:
                clean = _clean_csa(bytes(value), texts)
                if clean is not None:
                    elem.value = clean
                    cleaned.append(f"{path}{elem.keyword or elem.tag}")
                continue
            if elem.VR not in _TEXT_VRS or value is None:
                continue
            values = list(value) if isinstance(value, MultiValue) else [value]
            new, changed = [], False
            for v in values:
                text = str(v)
                spans = _spans(matcher, text)
                if spans:
                    text, changed = _fill(text, spans), True
                new.append(text)
            if changed:
                elem.value = new if len(new) > 1 else new[0]
                cleaned.append(f"{path}{elem.keyword or elem.tag}")

    walk(ds, "")
    return cleaned
