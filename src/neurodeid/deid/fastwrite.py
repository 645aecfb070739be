"""The bytes ``pydicom.dcmwrite(.., enforce_file_format=True)`` writes, built faster.

pydicom writes every element through :func:`pydicom.filewriter.write_data_element`
(a buffer, a tag write, a length write per element: most of the time of writing a
de-identified file). Here the elements pydicom would write as they were read (raw
elements, in the encoding they were read in) get their header packed directly and
their bytes joined, and sequences are walked the same way; every other element (a
value the table changed, a converted element) and every dataset pydicom would
re-encode (an item made in memory, another encoding or character set) is written by
pydicom's own functions. The result is the same bytes, by construction: the same
rules, in the same order, with the same side effects on the dataset (the
SpecificCharacterSet lookup, the PixelData length flag).

Only little-endian transfer syntaxes that pydicom writes as they are (implicit VR,
explicit VR, and encapsulated explicit VR; not deflated, not private) take this path;
:func:`encode_file` returns None for anything else, and on any error, so that the
caller writes with pydicom (which then raises its own error, word for word).
"""

from __future__ import annotations

import struct
from copy import deepcopy

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.multival import MultiValue
from pydicom.filewriter import validate_file_meta, write_data_element, write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pydicom.valuerep import AMBIGUOUS_VR, EXPLICIT_VR_LENGTH_32, PersonName

__all__ = ["encode_file"]

_LONG = frozenset(str(v) for v in EXPLICIT_VR_LENGTH_32)
_UNDEFINED = 0xFFFFFFFF
_SEQ_DELIM = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_ITEM_DELIM = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_ITEM_UNDEFINED = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_ITEM_TAG = b"\xfe\xff\x00\xe0"
_TAG = struct.Struct("<HH").pack
_TAG_UL = struct.Struct("<HHL").pack
_TAG_VR_US = struct.Struct("<HH2sH").pack
_TAG_VR_UL = struct.Struct("<HH2s2xL").pack
_UL = struct.Struct("<L").pack
_BINARY_VRS = frozenset({"OB", "OW"})


class _Unsupported(Exception):
    """Something pydicom would write another way: the caller falls back to pydicom."""


def _header(tag: int, vr: str | None, length: int, implicit: bool) -> bytes:
    """The element header pydicom writes for ``tag`` (little endian)."""
    if implicit:
        return _TAG_UL(tag >> 16, tag & 0xFFFF, length)
    if vr in _LONG:
        return _TAG_VR_UL(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)
    if length == _UNDEFINED or length > 0xFFFF:
        raise _Unsupported  # pydicom warns and writes UN, or an undefined short header
    return _TAG_VR_US(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)


