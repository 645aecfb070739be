"""Sanitizers for allow-listed private elements that cannot be kept verbatim.

A transform takes the element's bytes and returns sanitized bytes, or ``None``
to remove the element. Transforms are registered by the allow-list key
``(private_creator, group, element_low_byte)``; every kept private element
without a transform is kept as it is.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from functools import lru_cache
from importlib import resources


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


def _csa2_zero_slack(data: bytearray) -> bool:
    """Zero the slack bytes of a CSA2 ("SV10") header in place.

    Tag names are 64-byte fields and item values are padded to 4 bytes;
    Siemens leaves stale memory there (fragments of the protocol, names).
    Returns False when the structure does not parse (the caller drops it).
    """
    import struct as _s

    if data[:4] != b"SV10" or len(data) < 16:
        return False
    (n_tags,) = _s.unpack_from("<I", data, 8)
    if n_tags > 1000:
        return False
    off = 16
    for _ in range(n_tags):
        if off + 84 > len(data):
            return False
        name = data[off : off + 64]
        nul = name.find(b"\x00")
        if nul >= 0:
            data[off + nul : off + 64] = b"\x00" * (64 - nul)
        vr_off = off + 68
        vr_nul = data[vr_off : vr_off + 4].find(b"\x00")
        if vr_nul >= 0:
            data[vr_off + vr_nul : vr_off + 4] = b"\x00" * (4 - vr_nul)
        (n_items,) = _s.unpack_from("<i", data, off + 76)
        off += 84
        if not 0 <= n_items <= 100000:
            return False
        for _ in range(n_items):
            if off + 16 > len(data):
                return False
            (item_len,) = _s.unpack_from("<i", data, off + 4)
            if item_len < 0 or off + 16 + item_len > len(data):
                return False
            padded = (item_len + 3) // 4 * 4
            end = min(off + 16 + padded, len(data))
            data[off + 16 + item_len : end] = b"\x00" * (end - off - 16 - item_len)
            off += 16 + padded
    return True


_QUOTED_RE = re.compile(rb'("+)([^"\n]*)("+)')


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
    not CSA2.
    """
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
