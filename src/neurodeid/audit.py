"""The release audit: scan every released byte for the raw data's identifiers.

Two halves:

1. **Needles** (private). Every identifying value of the raw headers: all values
   of the attributes that DICOM PS3.15 Table E.1-1 does not keep (action other
   than ``K`` under the active options), at every sequence depth, private
   elements included; plus the words of the raw file and folder names.
2. **Scan**. Every file of the release: its bytes (for ``.gz`` files the gzip
   header and the decompressed bytes), and every file and folder name, matched
   case-insensitively against all needles at once (Aho-Corasick). Image payloads
   (NIfTI voxels, NRRD data, DICOM PixelData) are matched against the long
   needles only: random voxel bytes spell three-letter names by chance
   (measured: "DOE" twice in one 3 MB compressed T1w), and text burned into
   pixels is found by OCR in the redaction stage, not by byte matching.

A hit names the released file and the attribute the needle came from; the
identifier itself is never printed, only written to the private audit table.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import ahocorasick
import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.uid import UID_dictionary

from .fileio import write_text_atomic
from .profile import ActionTable, load_table

#: VRs whose values are never text; they are not turned into needles.
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "US", "SS", "UL", "SL", "FL", "FD", "AT", "SV", "UV"})

#: VRs holding numbers as text: only long digit runs are identifying.
NUMERIC_TEXT_VRS = frozenset({"IS", "DS"})

#: A needle made of digits only must have at least this many digits (dates
#: have 8; shorter numbers occur by chance everywhere).
MIN_DIGITS = 6

#: Needles shorter than this many characters must match as a whole token
#: (not preceded or followed by a letter or digit).
TOKEN_MATCH_BELOW = 8

DEFAULT_MIN_LENGTH = 3

#: Where in a released file a hit was found.
LOC_NAME, LOC_BYTES, LOC_GUNZIPPED = "name", "bytes", "gunzipped bytes"


@dataclass(frozen=True)
class Needle:
    """An identifying string and where it came from (attribute or path word)."""

    text: str
    source: str


@dataclass(frozen=True)
class Hit:
    file: str  # relative to the release root
    location: str  # LOC_NAME / LOC_BYTES / LOC_GUNZIPPED
    offset: int
    source: str  # the attribute the needle came from
    needle: str  # private: never printed


# --------------------------------------------------------------------------- needles


def path_stopwords() -> frozenset[str]:
    """Words of file and folder names that identify nobody (``data/audit_path_stopwords.txt``)."""
    text = resources.files("neurodeid").joinpath("data/audit_path_stopwords.txt").read_text()
    words = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.update(w.lower() for w in line.split())
    return frozenset(words)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _keep_needle(text: str, min_length: int) -> bool:
    """Is ``text`` specific enough to be looked for?

    Too short, no letter or digit, or a number (other than a run of at least
    :data:`MIN_DIGITS` digits, which may be an ID or a date): not a needle.
    """
    text = text.strip()
    if len(text) < min_length or not any(c.isalnum() for c in text):
        return False
    if _is_number(text):
        return text.isdigit() and len(text) >= MIN_DIGITS
    return True


def _is_public_uid(value: str) -> bool:
    return value in UID_dictionary or value.startswith("1.2.840.10008.")


def _date_variants(value: str) -> list[str]:
    """A DICOM date (``YYYYMMDD``) and the ISO form converters write (``YYYY-MM-DD``)."""
    out = [value]
    if len(value) >= 8 and value[:8].isdigit():
        out.append(f"{value[:4]}-{value[4:6]}-{value[6:8]}")
    return out


def element_needles(elem, min_length: int) -> list[str]:
    """The needle strings of one data element's value (empty for binary VRs)."""
    vr = elem.VR
    if vr in BINARY_VRS:
        return []
    if vr == "UN":
        raw = elem.value if isinstance(elem.value, (bytes, bytearray)) else b""
        runs = re.findall(rb"[\x20-\x7e]{%d,}" % max(min_length, 4), bytes(raw))
        return [r.decode("ascii").strip() for r in runs if _keep_needle(r.decode("ascii"), min_length)]
    values = elem.value if isinstance(elem.value, pydicom.multival.MultiValue) else [elem.value]
    out: list[str] = []
    for v in values:
        if v is None:
            continue
        text = str(v).strip().rstrip("\x00")
        if not text:
            continue
        if vr == "UI" and _is_public_uid(text):
            continue
        if vr in NUMERIC_TEXT_VRS and not (text.isdigit() and len(text) >= MIN_DIGITS):
            continue
        if vr == "DA":
            out.extend(_date_variants(text))
            continue
        out.append(text)
        if vr == "PN":
            out.extend(w for w in re.split(r"[\^=\s,]+", text) if w)
    return [t for t in out if _keep_needle(t, min_length)]


