"""The release audit: read every released file the way it is meant to be read and look
for the raw data's identifying values in it.

Two halves:

1. **Needles** (private, :mod:`neurodeid.audit.needles`): every identifying value of the
   raw headers (attributes that PS3.15 Table E.1-1 does not keep under the active
   options, at every depth, private elements included) and the words of the raw
   file and folder names, each with its category and in all its spellings.
2. **Scan**, per format, case-insensitively against all needles at once
   (Aho-Corasick):

   - DICOM: every element at every depth, file meta and private elements
     included, its value as text (decoded with its character set); binary
     private blocks (CSA headers) as Latin-1 text; the preamble; bytes of Pixel
     Data beyond the image (text appended after the pixels);
   - JSON: values (keys are vocabulary: ``ParallelReductionFactorInPlane`` is
     not a leak); TSV: cells; NIfTI: header text fields and extensions; NRRD:
     the header; other text (README): all of it; ``.gz``: the gzip header and
     the decompressed content;
   - every file and folder name, with glued sub-tokens (``task-Imogen31415926``);
   - raw bytes of everything (image payloads, trailing bytes) for long needles
     only (:data:`TOKEN_MATCH_BELOW` characters or more): random voxel bytes
     spell three-letter names by chance (measured: "DOE" twice in one 3 MB
     compressed T1w); text burned into pixels is the OCR stage's job.

   Short needles (and numbers) match whole tokens only; a token ends at any
   character that is not an ASCII letter or digit, where letters meet digits
   (``Imogen31415926``) and at a camelCase step (``ImogenSmith``).

Nothing blinds the audit: a needle found in a kept attribute is a hit (that
attribute is a leak for de-identification to clean). A site may accept harmless
values with ``audit.allow`` (value and reason); values of direct identifiers can
never be allowed.

A hit names the released file, the field, the attribute the needle came from and
its category; the value is only in the private audit table (and masked, first
letter and length, in the report).
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import io
import json
import os
import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import ahocorasick
import ahocorasick_rs
import pydicom

from ..records import read_tsv, write_tsv
from .needles import (  # noqa: F401 - re-exported: the audit's needles
    ADDRESS,
    BINARY_VRS,
    DATE,
    DEFAULT_MIN_LENGTH,
    FREE_TEXT,
    ID,
    MIN_DIGITS,
    NAME,
    PATH_SOURCE,
    PATH_WORD,
    UID,
    VENDOR_TEXT,
    Needle,
    _is_number,
    dataset_needles,
    direct_identifiers,
    element_needles,
    keep_needle,
    load_needles,
    path_needles,
    path_stopwords,
    read_file_needles,
    save_needles,
)

_keep_needle = keep_needle  # the name other modules use

#: Needles shorter than this many characters must match as a whole token; only
#: needles at least this long are looked for in image payloads and raw bytes.
TOKEN_MATCH_BELOW = 8

#: Where in a released file a hit was found.
LOC_NAME, LOC_BYTES, LOC_GUNZIPPED = "name", "bytes", "gunzipped bytes"

#: Pixel-like elements: their bytes are image payload (long needles only).
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})

#: Text file suffixes read as text (all needles) when they are not a known format.
_TEXT_SUFFIXES = (".txt", ".md", ".rst", ".html", ".bval", ".bvec", ".csv", ".yaml", ".yml", ".log", ".cff")


@dataclass(frozen=True)
class Hit:
    file: str  # relative to the release root
    location: str  # LOC_NAME / LOC_BYTES / LOC_GUNZIPPED
    offset: int
    source: str  # the attribute the needle came from
    needle: str  # private: never printed
    field: str = ""  # where in the released file (DICOM element, JSON key, TSV cell, ...)
    category: str = FREE_TEXT


# --------------------------------------------------------------------------- matching


def _is_word_char(c: str) -> bool:
    """ASCII letters and digits join a token; any other byte (binary, punctuation) ends it."""
    return c.isascii() and c.isalnum()


def _joined(a: str, b: str) -> bool:
    """Do the adjacent characters ``a`` then ``b`` belong to the same token?

    Not when either is not an ASCII letter or digit, when a letter meets a digit
    (``Imogen31415926``), or at a camelCase step (lower case then upper case).
    """
    if not (_is_word_char(a) and _is_word_char(b)):
        return False
    if a.isdigit() != b.isdigit():
        return False
    return not (a.islower() and b.isupper())


def _edge_joined(a: str, b: str, outside: str) -> bool:
    """Is a match edge between ``a`` and ``b`` inside a token? A needle that begins or ends with
    punctuation (``_ct``) still needs a non-word character beyond it (``outside``)."""
    if not (_is_word_char(a) and _is_word_char(b)):
        return _is_word_char(outside)
    return _joined(a, b)


#: ``str.lower`` of a Latin-1 character, one byte at a time: bytes lowered with this table
#: are the Latin-1 encoding of ``bytes.decode("latin-1").lower()`` (no Latin-1 character
#: lowers to more than one character or outside Latin-1).
_LATIN1_LOWER = bytes(ord(chr(i).lower()) for i in range(256))

#: Up to this many spellings the long-needle automaton (payload scans) is a full DFA; beyond
#: it, and for the others, a contiguous NFA. Measured (random patterns of 8-30 bytes, 20 MB
#: scan): 5,000 patterns DFA 0.07 s build, 24 MB, 0.05 s scan, NFA 0.10 s scan; 20,000: DFA
#: 0.3 s, 76 MB, 0.06 s, NFA 0.09 s; 50,000: DFA 1.1 s, 142 MB.
_DFA_MAX_PATTERNS = 20_000

_ALL = None  # a view that filters no scope


@lru_cache(maxsize=1 << 16)
def _spellings(text: str) -> tuple[str, ...]:
    """A needle's lower-case spellings: itself, and its UTF-8 bytes read as Latin-1 (as
    written, in lower case and in capitals: Latin-1 lowering does not join the UTF-8 bytes
    of ``Ü`` and ``ü``)."""
    out = {text.lower()}
    for t in (text, text.lower(), text.upper()):
        try:
            out.add(t.encode("utf-8").decode("latin-1").lower())
        except UnicodeError:
            pass
    return tuple(s for s in out if s)


def forget_memos() -> None:
    """Forget the spellings made for earlier needles (as in a fresh process)."""
    _spellings.cache_clear()


class _Automata:
    """The automata over every spelling of a set of needles, each needle tagged with a scope.

    One entry per spelling: ``(length, whole-token only, ((needle, scope), ...))``. Text is
    matched by :mod:`ahocorasick` (pyahocorasick); bytes by :mod:`ahocorasick_rs` over the
    Latin-1-lowered bytes (built on first use): one pass over a payload for all needles.
    """

    def __init__(self, tagged, dfa: bool = False):
        self.dfa = dfa  # scans of long payloads: a full DFA, the fastest; else a compact automaton
        by_text: dict[str, list] = {}
        for needle, scope in tagged:
            by_text.setdefault(needle.text, []).append((needle, scope))
        entries: dict[str, list] = {}
        for text, ns in by_text.items():
            for s in _spellings(text):
                entries.setdefault(s, []).extend(ns)
        self.entries = [(s, (len(s), len(s) < TOKEN_MATCH_BELOW or s.isdigit(), tuple(ns)))
                        for s, ns in entries.items()]
        self.empty = not self.entries
        self.text = ahocorasick.Automaton()
        for s, value in self.entries:
            self.text.add_word(s, value)
        if not self.empty:
            self.text.make_automaton()
        self._bytes = None

    def bytes_automaton(self):
        """(automaton, entry of each pattern) over the spellings that Latin-1 can spell."""
        if self._bytes is None:
            patterns, values = [], []
            for s, value in self.entries:
                try:
                    patterns.append(s.encode("latin-1"))
                except UnicodeEncodeError:
                    continue  # a character beyond Latin-1 never occurs in Latin-1-read bytes
                values.append(value)
            impl = (ahocorasick_rs.Implementation.DFA if self.dfa and len(patterns) <= _DFA_MAX_PATTERNS
                    else ahocorasick_rs.Implementation.ContiguousNFA)
            automaton = ahocorasick_rs.BytesAhoCorasick(patterns, implementation=impl) if patterns else None
            self._bytes = (automaton, values)
        return self._bytes


class Matcher:
    """Case-insensitive multi-needle matcher over text and bytes.

    Bytes are matched through their Latin-1 decoding (one character per byte),
    so every needle is entered in its UTF-8-as-Latin-1 spelling too.
    :meth:`find_bytes` gives the same hits as :meth:`find` on the Latin-1 text
    without decoding it (payloads of many MB in one pass).
    """

    def __init__(self, needles: list[Needle], *, _automata: _Automata | None = None, _scopes=_ALL):
        self.needles = list(needles)
        self._automata = _automata if _automata is not None else _Automata((n, None) for n in self.needles)
        self._scopes = _scopes  # the scopes this view matches (None: all)
        self._long: Matcher | None = None
        self.empty = self._automata.empty

    def long_only(self) -> "Matcher":
        """A matcher of the needles that cannot match by chance (>= TOKEN_MATCH_BELOW characters)."""
        if self._long is None:
            long = [n for n in self.needles if len(n.text) >= TOKEN_MATCH_BELOW]
            self._long = Matcher(long, _automata=_Automata(((n, None) for n in long), dfa=True))
        return self._long

    def _keep(self, ns) -> list[Needle]:
        scopes = self._scopes
        return [n for n, scope in ns if scopes is _ALL or scope in scopes]

    def find(self, text: str) -> list[tuple[int, Needle]]:
        """(offset, needle) of each match in ``text`` (any case)."""
        if self.empty or not text:
            return []
        low = text.lower()
        if len(low) != len(text):  # a few characters change length when lowered
            text = low
        hits = []
        last = len(text) - 1
        for end, (length, token, ns) in self._automata.text.iter(low):
            start = end - length + 1
            if token:
                if start > 0 and _edge_joined(text[start - 1], text[start], text[start - 1]):
                    continue
                if end < last and _edge_joined(text[end], text[end + 1], text[end + 1]):
                    continue
            hits.extend((start, n) for n in self._keep(ns))
        return hits

    def occurs_in_bytes(self, data: bytes) -> bool:
        """Whether a spelling of a needle occurs anywhere in ``data`` read as Latin-1 text
        (any case), token edges ignored: each hit of :meth:`find` on a piece of that text
        (and of :meth:`find_bytes`) is such an occurrence, so False rules them all out."""
        if self.empty or not data:
            return False
        automaton, _ = self._automata.bytes_automaton()
        if automaton is None:
            return False
        return bool(automaton.find_matches_as_indexes(bytes(data).translate(_LATIN1_LOWER), overlapping=True))

    def find_bytes(self, data: bytes) -> list[tuple[int, Needle]]:
        """(offset, needle) of each match in ``data`` read as Latin-1 text (any case):
        the hits of ``find(data.decode("latin-1"))``, in one pass over the bytes."""
        if self.empty or not data:
            return []
        automaton, values = self._automata.bytes_automaton()
        if automaton is None:
            return []
        data = bytes(data)
        found = automaton.find_matches_as_indexes(data.translate(_LATIN1_LOWER), overlapping=True)
        if not found:
            return []
        hits = []
        last = len(data) - 1
        for i, start, stop in sorted(found, key=lambda m: (m[2], m[1])):
            length, token, ns = values[i]
            end = stop - 1
            if token:
                if start > 0 and _edge_joined(chr(data[start - 1]), chr(data[start]), chr(data[start - 1])):
                    continue
                if end < last and _edge_joined(chr(data[end]), chr(data[end + 1]), chr(data[end + 1])):
                    continue
            hits.extend((start, n) for n in self._keep(ns))
        return hits


# --------------------------------------------------------------------------- formats


def _gunzip(data: bytes) -> bytes | None:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return None


def gzip_header_end(data: bytes) -> int:
    """Length of a gzip member's header (with its FNAME / FCOMMENT text), RFC 1952."""
    if len(data) < 10 or data[:2] != b"\x1f\x8b":
        return len(data)
    flags, pos = data[3], 10
    if flags & 0x04 and pos + 2 <= len(data):  # FEXTRA
        pos += 2 + int.from_bytes(data[pos : pos + 2], "little")
    for bit in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated text
        if flags & bit:
            end = data.find(b"\x00", pos)
            pos = len(data) if end < 0 else end + 1
    if flags & 0x02:  # FHCRC
        pos += 2
    return min(pos, len(data))


