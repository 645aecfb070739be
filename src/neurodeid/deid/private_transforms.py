"""Sanitizers for allow-listed private elements that cannot be kept verbatim.

A transform takes the element's bytes and returns sanitized bytes, or ``None``
to remove the element. Transforms are registered by the allow-list key
``(private_creator, group, element_low_byte)``; every kept private element
without a transform is kept as it is. Each transform is a pure function of the
bytes: its result for the last few values is remembered
(:func:`neurodeid.deid.bytesmemo.memo_by_bytes`; a vendor's protocol block is
the same in every file of a series).
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from functools import lru_cache
from importlib import resources

from neurodeid.deid.bytesmemo import memo_by_bytes


@lru_cache(maxsize=1)
def ge_protocol_keys() -> frozenset[str]:
    """Keys kept in a sanitized GE Protocol Data Block (``deid_ge_protocol_keys.tsv``)."""
    text = resources.files("neurodeid").joinpath("data/deid_ge_protocol_keys.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return frozenset(r[0] for r in rows[1:])


def _gzip_deterministic(body: bytes) -> bytes:
    """gzip with no name, zero time, XFL 2 and OS 255 (identical on every platform and Python)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = co.compress(body) + co.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + raw + struct.pack("<II", zlib.crc32(body) & 0xFFFFFFFF, len(body) & 0xFFFFFFFF)


_LINE_RE = re.compile(rb'^([A-Z0-9_]+) "(-?[0-9]+(?:\.[0-9]+)?)"\s*$')


@memo_by_bytes()
def sanitize_ge_protocol_block(value: bytes) -> bytes | None:
    """Rewrite a GE Protocol Data Block (0025,101B) to its allowed numeric keys.

    Layout (as dcm2niix reads it): a 4-byte little-endian length, then a gzip
    stream of ``KEY "value"`` lines. The output keeps only lines whose key is
    in :func:`ge_protocol_keys` and whose value is a number, recompressed
    with no file name and a zero time stamp (deterministic); trailing
    newlines make the length even, because a pad byte would corrupt the gzip
    size trailer that dcm2niix reads from the last 4 bytes. Returns ``None`` (remove the element) when the block cannot be
    parsed or is in the newer XML form.
    """
    if not isinstance(value, (bytes, bytearray)) or len(value) < 24:
        return None
    (n,) = struct.unpack("<I", value[:4])
    try:
        text = gzip.decompress(bytes(value[4 : 4 + n]))
    except (OSError, EOFError, zlib.error):
        return None
    if text.lstrip().startswith(b"<"):
        return None  # XML protocol block: not parsed, removed
    keep = ge_protocol_keys()
    lines = []
    for line in text.splitlines():
        m = _LINE_RE.match(line.strip())
        if m and m.group(1).decode() in keep:
            lines.append(m.group(0).strip())
    if not lines:
        return None
    # a leading newline: dcm2niix finds a key only after a line break, not at offset 0
    body = b"\n" + b"\n".join(lines) + b"\n"
    for _ in range(8):  # even length without padding: readers take the gzip size trailer from the last 4 bytes
        comp = _gzip_deterministic(body)
        if len(comp) % 2 == 0:
            return struct.pack("<I", len(comp)) + comp
        body += b"\n"
    return None


