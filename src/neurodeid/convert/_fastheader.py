"""A minimal top-level DICOM element walker for the handful of geometry fields.

pydicom parses every element into Python objects (about 1 ms per MR header); the
geometry check only needs a dozen values, read here straight from the bytes. Anything
unusual (no preamble, deflate, odd lengths, multi-frame) returns None and the caller
uses pydicom instead. Tested against pydicom on every suite file.
"""

from __future__ import annotations

import struct

__all__ = ["fast_geometry_fields"]

_WANTED = {
    0x00080008: "ImageType",
    0x00180050: "SliceThickness",
    0x00180086: "EchoNumbers",
    0x00180088: "SpacingBetweenSlices",
    0x00181120: "GantryDetectorTilt",
    0x00200013: "InstanceNumber",
    0x00200032: "ImagePositionPatient",
    0x00200037: "ImageOrientationPatient",
    0x00280008: "NumberOfFrames",
    0x00280010: "Rows",
    0x00280011: "Columns",
    0x00280030: "PixelSpacing",
}
_STOP = 0x00280031
_LONG_VR = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_ALL_VR = _LONG_VR | {
    b"AE",
    b"AS",
    b"AT",
    b"CS",
    b"DA",
    b"DS",
    b"DT",
    b"FL",
    b"FD",
    b"IS",
    b"LO",
    b"LT",
    b"PN",
    b"SH",
    b"SL",
    b"SS",
    b"ST",
    b"TM",
    b"UI",
    b"UL",
    b"US",
}
_US = {0x00280010, 0x00280011}
_READ = 1 << 18


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
        if vr not in _ALL_VR:
            raise _Bail  # not the VR encoding the transfer syntax promises
        if vr in _LONG_VR:
            (ln,) = struct.unpack_from(e + "I", buf, pos + 4)
            return vr, ln, pos + 8
        (ln,) = struct.unpack_from(e + "H", buf, pos + 2)
        return vr, ln, pos + 4
    (ln,) = struct.unpack_from(e + "I", buf, pos)
    return None, ln, pos + 4


def fast_geometry_fields(path) -> dict | None:
    """Geometry fields of a DICOM file as ``{keyword: value}``; None when unsure.

    Values: text fields as a list of strings (backslash-split), Rows/Columns as int.
    """
    try:
        with open(path, "rb") as fp:
            buf = fp.read(_READ)
        if len(buf) < 140 or buf[128:132] != b"DICM":
            return None
        # file meta group: always explicit VR little endian
        pos = 132
        ts = None
        while pos + 8 <= len(buf):
            g, el = struct.unpack_from("<HH", buf, pos)
            if g != 0x0002:
                break
            vr, ln, vpos = _header(buf, pos + 4, True, "<", g)
            if ln == 0xFFFFFFFF:
                return None
            if el == 0x0010:
                ts = buf[vpos : vpos + ln].rstrip(b"\0 ").decode("ascii")
            pos = vpos + ln
        if ts is None or ts == "1.2.840.10008.1.2.1.99":
            return None
        explicit = ts != "1.2.840.10008.1.2"
        little = ts != "1.2.840.10008.1.2.2"
        e = "<" if little else ">"
        out: dict = {}
        n = len(buf)
        hh = struct.Struct(e + "HH").unpack_from
        short = struct.Struct(e + "H").unpack_from
        long_ = struct.Struct(e + "I").unpack_from
        long_vr, all_vr, wanted = _LONG_VR, _ALL_VR, _WANTED
        while True:
            if pos + 8 > n:
                return None  # header longer than we read: let pydicom do it
            g, el = hh(buf, pos)
            tag = (g << 16) | el
            if tag >= _STOP:
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
            key = wanted.get(tag)
            if key is not None:
                raw = buf[vpos : vpos + ln]
                if tag in _US:
                    if ln != 2:
                        return None
                    out[key] = short(raw, 0)[0]
                else:
                    out[key] = [s.strip() for s in raw.rstrip(b"\0 ").decode("latin-1").split("\\")]
            pos = vpos + ln
        return out
    except (_Bail, struct.error, UnicodeDecodeError, OSError):
        return None