def dataset_needles(
    ds: pydicom.Dataset, options=(), table: ActionTable | None = None, min_length: int = DEFAULT_MIN_LENGTH
) -> set[Needle]:
    """All needles of one dataset, at every depth, private elements included.

    An element contributes needles unless Table E.1-1 gives it ``K`` under
    ``options``. Elements the table does not list contribute too when they are
    private (odd group); other unlisted standard elements (pixel and geometry
    attributes, acquisition parameters) do not. Sequences are always entered,
    whatever their action.
    """
    table = table or load_table()
    found: set[Needle] = set()
    kept: set[str] = set()

    def walk(dataset: pydicom.Dataset, path: str) -> None:
        for elem in dataset:
            tag = int(elem.tag)
            action = table.action(tag, options)
            name = keyword_for_tag(elem.tag) or f"({elem.tag.group:04X},{elem.tag.element:04X})"
            where = f"{path}{name}"
            if elem.VR == "SQ":
                for i, item in enumerate(elem.value or []):
                    walk(item, f"{where}[{i}].")
                continue
            if elem.tag.is_private_creator:
                continue  # "SIEMENS CSA HEADER": names a vendor's block, not a person
            if (action is None and not elem.tag.is_private) or action == "K":
                kept.update(t.lower() for t in element_needles(elem, 1))
                continue
            texts = element_needles(elem, min_length)
            if action == "C" and elem.VR == "TM":
                # Modified dates shift whole days: the time of day is kept by design.
                continue
            for text in texts:
                found.add(Needle(text, where))

    walk(ds, "")
    # A value that the same dataset also holds in a kept attribute (a private copy
    # of the model name "LightSpeed" inside "LightSpeed Ultra", of "EPI") is not
    # identifying: finding it in the release is expected.
    # Judged the way the scan matches (short needles as whole tokens only).
    if found and kept:
        expected = {n for _, n in Matcher(list(found)).find("\x00".join(sorted(kept)))}
        found -= expected
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for kw in ("MediaStorageSOPInstanceUID",):
            v = str(meta.get(kw, "") or "")
            if v and not _is_public_uid(v):
                found.add(Needle(v, kw))
    return found


def path_needles(relative_paths, min_length: int = DEFAULT_MIN_LENGTH) -> set[Needle]:
    """Needles from the words of raw file and folder names.

    Names are split on anything that is not a letter or digit; words in the
    stop list (``dicom``, ``series``, ``t1``...) and short numbers are dropped.
    """
    stop = path_stopwords()
    found: set[Needle] = set()
    for rel in relative_paths:
        for part in str(rel).split("/"):
            for word in re.split(r"[^0-9A-Za-z\u00c0-\u024f]+", part):
                if word and word.lower() not in stop and _keep_needle(word, min_length):
                    found.add(Needle(word, "raw file/folder name"))
    return found


def read_file_needles(path: str | os.PathLike, options=(), min_length: int = DEFAULT_MIN_LENGTH) -> set[Needle]:
    """Needles of one raw DICOM file (header only; pixel data is never read)."""
    ds = pydicom.dcmread(os.fspath(path), stop_before_pixels=True, force=True)
    return dataset_needles(ds, options, min_length=min_length)


def save_needles(path: str | os.PathLike, needles: set[Needle]) -> None:
    """Write needles as sorted JSON (private)."""
    rows = sorted({(n.text, n.source) for n in needles})
    write_text_atomic(path, json.dumps(rows, ensure_ascii=False, indent=0) + "\n")