def _pydicom_bytes(write, obj, encodings, implicit: bool) -> bytes:
    """What pydicom's ``write(fp, obj, encodings)`` puts in a fresh buffer."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write(fp, obj, encodings)
    return fp.getvalue()


def _raw_element(out: list, tag: int, elem, implicit: bool) -> None:
    """A raw element as :func:`write_data_element` writes it: its bytes as read."""
    vr, value = elem.VR, elem.value
    if not isinstance(value, bytes) or (not implicit and (vr is None or len(vr) != 2)):
        raise _Unsupported
    undefined = elem.length == _UNDEFINED
    if undefined and tag == 0x7FE00010 and not value.startswith(_ITEM_TAG):
        raise _Unsupported  # pydicom raises: not encapsulated
    out.append(_header(tag, vr, _UNDEFINED if undefined else len(value), implicit))
    out.append(value)
    if undefined:
        out.append(_SEQ_DELIM)


def _binary_element(out: list, tag: int, elem, implicit: bool) -> None:
    """An OB/OW element holding bytes (pixel data) as ``write_OBvalue``/``write_OWvalue`` write it."""
    value = elem.value
    undefined = elem.is_undefined_length
    if undefined and tag == 0x7FE00010 and not value.startswith(_ITEM_TAG):
        raise _Unsupported
    pad = b"\x00" if len(value) % 2 else b""
    out.append(_header(tag, elem.VR, _UNDEFINED if undefined else len(value) + len(pad), implicit))
    out.append(value)
    if pad:
        out.append(pad)
    if undefined:
        out.append(_SEQ_DELIM)


#: VRs pydicom writes with ``write_string`` (UI padded with a NUL, the others with a space)
#: or ``write_text`` (space-padded, encoded in the character set).
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UR", "UI"})
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
#: Character sets (first of the converted list) in which ASCII text encodes as ASCII,
#: with no escape sequence.
_ASCII_SAFE = frozenset({"iso8859", "latin_1", "UTF8"})


def _string_value(vr: str, value, encodings: list[str]) -> bytes | None:
    """The value bytes pydicom writes for a string element holding ASCII ``value`` (a
    ``str`` or a list of them), or None for anything else (pydicom writes it)."""
    if vr in _TEXT_VRS:
        if encodings[0] not in _ASCII_SAFE:
            return None
    elif vr not in _STRING_VRS:
        return None
    if value is None:
        return b""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (MultiValue, list, tuple)) and all(isinstance(v, str) for v in value):
        text = "\\".join(value)
    else:
        return None
    if not text.isascii():
        return None
    data = text.encode("ascii")
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


_NUMBER_FORMATS = {"US": struct.Struct("<H").pack, "UL": struct.Struct("<L").pack,
                   "SS": struct.Struct("<h").pack, "SL": struct.Struct("<l").pack}


def _number_value(vr: str, value) -> bytes | None:
    """The bytes ``write_numbers`` writes for one plain ``int`` of VR US, UL, SS or SL,
    or None for anything else (pydicom writes it, or raises its own error)."""
    pack = _NUMBER_FORMATS.get(vr)
    if pack is None or type(value) is not int:
        return None
    try:
        return pack(value)
    except struct.error:
        return None


def _person_name_value(value, encodings: list[str]) -> bytes | None:
    """The bytes ``write_PN`` writes for one PersonName made from ASCII text in memory
    (no original bytes, no ``=`` component groups: its text is what pydicom encodes), in
    a character set where ASCII is ASCII; None for anything else (pydicom writes it)."""
    if encodings[0] not in _ASCII_SAFE or not isinstance(value, PersonName) or value.original_string is not None:
        return None
    text = str(value)
    if not text.isascii() or "=" in text:
        return None
    data = text.encode("ascii")
    return data + b" " if len(data) % 2 else data


def _sequence(out: list, tag: int, elem, encs: list[str], implicit: bool) -> None:
    """A sequence element as :func:`write_data_element` + ``write_sequence`` write it
    (``encs``: the character sets converted, as write_data_element converts them)."""
    body: list = []
    for item in elem.value:
        _item(body, item, encs, implicit)
    undefined = elem.is_undefined_length
    out.append(_header(tag, "SQ", _UNDEFINED if undefined else sum(map(len, body)), implicit))
    out.extend(body)
    if undefined:
        out.append(_SEQ_DELIM)


def _item(out: list, item: Dataset, encodings, implicit: bool) -> None:
    """One sequence item as ``write_sequence_item`` writes it."""
    body: list = []
    _dataset(body, item, encodings, implicit)
    if getattr(item, "is_undefined_length_sequence_item", False):
        out.append(_ITEM_UNDEFINED)
        out.extend(body)
        out.append(_ITEM_DELIM)
    else:
        out.append(_ITEM_TAG + _UL(sum(map(len, body))))
        out.extend(body)


def _already_converted(ds: Dataset) -> bool:
    """True when pydicom's re-encoding of ``ds`` (made in memory, or read in another
    encoding) changes nothing: every element already converted, none a sequence or of an
    ambiguous VR, so that its ambiguous-VR correction and conversion are no-ops."""
    return all(not e.is_raw and e.VR != "SQ" and e.VR not in AMBIGUOUS_VR for e in ds._dict.values())


def _dataset(out: list, ds: Dataset, parent_encoding, implicit: bool) -> None:
    """``ds`` as :func:`pydicom.filewriter.write_dataset` writes it to a little-endian file."""
    if ds.original_encoding != (implicit, True) or ds.original_character_set != ds._character_set:
        if not _already_converted(ds):
            # pydicom re-encodes such a dataset (ambiguous VRs corrected, values converted)
            out.append(_pydicom_bytes(write_dataset, ds, parent_encoding, implicit))
            return
    elements = ds._dict
    # ds.get("SpecificCharacterSet", parent_encoding), which converts the element if present
    encodings = ds.get("SpecificCharacterSet", parent_encoding) if 0x00080005 in elements else parent_encoding
    converted = None  # the converted character sets, as write_data_element makes them
    for tag in sorted(elements, key=int):  # tag order (ints compare faster than tags)
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group length: not written
        elem = elements[tag]
        if elem.is_raw and elem.value is None:
            elem = ds.get_item(tag)  # a deferred value: read as get_item reads it
        if elem.is_raw:
            _raw_element(out, tag, elem, implicit)
            continue
        vr, value = elem.VR, elem.value
        if converted is None:  # as write_data_element converts them for every such element
            converted = convert_encodings(encodings or [default_encoding])
        if vr == "SQ" and isinstance(value, Sequence):
            _sequence(out, tag, elem, converted, implicit)
        elif vr in _BINARY_VRS and type(value) is bytes and value and not elem.is_buffered:
            _binary_element(out, tag, elem, implicit)
        else:
            data = _string_value(vr, value, converted)
            if data is None:
                data = _person_name_value(value, converted) if vr == "PN" else _number_value(vr, value)
            if data is None:
                out.append(_pydicom_bytes(write_data_element, elem, encodings, implicit))
            else:
                out.append(_header(tag, vr, len(data), implicit))
                out.append(data)


def _encoding(ds: Dataset):
    """``(transfer syntax, implicit VR)`` when this module writes ``ds``, else raise."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None or ts.is_private or not ts.is_transfer_syntax or ts == DeflatedExplicitVRLittleEndian:
        raise _Unsupported
    if not ts.is_little_endian:
        raise _Unsupported
    return ts, ts.is_implicit_VR