@lru_cache(maxsize=1)
def siemens_protocol_keys() -> frozenset[str]:
    """ASCCONV keys whose string values survive (``deid_siemens_protocol_keys.tsv``)."""
    text = resources.files("neurodeid").joinpath("data/deid_siemens_protocol_keys.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return frozenset(r[0] for r in rows[1:])


_UID_RE = re.compile(rb"(?<![0-9.])[0-9]+(?:\.[0-9]+){4,}(?![0-9.])")
_ASC_LINE_RE = re.compile(rb'^([A-Za-z0-9_.\[\]]+)(\s*=\s*"+)([^"\n]*)("+)', re.MULTILINE)


def _fill(match: re.Match, group: int = 2) -> bytes:
    g = match.groups()
    value = g[group - 1]
    return b"".join(g[: group - 1]) + b"X" * len(value) + b"".join(g[group:])


def _zero_uid(match: re.Match) -> bytes:
    return re.sub(rb"[0-9]", b"0", match.group(0))


_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from


#: CSA items that hold a whole document, not protocol numbers: the exam protocol tree of a
#: Siemens "Phoenix Document" (an SR whose ImageType says CSA REPORT: PhoenixZIP, an XML
#: of every protocol, program and step name of the exam, with dates and free comments) and
#: its serialised message (SrMsgBuffer). No converter reads them.
_DOCUMENT_ITEMS = frozenset({b"PhoenixZIP", b"SrMsgBuffer"})


def _csa2_zero_slack(data: bytearray) -> bool:
    """Zero the slack bytes of a CSA2 ("SV10") header in place, and the value of every
    item that holds a document (those of :data:`_DOCUMENT_ITEMS` and any that starts as
    XML, ``<?xml``: names the site chose, comments and dates, which the table's actions on
    the dataset never see), lengths kept.

    Tag names are 64-byte fields and item values are padded to 4 bytes;
    Siemens leaves stale memory there (fragments of the protocol, names).
    Returns False when the structure does not parse (the caller drops it).
    """
    size = len(data)
    if data[:4] != b"SV10" or size < 16:
        return False
    (n_tags,) = _U32(data, 8)
    if n_tags > 1000:
        return False
    off = 16
    for _ in range(n_tags):
        if off + 84 > size:
            return False
        nul = data.find(0, off, off + 64)
        document = bytes(data[off:nul if nul >= 0 else off + 64]) in _DOCUMENT_ITEMS
        if nul >= 0:
            data[nul : off + 64] = bytes(off + 64 - nul)
        vr_nul = data.find(0, off + 68, off + 72)
        if vr_nul >= 0:
            data[vr_nul : off + 72] = bytes(off + 72 - vr_nul)
        (n_items,) = _I32(data, off + 76)
        off += 84
        if not 0 <= n_items <= 100000:
            return False
        for _ in range(n_items):
            if off + 16 > size:
                return False
            (item_len,) = _I32(data, off + 4)
            start = off + 16 + item_len
            if item_len < 0 or start > size:
                return False
            if item_len and (document or data[off + 16:off + 21] == b"<?xml"):
                data[off + 16:start] = bytes(item_len)
            off += 16 + (item_len + 3) // 4 * 4
            end = min(off, size)
            if end > start:
                data[start:end] = bytes(end - start)
    return True


_QUOTED_RE = re.compile(rb'("+)([^"\n]*)("+)')

#: Four dots around three numbers: every match of :data:`_UID_RE` (five or more dotted
#: numbers) holds one; a literal to search for, where ``_UID_RE`` tries every byte.
_UID_HINT = re.compile(rb"\.[0-9]+\.[0-9]+\.[0-9]+\.")
_UID_FULL = re.compile(rb"[0-9]+(?:\.[0-9]+){4,}")
_UID_CHARS = frozenset(b"0123456789.")
_ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")


def _zero_uids(data: bytes) -> bytes:
    """``_UID_RE.sub(_zero_uid, data)``, searched faster.

    A match of :data:`_UID_RE` is a whole run of digits and dots (the look-arounds
    exclude both around it) that reads as five or more dotted numbers, so it holds a
    match of :data:`_UID_HINT`: each run around a hint is checked whole and its digits
    zeroed when it reads as a UID.
    """
    out = None
    done = -1
    chars = _UID_CHARS
    for m in _UID_HINT.finditer(data):
        a, b = m.start(), m.end()
        if a < done:
            continue
        while a > 0 and data[a - 1] in chars:
            a -= 1
        while b < len(data) and data[b] in chars:
            b += 1
        done = b
        if _UID_FULL.fullmatch(data, a, b):
            if out is None:
                out = bytearray(data)
            out[a:b] = data[a:b].translate(_ZERO_DIGITS)
    return data if out is None else bytes(out)


def _blank_quoted(text: bytes) -> bytes:
    """``_QUOTED_RE.sub(_fill, text)``: every quoted string's bytes become ``X``."""
    parts = _QUOTED_RE.split(text)  # [before, quotes, value, quotes, before, ...]
    for i in range(2, len(parts), 4):
        parts[i] = b"X" * len(parts[i])
    return b"".join(parts)


_ASSIGN_QUOTE = re.compile(rb'=\s*"')
_KEY_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.[]")
_SPACE = frozenset(b" \t\n\r\f\v")


def _asc_matches(block: bytes):
    """The matches of ``_ASC_LINE_RE.finditer(block)``, found from the ``= "`` of each.

    A match starts at a line start with a key, blanks, ``=``, blanks and a quote: the
    key and the line start are found back from the ``=`` (the only ``=`` the match can
    use), and the pattern is tried there, non-overlapping as ``finditer`` is.
    """
    done = 0
    for hint in _ASSIGN_QUOTE.finditer(block):
        s = hint.start()
        while s > 0 and block[s - 1] in _SPACE:
            s -= 1
        key_end = s
        while s > 0 and block[s - 1] in _KEY_CHARS:
            s -= 1
        if s == key_end or (s > 0 and block[s - 1] != 0x0A) or s < done:
            continue
        m = _ASC_LINE_RE.match(block, s)
        if m is not None:
            done = m.end()
            yield m


def _blank_asc(block: bytes, keep: frozenset) -> bytes:
    """``_ASC_LINE_RE.sub`` over an ASCCONV block: each quoted value is overwritten with
    ``X`` unless its key (last dotted component, indices dropped) is in ``keep``."""
    out = None
    for m in _asc_matches(block):
        key = re.sub(rb"\[[0-9]*\]", b"", m.group(1)).split(b".")[-1].decode("ascii", "replace")
        if key not in keep:
            if out is None:
                out = bytearray(block)
            out[m.start(3) : m.end(3)] = b"X" * (m.end(3) - m.start(3))
    return block if out is None else bytes(out)


@memo_by_bytes()
def sanitize_siemens_csa(value: bytes) -> bytes | None:
    """Length-preserving sanitization of a Siemens CSA2 header (0029,xx10 / xx20).

    - the slack of the CSA structure (bytes after the NUL of each 64-byte tag
      name, item padding) is zeroed: Siemens leaves stale memory there;
    - UIDs (5 or more dotted numbers) anywhere become zeros: the protocol's
      reference images carry the scanner serial and a date-time;
    - in MrPhoenixProtocol: each quoted string value of the ASCCONV block is
      overwritten with ``X`` unless its key (last dotted component, indices
      dropped) is in :func:`siemens_protocol_keys`; every quoted string of
      the XML part before it (protocol name, defaults, file paths) too.

    The byte length never changes, so the CSA item lengths stay valid and
    converters read the numeric protocol (echo spacing, slice timing, ...)
    as before. Returns ``None`` (remove the element) for headers that are
    not CSA2. The same bytes as :func:`_sanitize_siemens_csa_by_regex` (the
    substitutions written as regex callbacks), found faster; the result for the
    last few values is remembered (a series header repeats in every file of its
    series, :func:`neurodeid.deid.bytesmemo.memo_by_bytes`).
    """
    if not isinstance(value, (bytes, bytearray)):
        return None
    buf = bytearray(value)
    if not _csa2_zero_slack(buf):
        return None
    data = _zero_uids(bytes(buf))
    begin = data.find(b"### ASCCONV BEGIN")
    end = data.find(b"### ASCCONV END", begin + 1) if begin >= 0 else -1
    if begin >= 0 and end > begin:
        xml_start = max(data.rfind(b"MrPhoenixProtocol", 0, begin), 0)
        head = _blank_quoted(data[xml_start:begin])
        data = data[:xml_start] + head + _blank_asc(data[begin:end], siemens_protocol_keys()) + data[end:]
    if len(data) != len(value):  # never: every substitution preserves length
        return None
    return data


def _sanitize_siemens_csa_by_regex(value: bytes) -> bytes | None:
    """:func:`sanitize_siemens_csa` as first written (regex substitutions with callbacks):
    the reference the faster version is tested against."""
    if not isinstance(value, (bytes, bytearray)):
        return None
    buf = bytearray(value)
    if not _csa2_zero_slack(buf):
        return None
    data = _UID_RE.sub(_zero_uid, bytes(buf))
    begin = data.find(b"### ASCCONV BEGIN")
    end = data.find(b"### ASCCONV END", begin + 1) if begin >= 0 else -1
    if begin >= 0 and end > begin:
        keep = siemens_protocol_keys()

        def asc(m: re.Match) -> bytes:
            key = re.sub(rb"\[[0-9]*\]", b"", m.group(1)).split(b".")[-1].decode("ascii", "replace")
            return m.group(0) if key in keep else _fill(m, 3)

        xml_start = data.rfind(b"MrPhoenixProtocol", 0, begin)
        xml_start = max(xml_start, 0)
        head = _QUOTED_RE.sub(_fill, data[xml_start:begin])
        data = data[:xml_start] + head + _ASC_LINE_RE.sub(asc, data[begin:end]) + data[end:]
    if len(data) != len(value):  # never: every substitution preserves length
        return None
    return data


#: Printable text inside a binary block: 4 or more printable ASCII bytes in a row.
_TEXT_RUN = re.compile(rb"[\x20-\x7e]{4,}")


@memo_by_bytes()
def blank_text_runs(value: bytes) -> bytes | None:
    """Overwrite every run of 4+ printable ASCII bytes of a binary block with zeros.

    GE's UserDefineData (0043,xx2A) is a binary structure that dcm2niix reads at
    fixed offsets (numbers and flags, e.g. the phase-encoding polarity), but it
    also carries text: the acquisition date as ``09/18/118``, the time, the
    exam number, the station ("CT01") and product names, which the date shift
    and the table never see. Blanking the text keeps every offset (the length
    is unchanged) and every number that is not spelled as 4+ printable bytes.
    """
    if not isinstance(value, (bytes, bytearray)):
        return None
    return _TEXT_RUN.sub(lambda m: b"\x00" * len(m.group(0)), bytes(value))


#: ``{(private_creator, group, element_low_byte): transform}``.
TRANSFORMS = {
    ("GEMS_PARM_01", 0x0043, 0x2A): blank_text_runs,
    ("GEMS_SERS_01", 0x0025, 0x1B): sanitize_ge_protocol_block,
    ("SIEMENS CSA HEADER", 0x0029, 0x10): sanitize_siemens_csa,
    ("SIEMENS CSA HEADER", 0x0029, 0x20): sanitize_siemens_csa,
}