def load_needles(paths, min_length: int | None = None) -> list[Needle]:
    """Needles from saved lists; with ``min_length``, only those the audit looks for
    at that length (the lists are collected with a lower bound, the config decides)."""
    out: set[Needle] = set()
    for p in paths:
        out.update(Needle(t, s) for t, s in json.loads(Path(p).read_text(encoding="utf-8")))
    if min_length is not None:
        out = {n for n in out if _keep_needle(n.text, min_length)}
    return sorted(out, key=lambda n: (n.text, n.source))


# --------------------------------------------------------------------------- scanning


def _is_word_char(c: str) -> bool:
    """ASCII letters and digits join a token; any other byte (binary, punctuation) ends it."""
    return c.isascii() and c.isalnum()


class Matcher:
    """Case-insensitive multi-needle matcher over text and bytes.

    Bytes are matched through their Latin-1 decoding (one character per byte),
    so every needle is entered in its UTF-8-as-Latin-1 spelling too.
    """

    def __init__(self, needles: list[Needle]):
        self.needles = list(needles)
        self._automaton = ahocorasick.Automaton()
        entries: dict[str, list[Needle]] = {}
        for n in needles:
            spellings = {n.text.lower()}
            try:
                spellings.add(n.text.encode("utf-8").decode("latin-1").lower())
            except UnicodeError:
                pass
            for s in spellings:
                entries.setdefault(s, []).append(n)
        for s, ns in entries.items():
            self._automaton.add_word(s, (s, ns))
        self.empty = not entries
        if not self.empty:
            self._automaton.make_automaton()

    def long_only(self) -> "Matcher":
        """A matcher of the needles that cannot match by chance (>= TOKEN_MATCH_BELOW characters)."""
        return Matcher([n for n in self.needles if len(n.text) >= TOKEN_MATCH_BELOW])

    def find(self, text: str) -> list[tuple[int, Needle]]:
        """(offset, needle) of each match in ``text`` (any case)."""
        if self.empty:
            return []
        low = text.lower()
        hits = []
        for end, (s, ns) in self._automaton.iter(low):
            start = end - len(s) + 1
            if len(s) < TOKEN_MATCH_BELOW or s.isdigit():
                before = low[start - 1] if start > 0 else " "
                after = low[end + 1] if end + 1 < len(low) else " "
                if _is_word_char(before) or _is_word_char(after):
                    continue
            for n in ns:
                hits.append((start, n))
        return hits


def _gunzip(data: bytes) -> bytes | None:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return None


def gzip_header_end(data: bytes) -> int:
    """Length of a gzip member's header (with its FNAME / FCOMMENT text), RFC 1952.

    The compressed stream after it holds no readable text; its bytes would only
    match short needles by chance.
    """
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


def payload_range(name: str, data: bytes) -> tuple[int, int] | None:
    """The image payload of a released file (voxel or pixel values), or None.

    NIfTI: after ``vox_offset`` (header and extensions are text-bearing);
    NRRD: after the blank line that ends the header; DICOM: the value of the
    top-level PixelData element. Payloads are matched only against needles long
    enough never to occur by chance (see :data:`TOKEN_MATCH_BELOW`): burned-in
    text in pixels is the redaction stage's job (OCR), not a byte match.
    """
    import struct

    low = name.lower()
    if low.endswith((".nii", ".nii.gz")) and len(data) >= 352:
        for order in ("<", ">"):
            if struct.unpack(order + "i", data[:4])[0] == 348:
                vox = int(struct.unpack(order + "f", data[108:112])[0])
                return (max(vox, 348), len(data))
        return None
    if low.endswith(".nrrd"):
        end = data.find(b"\n\n")
        return (end + 2, len(data)) if end >= 0 else None
    if low.endswith(".dcm") or data[128:132] == b"DICM":
        import io

        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True, defer_size=64)
            elem = ds.get_item(0x7FE00010)
        except Exception:
            return None
        if elem is None or not getattr(elem, "file_tell", None):
            return None
        start = elem.file_tell
        little = getattr(ds, "is_little_endian", True) is not False
        length = int.from_bytes(data[start - 4 : start], "little" if little else "big")
        end = len(data) if length == 0xFFFFFFFF else min(len(data), start + length)
        return (start, end)
    return None


