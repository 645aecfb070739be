"""The re-read check of a written file, by a strict walk of its bytes.

After writing, :mod:`neurodeid.deid.series` re-reads every file and checks that it
parses and carries the SOP UIDs of the dataset it was written from. pydicom's reader
builds a Python object per element for that (as long as the first read, on enhanced
files). :func:`written_sop_uids` walks the written bytes instead and is stricter than
pydicom's reader: the preamble and ``DICM``, the file meta group (explicit VR little
endian, its group length exact), then every element of the data set at every depth,
pixel data and what follows included, in ascending tag order, with a known VR, a
length that fits, items and delimiters where they must be, sequences and items of
defined length ending exactly where their length says, the last element ending at
the last byte. It returns the two top-level UID values as written, or None as soon as
anything is unusual (an implicit VR or big-endian file, an undefined length other than
a sequence's or encapsulated pixel data's): the caller then re-reads with pydicom, as
before.
"""

from __future__ import annotations

import re
import struct

from ..dicomfast import ALL_VRS, LONG_VRS

__all__ = ["uid_bytes", "written_sop_uids"]

#: Transfer syntaxes whose data set is explicit VR little endian (not deflated): the
#: explicit one and the encapsulated ones this walker knows.
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_ENCAPSULATED_PREFIXES = ("1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5")
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_SOP_CLASS, _SOP_INSTANCE = 0x00080016, 0x00080018
_UID_RE = re.compile(r"[0-9.]+")
_HH = struct.Struct("<HH").unpack_from
_HHL = struct.Struct("<HHL").unpack_from
_H = struct.Struct("<H").unpack_from
_L = struct.Struct("<L").unpack_from


class _Unusual(Exception):
    """The bytes are not what this walker accepts: re-read with pydicom."""


def _element(buf: bytes, pos: int, end: int, top: bool, found: dict | None) -> tuple[int, int]:
    """Walk the element at ``pos`` (explicit VR little endian); return ``(tag, next position)``."""
    if pos + 8 > end:
        raise _Unusual
    group, elem = _HH(buf, pos)
    tag = (group << 16) | elem
    vr = buf[pos + 4 : pos + 6]
    if group == 0xFFFE or vr not in ALL_VRS:
        raise _Unusual
    if vr in LONG_VRS:
        if pos + 12 > end or buf[pos + 6 : pos + 8] != b"\x00\x00":
            raise _Unusual
        (length,) = _L(buf, pos + 8)
        vpos = pos + 12
    else:
        (length,) = _H(buf, pos + 6)
        vpos = pos + 8
    if length == _UNDEFINED:
        if vr == b"SQ":
            return tag, _items(buf, vpos, end, undefined=True)
        if top and tag == _PIXEL_DATA and vr in (b"OB", b"OW"):
            return tag, _fragments(buf, vpos, end)
        raise _Unusual
    nxt = vpos + length
    if nxt > end:
        raise _Unusual
    if vr == b"SQ":
        if _items(buf, vpos, nxt, undefined=False) != nxt:
            raise _Unusual
    elif found is not None and tag in found:
        if vr != b"UI":
            raise _Unusual  # a wanted UID written with another VR
        found[tag] = buf[vpos:nxt]
    return tag, nxt


def _elements(buf: bytes, pos: int, end: int, top: bool, found: dict | None, item_end: bool) -> int:
    """Walk a data set's elements from ``pos``: to ``end`` exactly, or (``item_end``) to an
    item delimiter; return the position after it."""
    last = -1
    while pos < end:
        if item_end and pos + 8 <= end and _HHL(buf, pos)[:2] == (0xFFFE, 0xE00D):
            if _L(buf, pos + 4)[0] != 0:
                raise _Unusual
            return pos + 8
        tag, pos = _element(buf, pos, end, top, found)
        if tag <= last:
            raise _Unusual
        last = tag
    if item_end or pos != end:
        raise _Unusual
    return pos


def _items(buf: bytes, pos: int, end: int, undefined: bool) -> int:
    """Walk a sequence's items from ``pos``: to ``end`` exactly, or (``undefined``) to the
    sequence delimiter; return the position after the sequence."""
    while True:
        if not undefined and pos == end:
            return pos
        if pos + 8 > end:
            raise _Unusual
        group, elem, length = _HHL(buf, pos)
        tag = (group << 16) | elem
        pos += 8
        if undefined and tag == _SEQ_END:
            if length != 0:
                raise _Unusual
            return pos
        if tag != _ITEM:
            raise _Unusual
        if length == _UNDEFINED:
            pos = _elements(buf, pos, end, False, None, item_end=True)
        else:
            if pos + length > end:
                raise _Unusual
            pos = _elements(buf, pos, pos + length, False, None, item_end=False)


def _fragments(buf: bytes, pos: int, end: int) -> int:
    """Walk encapsulated pixel data (items of defined length, then the sequence delimiter)."""
    while True:
        if pos + 8 > end:
            raise _Unusual
        group, elem, length = _HHL(buf, pos)
        tag = (group << 16) | elem
        pos += 8
        if tag == _SEQ_END:
            if length != 0:
                raise _Unusual
            return pos
        if tag != _ITEM or length == _UNDEFINED or pos + length > end:
            raise _Unusual
        pos += length


def _meta(buf: bytes) -> tuple[str, int]:
    """The transfer syntax and the end of the file meta group (its group length exact)."""
    if len(buf) < 144 or buf[128:132] != b"DICM" or buf[132:138] != b"\x02\x00\x00\x00UL":
        raise _Unusual
    if _H(buf, 138)[0] != 4:
        raise _Unusual
    end = 144 + _L(buf, 140)[0]
    if end > len(buf):
        raise _Unusual
    found = {0x00020010: None}
    _elements(buf, 144, end, False, found, item_end=False)
    if end + 2 <= len(buf) and _H(buf, end)[0] == 0x0002:
        raise _Unusual  # more group 2 elements than the group length says
    ts = found[0x00020010]
    if ts is None:
        raise _Unusual
    return ts.rstrip(b"\x00 ").decode("ascii"), end


def written_sop_uids(buf: bytes) -> tuple[bytes, bytes] | None:
    """``(SOPClassUID, SOPInstanceUID)`` value bytes (padding included) of a written file
    that the strict walk accepts (see the module docstring); None when it does not."""
    try:
        ts, pos = _meta(buf)
        if ts != _EXPLICIT_LE and not ts.startswith(_ENCAPSULATED_PREFIXES):
            return None
        found = {_SOP_CLASS: None, _SOP_INSTANCE: None}
        _elements(buf, pos, len(buf), True, found, item_end=False)
    except (_Unusual, struct.error, UnicodeDecodeError, RecursionError):
        return None
    if found[_SOP_CLASS] is None or found[_SOP_INSTANCE] is None:
        return None
    return found[_SOP_CLASS], found[_SOP_INSTANCE]


def uid_bytes(value) -> bytes | None:
    """A single UID value of digits and dots as pydicom writes it (a NUL pad to even
    length), or None for any other value (pydicom's reading would strip or split it)."""
    if not isinstance(value, str) or not _UID_RE.fullmatch(value):
        return None
    data = value.encode("ascii")
    return data + b"\x00" if len(data) % 2 else data