def _nifti_layout(data: bytes) -> tuple[int, int] | None:
    """(vox_offset, end of the voxel data) of a NIfTI-1/2 image, or None."""
    for order in ("<", ">"):
        if len(data) >= 348 and struct.unpack(order + "i", data[:4])[0] == 348:
            dims = struct.unpack(order + "8h", data[40:56])
            bitpix = struct.unpack(order + "h", data[72:74])[0]
            vox = max(int(struct.unpack(order + "f", data[108:112])[0]), 348)
        elif len(data) >= 540 and struct.unpack(order + "i", data[:4])[0] == 540:
            dims = struct.unpack(order + "8q", data[16:80])
            bitpix = struct.unpack(order + "h", data[14:16])[0]
            vox = max(int(struct.unpack(order + "q", data[168:176])[0]), 540)
        else:
            continue
        n = 1
        for d in dims[1 : 1 + max(0, min(int(dims[0]), 7))]:
            n *= max(int(d), 1)
        return vox, min(len(data), vox + n * max(int(bitpix), 8) // 8)
    return None


def payload_range(name: str, data: bytes) -> tuple[int, int] | None:
    """The image payload of a released file (voxel or pixel values), or None.

    NIfTI: from ``vox_offset`` to the end of the voxels (trailing bytes are not
    payload); NRRD: after the blank line that ends the header; DICOM: the value
    of the top-level PixelData element.
    """
    low = name.lower()
    if low.endswith((".nii", ".nii.gz")):
        return _nifti_layout(data)
    if low.endswith(".nrrd"):
        end = data.find(b"\n\n")
        return (end + 2, len(data)) if end >= 0 else None
    if low.endswith(".dcm") or data[128:132] == b"DICM":
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True, defer_size=64)
            elem = ds.get_item(0x7FE00010)
        except Exception:  # noqa: BLE001 - not parseable: no payload, all bytes are scanned
            return None
        return _pixel_range(ds, elem, data)
    return None