def scan_bytes(name: str, data: bytes, matcher: "Matcher", long_matcher: "Matcher", location: str):
    """(offset, needle, location) of every hit in one file's bytes.

    All needles are looked for everywhere except in the image payload, where
    only long needles are (:func:`payload_range`).
    """
    text = data.decode("latin-1")
    payload = payload_range(name, data)
    out = []
    if payload is None:
        out += [(o, n) for o, n in matcher.find(text)]
    else:
        a, b = payload
        out += [(o, n) for o, n in matcher.find(text[:a])]
        out += [(o + b, n) for o, n in matcher.find(text[b:])]
        out += [(o + a, n) for o, n in long_matcher.find(text[a:b])]
    return [(o, n, location) for o, n in out]


def scan_release(release_dir: str | os.PathLike, matcher: Matcher,
                 long_matcher: Matcher | None = None) -> tuple[list[Hit], int]:
    """Scan every file and folder below ``release_dir``; return (hits, files scanned).

    ``.gz`` files: their gzip header (which can name the original file) and
    their decompressed content; other files: their bytes. ``long_matcher``
    (default: the needles of ``matcher`` of at least :data:`TOKEN_MATCH_BELOW`
    characters) is used on image payloads.
    """
    root = Path(release_dir)
    if long_matcher is None:
        long_matcher = matcher.long_only()
    hits: list[Hit] = []
    n_files = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(dirnames) + sorted(filenames):
            rel = (rel_dir / name).as_posix()
            for off, n in matcher.find(name):
                hits.append(Hit(rel, LOC_NAME, off, n.source, n.text))
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            data = (Path(dirpath) / name).read_bytes()
            n_files += 1
            raw = _gunzip(data) if name.endswith(".gz") else None
            if raw is None:
                found = scan_bytes(name, data, matcher, long_matcher, LOC_BYTES)
            else:
                head = data[: gzip_header_end(data)]
                found = [(o, n, LOC_BYTES) for o, n in matcher.find(head.decode("latin-1"))]
                found += scan_bytes(name[: -len(".gz")], raw, matcher, long_matcher, LOC_GUNZIPPED)
            hits.extend(Hit(rel, loc, off, n.source, n.text) for off, n, loc in found)
    return hits, n_files


AUDIT_COLUMNS = ("file", "location", "offset", "attribute", "identifier")


def write_audit_table(path: str | os.PathLike, hits: list[Hit], n_files: int, n_needles: int) -> None:
    """Write the private audit table: one row per hit, and a summary comment line."""
    lines = [f"# release audit: {n_files} files scanned, {n_needles} needles, {len(hits)} hits", "\t".join(AUDIT_COLUMNS)]
    for h in hits:
        ident = h.needle.replace("\t", " ").replace("\n", " ")
        lines.append("\t".join([h.file, h.location, str(h.offset), h.source, ident]))
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_audit_table(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [line for line in fh if not line.startswith("#")]
    return list(csv.DictReader(rows, delimiter="\t"))


def audit_release(release_dir, needle_files, audit_tsv, min_length: int | None = None) -> list[Hit]:
    """Scan ``release_dir`` against the needles in ``needle_files``; write ``audit_tsv``."""
    needles = load_needles(needle_files, min_length)
    hits, n_files = scan_release(release_dir, Matcher(needles))
    write_audit_table(audit_tsv, hits, n_files, len(needles))
    return hits


class AuditFailed(RuntimeError):
    """The release holds identifying values; the message names files and attributes only."""


def summarize_hits(rows: list[dict], limit: int = 20) -> str:
    """A console-safe summary of audit rows: file, location and attribute, never the identifier."""
    seen = []
    for r in rows:
        item = f"  {r['file']} ({r['location']}): value of {r['attribute']}"
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
            + f"\nThe release is NOT safe to share. Details (with the identifiers) in the private file {audit_tsv}."
        )
    with open(audit_tsv, encoding="utf-8") as fh:
        m = re.search(r"(\d+) files scanned", fh.readline())
    return int(m.group(1)) if m else 0