#: File meta elements that ``validate_file_meta`` reads (so converts) and, when missing or
#: empty, adds (version, implementation UID) or refuses (SOP class and instance, syntax).
_META_REQUIRED = (0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012)
_GROUP_LENGTH_HEADER = b"\x02\x00\x00\x00UL\x04\x00"


def _meta_group(ds: Dataset) -> bytes:
    """The file meta group as ``write_file_meta_info`` writes it after ``dcmwrite``'s
    checks, when they change nothing but the group length (every required element
    present and not empty, the version name present, the media storage UIDs equal to the
    data set's): the elements pydicom's checks read converted, as they are in its copy,
    the group length first with the length of the rest. Raise :class:`_Unsupported` otherwise."""
    meta = ds.file_meta
    if any(t >> 16 != 0x0002 for t in meta._dict) or 0x00020013 not in meta._dict:
        raise _Unsupported
    for tag in _META_REQUIRED:
        if tag not in meta._dict or meta[tag].is_empty:
            raise _Unsupported
    pairs = (("MediaStorageSOPClassUID", "SOPClassUID"), ("MediaStorageSOPInstanceUID", "SOPInstanceUID"))
    for meta_kw, ds_kw in pairs:
        ours, theirs = meta.get(meta_kw, None), ds.get(ds_kw, None)
        if ours is None or (theirs and theirs != ours):
            raise _Unsupported
    body: list = []
    _dataset(body, meta, default_encoding, False)
    data = b"".join(body)
    if 0x00020000 in meta._dict:
        if not data.startswith(_GROUP_LENGTH_HEADER):
            raise _Unsupported
        data = data[12:]
    return _GROUP_LENGTH_HEADER + _UL(len(data)) + data


def _meta_bytes(ds: Dataset) -> bytes:
    """Preamble, ``DICM`` and the file meta group as ``dcmwrite(enforce_file_format=True)``
    writes them (:func:`_meta_group` when it can, else pydicom on a copy of the file
    meta, as dcmwrite does)."""
    preamble = getattr(ds, "preamble", None)
    if preamble and len(preamble) != 128:
        raise _Unsupported  # pydicom raises
    try:
        return (preamble or b"\x00" * 128) + b"DICM" + _meta_group(ds)
    except _Unsupported:
        pass
    file_meta = deepcopy(ds.file_meta)
    meta_class, ds_class = file_meta.get("MediaStorageSOPClassUID", None), ds.get("SOPClassUID", None)
    if meta_class is None or (ds_class and ds_class != meta_class):
        file_meta.MediaStorageSOPClassUID = ds_class
    meta_instance, ds_instance = file_meta.get("MediaStorageSOPInstanceUID", None), ds.get("SOPInstanceUID", None)
    if meta_instance is None or (ds_instance and ds_instance != meta_instance):
        file_meta.MediaStorageSOPInstanceUID = ds_instance
    validate_file_meta(file_meta, enforce_standard=True)
    preamble = getattr(ds, "preamble", None)
    if preamble and len(preamble) != 128:
        raise _Unsupported  # pydicom raises
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_file_meta_info(fp, file_meta, enforce_standard=True)
    return (preamble or b"\x00" * 128) + b"DICM" + fp.getvalue()


def encode_file(ds: Dataset) -> bytes | None:
    """The bytes ``pydicom.dcmwrite(path, ds, enforce_file_format=True)`` would write,
    or None when this module does not write ``ds`` (see the module docstring) or an
    error occurred: the caller then writes with pydicom."""
    try:
        ts, implicit = _encoding(ds)
        if any((t >> 16) in (0, 2) for t in ds._dict):
            raise _Unsupported  # pydicom raises
        head = _meta_bytes(ds)
        if "PixelData" in ds:
            ds["PixelData"].is_undefined_length = ts.is_compressed
        out = [head]
        _dataset(out, ds, default_encoding, implicit)
        return b"".join(out)
    except Exception:  # noqa: BLE001 - pydicom writes (or raises its own error)
        return None