def _pixel_range(ds, elem, data: bytes) -> tuple[int, int] | None:
    """The byte range of the value of the top-level Pixel Data element ``elem`` of ``ds`` (read from ``data``)."""
    if elem is None or not getattr(elem, "file_tell", None):
        return None
    start = elem.file_tell
    little = getattr(ds, "is_little_endian", True) is not False
    length = int.from_bytes(data[start - 4 : start], "little" if little else "big")
    end = len(data) if length == 0xFFFFFFFF else min(len(data), start + length)
    return (start, end)


def _text_of(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(_text_of(v) for v in value)
    return "" if value is None else str(value)


_QUOTED = re.compile(r'"+([^"\n]*)"+')


def csa_items(data: bytes) -> list[tuple[str, int, int]] | None:
    """``(item name, start, end)`` byte ranges of the item values of a Siemens CSA2
    header (``SV10``), or None when ``data`` is not one or does not parse."""
    if data[:4] != b"SV10" or len(data) < 16:
        return None
    (n_tags,) = struct.unpack_from("<I", data, 8)
    if n_tags > 1000:
        return None
    out, off = [], 16
    try:
        for _ in range(n_tags):
            name = data[off : off + 64].split(b"\x00", 1)[0].decode("latin-1")
            (n_items,) = struct.unpack_from("<i", data, off + 76)
            off += 84
            if not 0 <= n_items <= 100000:
                return None
            for _ in range(n_items):
                (item_len,) = struct.unpack_from("<i", data, off + 4)
                if item_len < 0 or off + 16 + item_len > len(data):
                    return None
                if item_len:
                    out.append((name, off + 16, off + 16 + item_len))
                off += 16 + (item_len + 3) // 4 * 4
    except struct.error:
        return None
    return out


def csa_texts(data: bytes) -> list[tuple[str, str]] | None:
    """``(item name, value text)`` of each item of a Siemens CSA2 header, or None.

    Item names are vocabulary (``TransmitterCalibration``); values are text. In a
    protocol value (``MrPhoenixProtocol``: XProtocol and ASCCONV), keys are
    vocabulary too and only the quoted strings are text.
    """
    items = csa_items(data)
    if items is None:
        return None
    out = []
    for name, a, b in items:
        text = data[a:b].decode("latin-1").rstrip("\x00 ")
        if "ASCCONV" in text or "<XProtocol>" in text:
            text = "\n".join(m.group(1) for m in _QUOTED.finditer(text))
        if text:
            out.append((name, text))
    return out


def _expected_pixel_bytes(ds) -> int | None:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return None
    n = rows * cols * frames * spp
    return (n + 7) // 8 if bits == 1 else n * bits // 8


Found = tuple[int, Needle, str]  # (offset, needle, field)


def _find_value(matcher: Matcher, value) -> list[tuple[int, Needle]]:
    """Hits in an element value: bytes read as Latin-1 text, anything else as its text."""
    if isinstance(value, (bytes, bytearray)):
        return matcher.find_bytes(value)
    return matcher.find(_text_of(value))


def _element_name(path: str, elem) -> str:
    from pydicom.datadict import keyword_for_tag

    return f"{path}{keyword_for_tag(elem.tag) or f'({elem.tag.group:04X},{elem.tag.element:04X})'}"


_CODE_MEANING = 0x00080104

#: Attributes that name the equipment and its software (Manufacturer, ManufacturerModelName,
#: SoftwareVersions, ImplementationVersionName): a word of a file name found there names the
#: vendor or model the export was named after ("gdcm-US-ALOKA-16.dcm"), not a person.
_EQUIPMENT_TAGS = frozenset({0x00080070, 0x00081090, 0x00181020, 0x00020013})

#: Attributes that name a coding scheme (CodingSchemeDesignator, MappingResource): a word
#: of a file name found there names the scheme the export was named after (an MD.ai
#: annotation export, "mdai/...", codes its concepts in the scheme "MDAI"), not a person.
_SCHEME_TAGS = frozenset({0x00080102, 0x00080105})


@lru_cache(maxsize=1)
def _standard_code_meanings() -> dict[tuple[str, str], str]:
    """``{(coding scheme designator, code value): lower-case meaning}`` of the codes of
    PS3.16 that pydicom ships (DCM, SCT, LN, UCUM...); empty when pydicom has no such table,
    and then no code meaning is excused."""
    try:
        from pydicom.sr._concepts_dict import concepts
    except ImportError:  # pragma: no cover - another pydicom layout: excuse nothing
        return {}
    return {(scheme, value): meaning.strip().lower()
            for scheme, by_keyword in concepts.items()
            for codes in by_keyword.values()
            for value, (meaning, _cids) in codes.items()}


def is_standard_code_meaning(item) -> bool:
    """True when ``item``'s CodeMeaning is the meaning the standard gives its code
    (CodingSchemeDesignator and CodeValue, PS3.16): text fixed by the code, which says
    nothing of a patient whatever a needle finds in it ("Uncompressed predecessor")."""
    try:
        key = (str(item.CodingSchemeDesignator).strip(), str(item.CodeValue).strip())
        meaning = str(item.CodeMeaning).strip().lower()
    except (AttributeError, KeyError, ValueError):
        return False
    return _standard_code_meanings().get(key) == meaning


def _dicom_walk(ds, path: str, matcher: Matcher, long_matcher: Matcher, out: list, meta: bool = False) -> None:
    for elem in ds:
        vr = elem.VR
        if vr == "SQ":
            where = _element_name(path, elem)
            for i, item in enumerate(elem.value or []):
                _dicom_walk(item, f"{where}[{i}].", matcher, long_matcher, out)
            continue
        tag = int(elem.tag)
        value = elem.value
        if tag in _PIXEL_TAGS:
            if path:  # icon images in sequences: pixels, long needles only
                found = _find_value(long_matcher, value)
                out.extend((o, n, _element_name(path, elem)) for o, n in found)
            continue  # the top-level pixels are scanned by the caller
        is_bytes = isinstance(value, (bytes, bytearray))
        csa = csa_texts(bytes(value)) if is_bytes else None
        if csa is not None:  # a Siemens CSA header: its item values
            found = [(o, n, item) for item, text in csa for o, n in matcher.find(text)]
            if found:
                where = _element_name(path, elem)
                out.extend((o, n, f"{where} CSA {item}") for o, n, item in found)
            continue
        if vr in ("OB", "UN") or (is_bytes and elem.tag.is_private):
            found = _find_value(matcher, value)  # other vendor blocks: text where it can be
        elif vr in BINARY_VRS:
            found = long_matcher.find_bytes(value) if is_bytes else []
        else:
            found = _find_value(matcher, value)
            if vr in ("CS", "TM") or tag in _EQUIPMENT_TAGS or tag in _SCHEME_TAGS \
                    or elem.tag.is_private_creator:
                # defined terms, equipment and scheme names, vendor block names: a path word
                # there is vocabulary ("RGB", "ALOKA", "MDAI", the "csa" of "SIEMENS CSA
                # HEADER"); a time of day kept by the profile is kept whatever a file name
                # says (an export named "...20100122.165135.421000.dcm": the "421000" of its
                # InstanceCreationTime)
                found = [(o, n) for o, n in found if n.category != PATH_WORD]
            elif found and tag == _CODE_MEANING and is_standard_code_meaning(ds):
                found = []
        if found:
            where = _element_name(path, elem)
            out.extend((o, n, where) for o, n in found)


def scan_dicom(data: bytes, matcher: Matcher, long_matcher: Matcher) -> list[Found] | None:
    """Hits in a DICOM file read as DICOM, or None when it does not parse."""
    return _scan_dicom(data, matcher, long_matcher)[0]


def _scan_dicom(data: bytes, matcher: Matcher, long_matcher: Matcher):
    """(hits or None, pixel payload range or None) of a DICOM file, parsed once."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        list(ds.keys())
        if not len(ds) and not getattr(ds, "file_meta", None):
            return None, None
    except Exception:  # noqa: BLE001 - any parse error: scanned as raw bytes instead
        return None, None
    out: list[Found] = []
    try:
        _dicom_walk(getattr(ds, "file_meta", None) or [], "", matcher, long_matcher, out, meta=True)
        _dicom_walk(ds, "", matcher, long_matcher, out)
    except Exception:  # noqa: BLE001 - a value that does not decode: raw bytes instead
        return None, None
    preamble = getattr(ds, "preamble", None) or b""
    out += [(o, n, "preamble") for o, n in matcher.find_bytes(bytes(preamble))]
    for tag in _PIXEL_TAGS:
        elem = ds.get(tag)
        if elem is None or not isinstance(elem.value, (bytes, bytearray)):
            continue
        pixels = elem.value
        expected = None if ds.file_meta.get("TransferSyntaxUID") is None or getattr(
            ds.file_meta.TransferSyntaxUID, "is_compressed", False) else _expected_pixel_bytes(ds)
        if expected is not None and len(pixels) > expected + 1:
            out += [(o + expected, n, "PixelData (bytes after the image)")
                    for o, n in matcher.find_bytes(pixels[expected:])]
    try:
        payload = _pixel_range(ds, ds.get_item(0x7FE00010), data)
    except Exception:  # noqa: BLE001 - as payload_range: no payload, all bytes scanned
        payload = None
    return out, payload


def _json_values(value, path: str):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _json_values(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_values(v, f"{path}[{i}]")
    elif isinstance(value, bool) or value is None:
        return
    else:
        yield path, str(value)


def scan_json(data: bytes, matcher: Matcher) -> list[Found] | None:
    """Hits in the values of a JSON document (keys are vocabulary), or None if it does not parse."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return [(o, n, f"JSON {key}") for key, text in _json_values(doc, "") for o, n in matcher.find(text)]


def scan_tsv(data: bytes, matcher: Matcher) -> list[Found] | None:
    """Hits in the cells of a TSV table, or None if it is not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.splitlines()
    header = lines[0].split("\t") if lines else []
    out: list[Found] = []
    for r, line in enumerate(lines, start=1):
        for c, cell in enumerate(line.split("\t")):
            col = header[c] if c < len(header) else str(c + 1)
            out += [(o, n, f"row {r}, column {col}") for o, n in matcher.find(cell)]
    return out


def scan_nifti(data: bytes, matcher: Matcher) -> list[Found] | None:
    """Hits in a NIfTI header, its extensions and bytes after the voxels, or None."""
    layout = _nifti_layout(data)
    if layout is None:
        return None
    vox, end = layout
    out = [(o, n, "NIfTI header and extensions") for o, n in matcher.find_bytes(data[:vox])]
    out += [(o + end, n, "NIfTI bytes after the voxels") for o, n in matcher.find_bytes(data[end:])]
    return out


def scan_nrrd(data: bytes, matcher: Matcher) -> list[Found] | None:
    end = data.find(b"\n\n")
    if not data.startswith(b"NRRD") or end < 0:
        return None
    return [(o, n, "NRRD header") for o, n in matcher.find_bytes(data[:end])]


def scan_text(data: bytes, matcher: Matcher) -> list[Found] | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return [(o, n, "text") for o, n in matcher.find(text)]


def scan_file(name: str, data: bytes, matcher: Matcher, long_matcher: Matcher) -> list[Found]:
    """Every hit in one released file's content, read as its format.

    All needles in the places a format keeps text (structured); long needles
    only in image payloads (DICOM pixels, NIfTI voxels, NRRD data) and in an
    unknown binary file; a file that fails to parse as its format gets all
    needles on all bytes outside its payload.
    """
    low = name.lower()
    structured, payload = None, None
    if low.endswith(".dcm") or data[128:132] == b"DICM":
        structured, payload = _scan_dicom(data, matcher, long_matcher)  # parsed once
        if structured is not None and payload is not None and payload[1] < len(data):
            structured += [(o + payload[1], n, "bytes after the dataset")
                           for o, n in matcher.find_bytes(data[payload[1]:])]
    elif low.endswith(".json"):
        structured = scan_json(data, matcher)
    elif low.endswith(".tsv"):
        structured = scan_tsv(data, matcher)
    elif low.endswith(".nii"):
        structured = scan_nifti(data, matcher)
        payload = _nifti_layout(data)
    elif low.endswith(".nrrd"):
        structured = scan_nrrd(data, matcher)
        payload = payload_range(name, data)
    elif low.endswith(_TEXT_SUFFIXES) or "." not in name:
        structured = scan_text(data, matcher)
    else:  # other binary (PNG, ...): long needles in all bytes; all needles if it is text
        text = scan_text(data, matcher) if b"\x00" not in data[:4096] else None
        structured, payload = (text, None) if text is not None else ([], (0, len(data)))
    if structured is None:  # not what its name says: the old byte scan, payload excepted
        payload = payload_range(name, data)
        if payload is None:
            return [(o, n, "bytes") for o, n in matcher.find_bytes(data)]
        a, b = payload
        out = [(o, n, "bytes") for o, n in matcher.find_bytes(data[:a])]
        out += [(o + b, n, "bytes") for o, n in matcher.find_bytes(data[b:])]
        return out + [(o + a, n, "image payload") for o, n in long_matcher.find_bytes(data[a:b])]
    if payload is not None:  # image payload: long needles only (short ones occur by chance)
        a, b = payload
        structured += [(o + a, n, "image payload") for o, n in long_matcher.find_bytes(data[a:b])]
    return structured


def scan_bytes(name: str, data: bytes, matcher: Matcher, long_matcher: Matcher, location: str):
    """(offset, needle, location) of every hit in one file's content (see :func:`scan_file`)."""
    return [(o, n, location) for o, n, _ in scan_file(name, data, matcher, long_matcher)]


def _scan_content(path: Path, name: str, matcher: Matcher, long_matcher: Matcher):
    """``(offset, needle, field, location)`` of every hit in one released file's content."""
    data = path.read_bytes()
    raw = _gunzip(data) if name.endswith(".gz") else None
    if raw is None:
        return [(o, n, f, LOC_BYTES) for o, n, f in scan_file(name, data, matcher, long_matcher)]
    head = data[: gzip_header_end(data)]
    found = [(o, n, "gzip header", LOC_BYTES) for o, n in matcher.find_bytes(head)]
    found += [(o, n, f, LOC_GUNZIPPED) for o, n, f in scan_file(name[: -len(".gz")], raw, matcher, long_matcher)]
    return found


_WORKER_MATCHERS = None  # the matchers of a forked worker (inherited, never pickled)


def _scan_in_worker(task: tuple[str, str, str]):
    path, name, rel = task
    return _scan_content(Path(path), name, *_WORKER_MATCHERS(rel))


def _fork_context():
    import multiprocessing

    try:
        return multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform: scan in one process
        return None


def scan_release(release_dir: str | os.PathLike, matcher: "Matcher | ScopedMatchers",
                 long_matcher: Matcher | None = None, workers: int = 1) -> tuple[list[Hit], int]:
    """Scan every file and folder below ``release_dir``; return (hits, files scanned).

    Names (with glued sub-tokens), then each file's content by format
    (:func:`scan_file`); ``.gz`` files: their gzip header (which can name the
    original file) and their decompressed content. ``matcher``: one matcher for every
    file, or :class:`ScopedMatchers` (one per subject). ``workers`` > 1: file contents
    are scanned by that many forked processes (same hits, same order).
    """
    global _WORKER_MATCHERS
    root = Path(release_dir)
    if isinstance(matcher, ScopedMatchers):
        matchers = matcher.for_path
    else:
        fixed = (matcher, long_matcher if long_matcher is not None else matcher.long_only())

        def matchers(rel: str) -> tuple[Matcher, Matcher]:
            return fixed
    order: list = []  # name hits and files, in walk order
    tasks: list[tuple[str, str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(dirnames) + sorted(filenames):
            rel = (rel_dir / name).as_posix()
            order += [Hit(rel, LOC_NAME, off, n.source, n.text, "file or folder name", n.category)
                      for off, n in matchers(rel)[0].find(name)]
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            order.append(len(tasks))
            tasks.append((os.path.join(dirpath, name), name, rel))
    context = _fork_context() if workers > 1 and len(tasks) > 1 else None
    if context is None:
        results = [_scan_content(Path(path), name, *matchers(rel)) for path, name, rel in tasks]
    else:
        from concurrent.futures import ProcessPoolExecutor

        for _, _, rel in tasks:  # every automaton built before the fork, not once per worker
            for m in matchers(rel):
                m._automata.bytes_automaton()
        _WORKER_MATCHERS = matchers
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                results = list(pool.map(_scan_in_worker, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
        finally:
            _WORKER_MATCHERS = None
    hits: list[Hit] = []
    for item in order:
        if isinstance(item, Hit):
            hits.append(item)
        else:
            rel = tasks[item][2]
            hits.extend(Hit(rel, loc, off, n.source, n.text, f, n.category) for off, n, f, loc in results[item])
    return hits, len(tasks)


# --------------------------------------------------------------------------- site allow-list


class AllowListError(ValueError):
    """An ``audit.allow`` entry is malformed or names a direct identifier."""


@dataclass(frozen=True)
class AllowUse:
    value: str
    reason: str
    needles: int  # how many needles it removed
    sources: tuple[str, ...]  # the attributes they came from


def apply_allow(needles: list[Needle], allow) -> tuple[list[Needle], list[AllowUse]]:
    """Drop the needles a site allows (``audit.allow``: ``{value, reason}``).

    Raises
    ------
    AllowListError
        An entry without a value or reason, or whose value is a value of a
        direct identifier (PatientName, PatientID, birth date, ... of any
        subject; ``data/audit_direct_identifiers.tsv``): such a value can never
        be allowed.
    """
    allow = list(allow or [])
    if not allow:
        return needles, []
    direct = direct_identifiers()
    uses = []
    kept = list(needles)
    for i, entry in enumerate(allow):
        value = str((entry or {}).get("value", "")).strip() if isinstance(entry, dict) else ""
        reason = str((entry or {}).get("reason", "")).strip() if isinstance(entry, dict) else ""
        if not value or not reason:
            raise AllowListError(
                f"audit.allow entry {i + 1} ({entry!r}): each entry needs a value and a reason; fix the config")
        low = value.lower()
        matched = [n for n in kept if n.text.strip().lower() == low]
        bad = sorted({n.source for n in matched if n.source.split(".")[-1].split("[")[0] in direct})
        if bad:
            raise AllowListError(
                f"audit.allow entry {i + 1} (value {value[0]}{'*' * (len(value) - 1)}, reason {reason!r}) is a value "
                f"of a direct identifier ({', '.join(bad)}) of a subject: it can never be allowed. Remove the entry; "
                "if that value is in the release, de-identification must remove it (or reject the item)")
        kept = [n for n in kept if n.text.strip().lower() != low]
        uses.append(AllowUse(value, reason, len(matched), tuple(sorted({n.source for n in matched}))))
    return kept, uses


# --------------------------------------------------------------------------- the table


AUDIT_COLUMNS = ("file", "location", "offset", "field", "attribute", "category", "masked", "identifier", "todo")

#: What a data manager does about a hit, per category.
TODO = {
    NAME: "a person's name: fix de-identification or reject the item (names cannot be allowed)",
    ID: "an identifier: fix de-identification or reject the item",
    DATE: "a date: fix de-identification (dates are shifted) or reject the item",
    UID: "a UID: fix de-identification (UIDs are remapped) or reject the item",
    ADDRESS: "a place or institution: fix de-identification, or reject the item",
    PATH_WORD: "a word of a raw file or folder name: if it identifies nobody, allow it in audit.allow with a "
               "reason; else rename the input or reject the item",
    VENDOR_TEXT: "vendor free text: if it identifies nobody, allow it in audit.allow with a reason; else fix "
                 "de-identification or reject the item",
    FREE_TEXT: "free text: if it identifies nobody, allow it in audit.allow with a reason; else fix "
               "de-identification or reject the item",
}


def mask(value: str) -> str:
    """A value masked except its first character, with its length: ``I***** (6 chars)``."""
    v = value.strip()
    return f"{v[:1]}{'*' * max(len(v) - 1, 0)} ({len(v)} chars)"


def write_audit_table(path: str | os.PathLike, hits: list[Hit], n_files: int, n_needles: int,
                      allowed: list[AllowUse] | None = None) -> None:
    """Write the private audit table: one row per hit, a summary comment line, and one
    ``# allowed:`` comment line per site allow-list entry (value, reason, needles removed)."""
    lines = [f"# release audit: {n_files} files scanned, {n_needles} needles, {len(hits)} hits"]
    for u in allowed or []:
        lines.append(f"# allowed: {u.value}\t{u.reason}\t{u.needles} needle(s)\t{', '.join(u.sources)}")
    rows = [(h.file, h.location, str(h.offset), h.field, h.source, h.category, mask(h.needle), h.needle,
             TODO.get(h.category, TODO[FREE_TEXT])) for h in hits]
    write_tsv(path, AUDIT_COLUMNS, rows, comments=lines)


def read_audit_table(path: str | os.PathLike) -> list[dict]:
    """The rows of a table written by :func:`write_audit_table` (comment lines skipped)."""
    return read_tsv(path, OSError)


def read_allowed(path: str | os.PathLike) -> list[dict]:
    """The ``# allowed:`` lines of an audit table: value, reason, needles, sources."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("# allowed: "):
                parts = line[len("# allowed: "):].rstrip("\n").split("\t") + ["", "", "", ""]
                out.append({"value": parts[0], "reason": parts[1], "needles": parts[2], "sources": parts[3]})
    return out


_SUBJECT_PART = re.compile(r"^sub-([A-Za-z0-9]+)$")


def subject_of(path: str | os.PathLike) -> str | None:
    """The subject label of a release path or a needle file (a ``sub-<label>`` component), or None."""
    for part in Path(path).parts:
        m = _SUBJECT_PART.match(part)
        if m:
            return m.group(1)
    return None


def is_scoped(needle: Needle) -> bool:
    """Whether a needle is looked for only in its own subject's files (and the release's
    top-level files): vendor and free text, and every needle shorter than
    :data:`TOKEN_MATCH_BELOW` characters. A technical vendor value or a short name part of
    one subject (a phantom called ``Test``) is found by chance in another subject's
    protocol; a long name, ID, date, UID or address is looked for in every file."""
    return needle.category in (VENDOR_TEXT, FREE_TEXT) or len(needle.text) < TOKEN_MATCH_BELOW


class ScopedMatchers:
    """The matcher for each released file: the global needles plus the scoped needles of
    the file's subject (every scoped needle for files of no subject, such as the README).

    One automaton over all needles (and one over the long ones), each needle tagged with
    its scope; a file's matcher is a view that keeps the hits of its scopes.
    """

    _GLOBAL = "\x00global"  # the scope tag of global needles (no subject label can spell it)

    def __init__(self, global_needles: list[Needle], scoped: dict[str | None, list[Needle]]):
        self.global_needles = list(global_needles)
        self.scoped = scoped
        tagged = [(n, self._GLOBAL) for n in self.global_needles]
        tagged += [(n, key) for key, ns in scoped.items() for n in ns]
        self._all = [n for n, _ in tagged]
        self._automata = _Automata(tagged)
        self._long = _Automata(((n, scope) for n, scope in tagged if len(n.text) >= TOKEN_MATCH_BELOW), dfa=True)
        self._cache: dict[str | None, tuple[Matcher, Matcher]] = {}

    def for_path(self, rel: str) -> tuple[Matcher, Matcher]:
        subject = subject_of(rel)
        key = subject if subject in self.scoped else None
        if key not in self._cache:
            scopes = _ALL if key is None else frozenset({self._GLOBAL, key, None})
            needles = ([n for n in self._all] if key is None
                       else self.global_needles + self.scoped[key] + self.scoped.get(None, []))
            long = Matcher([n for n in needles if len(n.text) >= TOKEN_MATCH_BELOW], _automata=self._long,
                           _scopes=scopes)
            full = Matcher(needles, _automata=self._automata, _scopes=scopes)
            full._long = long
            self._cache[key] = (full, long)
        return self._cache[key]


@contextlib.contextmanager
def _collector_paused():
    """Pause Python's cyclic garbage collector (building many small objects that hold no
    cycles: the collector's passes over them cost a third of the needle loading)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def audit_release(release_dir, needle_files, audit_tsv, min_length: int | None = None, allow=None,
                  workers: int = 1) -> list[Hit]:
    """Scan ``release_dir`` against the needles in ``needle_files``; write ``audit_tsv``.

    A needle file below a ``sub-<label>`` folder holds that subject's needles; its scoped
    needles (:func:`is_scoped`) are looked for in that subject's files and in the files of
    no subject. ``allow``: the site allow-list (``[{value, reason}]``, see :func:`apply_allow`).
    ``workers``: processes scanning file contents (see :func:`scan_release`).
    """
    with _collector_paused():  # tens of thousands of needles: no cycles to collect, only time lost
        by_file = {str(f): load_needles([f], min_length) for f in needle_files}
        kept, uses = apply_allow([n for ns in by_file.values() for n in ns], allow)
        kept_set = set(kept) if uses else None  # without an allow-list every needle is kept
        global_needles: list[Needle] = []
        scoped: dict[str | None, list[Needle]] = {}
        for f, ns in by_file.items():
            subject = subject_of(f)
            for n in ns:
                if kept_set is not None and n not in kept_set:
                    continue
                if subject is not None and is_scoped(n):
                    scoped.setdefault(subject, []).append(n)
                else:
                    global_needles.append(n)
        matchers = ScopedMatchers(global_needles, scoped)
    hits, n_files = scan_release(release_dir, matchers, workers=workers)
    write_audit_table(audit_tsv, hits, n_files, len(kept), uses)
    return hits


class AuditFailed(RuntimeError):
    """The release holds identifying values; the message names files and attributes only."""


def summarize_hits(rows: list[dict], limit: int = 20) -> str:
    """A console-safe summary of audit rows: file, field, attribute and category, never the
    identifier (a file name that holds it shows ``[...]`` instead)."""
    seen = []
    for r in rows:
        field = f", {r['field']}" if r.get("field") else ""
        cat = f" ({r['category']})" if r.get("category") else ""
        ident = (r.get("identifier") or "").strip()
        file = re.sub(re.escape(ident), "[...]", r["file"], flags=re.IGNORECASE) if ident else r["file"]
        item = f"  {file} ({r['location']}{field}): value of {r['attribute']}{cat}"
        if item not in seen:
            seen.append(item)
    more = f"\n  ... and {len(seen) - limit} more" if len(seen) > limit else ""
    files = len({r["file"] for r in rows})
    return f"{len(rows)} identifying value(s) found in {files} released file(s):\n" + "\n".join(seen[:limit]) + more


def check_audit(audit_tsv: str | os.PathLike) -> int:
    """Raise :class:`AuditFailed` when the audit table lists any hit; return the number of files scanned."""
    rows = read_audit_table(audit_tsv)
    if rows:
        raise AuditFailed(
            "RELEASE AUDIT FAILED: "
            + summarize_hits(rows)
            + f"\nThe release is NOT safe to share. Details (with the identifiers) in the private file {audit_tsv}; "
            "for each hit: fix de-identification, reject the item (review.decisions), or, for a harmless "
            "word that is not a direct identifier, allow it in audit.allow with a reason."
        )
    with open(audit_tsv, encoding="utf-8") as fh:
        m = re.search(r"(\d+) files scanned", fh.readline())
    return int(m.group(1)) if m else 0
