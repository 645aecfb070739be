"""A minimal top-level DICOM element walker: the raw bytes of a few elements.

pydicom parses every element into Python objects (about 1 ms per MR header); the index
and the geometry check need a dozen values each, read here straight from the bytes of
the file's start. Anything unusual (no preamble, deflated or unknown transfer syntax, a
VR the transfer syntax does not promise, a header longer than what was read) returns
None and the caller uses pydicom instead. Tested against pydicom on every shared file.
"""

from __future__ import annotations

import struct

__all__ = ["raw_elements", "FastHeader"]

#: Explicit-VR value representations, as their two bytes; those with a 2-byte reserved
#: field and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
ALL_VRS = LONG_VRS | frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO",
                                b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})
#: Bytes read from the start of a file (a header longer than this: None).
READ_BYTES = 1 << 18


class _Bail(Exception):
    pass


def _skip_undefined(buf: bytes, pos: int, explicit: bool, little: bool) -> int:
    """Position after an undefined-length sequence starting at ``pos`` (first item tag)."""
    e = "<" if little else ">"
    n = len(buf)
    while True:
        if pos + 8 > n:
            raise _Bail
        g, el, ln = struct.unpack_from(e + "HHI", buf, pos)
        pos += 8
        tag = (g << 16) | el
        if tag == 0xFFFEE0DD:
            return pos
        if tag != 0xFFFEE000:
            raise _Bail
        if ln != 0xFFFFFFFF:
            pos += ln
            continue
        # undefined-length item: walk its elements until the item delimiter
        while True:
            if pos + 8 > n:
                raise _Bail
            g, el = struct.unpack_from(e + "HH", buf, pos)
            tag = (g << 16) | el
            if tag == 0xFFFEE00D:
                pos += 8
                break
            pos = _skip_element(buf, pos, explicit, little)


def _skip_element(buf: bytes, pos: int, explicit: bool, little: bool) -> int:
    e = "<" if little else ">"
    g, el = struct.unpack_from(e + "HH", buf, pos)
    vr, ln, pos = _header(buf, pos + 4, explicit, e, g)
    if ln == 0xFFFFFFFF:
        return _skip_undefined(buf, pos, explicit and vr != b"UN", little if vr != b"UN" else True)
    return pos + ln


def _header(buf, pos, explicit, e, group):
    if explicit and group != 0xFFFE:
        vr = buf[pos : pos + 2]
        if vr not in ALL_VRS:
            raise _Bail  # not the VR encoding the transfer syntax promises
        if vr in LONG_VRS:
            (ln,) = struct.unpack_from(e + "I", buf, pos + 4)
            return vr, ln, pos + 8
        (ln,) = struct.unpack_from(e + "H", buf, pos + 2)
        return vr, ln, pos + 4
    (ln,) = struct.unpack_from(e + "I", buf, pos)
    return None, ln, pos + 4


class FastHeader:
    """What :func:`raw_elements` found: the file meta's ``transfer_syntax`` and
    ``media_sop_class`` (str), the byte order (``little``), and ``values``: tag ->
    raw value bytes of every wanted top-level element present before the stop tag."""

    __slots__ = ("transfer_syntax", "media_sop_class", "little", "values")

    def __init__(self, transfer_syntax, media_sop_class, little, values):
        self.transfer_syntax = transfer_syntax
        self.media_sop_class = media_sop_class
        self.little = little
        self.values = values


_TS_READ = {"1.2.840.10008.1.2": (False, True), "1.2.840.10008.1.2.1": (True, True),
            "1.2.840.10008.1.2.2": (True, False)}


def raw_elements(path, wanted, stop: int, read_bytes: int = READ_BYTES) -> FastHeader | None:
    """Raw values of the ``wanted`` top-level tags (ints) of a DICOM Part 10 file, walking
    the elements up to the first tag >= ``stop``; None when unsure (no preamble, a
    transfer syntax other than the uncompressed native ones and the encapsulated ones
    with explicit VR little endian, a VR that does not match, or a header that does not
    end within ``read_bytes``).
    """
    try:
        with open(path, "rb") as fp:
            buf = fp.read(read_bytes)
        if len(buf) < 140 or buf[128:132] != b"DICM":
            return None
        # file meta group: always explicit VR little endian
        pos = 132
        ts = sop = None
        while pos + 8 <= len(buf):
            g, el = struct.unpack_from("<HH", buf, pos)
            if g != 0x0002:
                break
            vr, ln, vpos = _header(buf, pos + 4, True, "<", g)
            if ln == 0xFFFFFFFF or vpos + ln > len(buf):
                return None
            if el == 0x0010:
                ts = buf[vpos : vpos + ln].rstrip(b"\0 ").decode("ascii")
            elif el == 0x0002:
                sop = buf[vpos : vpos + ln].rstrip(b"\0 ").decode("ascii")
            pos = vpos + ln
        if ts is None:
            return None
        # every compressed transfer syntax encodes the data set in explicit VR little
        # endian; deflate (1.2.840.10008.1.2.1.99) compresses the data set itself
        explicit, little = _TS_READ.get(ts, (True, True))
        if ts == "1.2.840.10008.1.2.1.99" or not (ts in _TS_READ or ts.startswith("1.2.840.10008.1.2.4.")
                                                 or ts.startswith("1.2.840.10008.1.2.5")):
            return None
        e = "<" if little else ">"
        out: dict = {}
        n = len(buf)
        hh = struct.Struct(e + "HH").unpack_from
        short = struct.Struct(e + "H").unpack_from
        long_ = struct.Struct(e + "I").unpack_from
        long_vr, all_vr = LONG_VRS, ALL_VRS
        while True:
            if pos + 8 > n:
                return None  # header longer than we read: let pydicom do it
            g, el = hh(buf, pos)
            tag = (g << 16) | el
            if tag >= stop:
                break
            if explicit:
                vr = buf[pos + 4 : pos + 6]
                if vr in long_vr:
                    ln = long_(buf, pos + 8)[0]
                    vpos = pos + 12
                elif vr in all_vr:
                    ln = short(buf, pos + 6)[0]
                    vpos = pos + 8
                else:
                    return None
            else:
                vr = None
                ln = long_(buf, pos + 4)[0]
                vpos = pos + 8
            if ln == 0xFFFFFFFF:
                pos = _skip_undefined(buf, vpos, explicit and vr != b"UN", little if vr != b"UN" else True)
                continue
            if vpos + ln > n:
                return None
            if tag in wanted:
                out[tag] = buf[vpos : vpos + ln]
            pos = vpos + ln
        return FastHeader(ts, sop or "", little, out)
    except (_Bail, struct.error, UnicodeDecodeError, OSError):
        return None
