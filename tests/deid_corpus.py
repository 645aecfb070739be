"""A planted-identifier DICOM corpus for testing and benchmarking de-identification.

Built from real pydicom test files (``CT_small.dcm``, ``MR_small.dcm``,
``test-SR.dcm``). Every attribute of PS3.15 Table E.1-1 is planted with a
value: a distinct marker string (``NDMK00001Q``, ...) when its VR can hold
text, a distinct date, time, UID or number otherwise. Planted at depth 0 and
at depths 1-3 (a chain of nested sequences), in private blocks (top level and
nested, including a non-allow-listed element under an allow-listed creator),
in SR content items (depths 1-3), in overlays (60xx) and curves (50xx), and in
unlisted text attributes (every non-retired dictionary attribute with a text
VR that neither the table nor the safe set lists).

Importable by other tests and by ``benchmarks/bench_deid.py``::

    corpus = build_corpus(tmp_path, options)
    corpus.files           # the planted files
    corpus.planted         # what was planted where
    find_markers(data)     # markers present in some bytes
    unchanged_values(corpus, outputs)  # planted non-K values still present
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.datadict import DicomDictionary, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from neurodeid.deid.rules import PSEUDONYM_TAGS, load_safe_attributes, resolve_action
from neurodeid.deid.profile import load_table

MARKER_RE = re.compile(rb"NDMK\d{5}Q")
#: VRs that can hold a 10-character upper-case marker.
MARKABLE_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})
_NUMERIC_VRS = {"US": 1, "SS": 1, "UL": 1, "SL": 1, "FL": 1.5, "FD": 2.5, "SV": 1, "UV": 1}
_BYTES_VRS = {"OB", "OW", "UN", "OD", "OF", "OL", "OV"}
BASE_FILES = ("CT_small.dcm", "MR_small.dcm", "test-SR.dcm")


@dataclass
class Planted:
    """One planted value.

    ``path`` is a tuple of ``(sequence_tag, item_index)`` steps from the top
    dataset to the dataset holding ``tag``; ``expect`` is the table action
    resolved for the corpus options (``"K"`` = the table keeps it).
    """

    file: str
    path: tuple
    tag: int
    vr: str
    value: object
    marker: bool
    expect: str


@dataclass
class Corpus:
    files: list = field(default_factory=list)
    planted: list = field(default_factory=list)
    options: frozenset = frozenset()
    markers: set = field(default_factory=set)


class _Planter:
    def __init__(self, options):
        self.options = frozenset(options)
        self.table = load_table()
        self.n = 0
        self.corpus = Corpus(options=self.options)
        self.file = ""

    def marker(self) -> str:
        self.n += 1
        m = f"NDMK{self.n:05d}Q"
        self.corpus.markers.add(m)
        return m

    def value_for(self, vr: str):
        """A distinct planted value for ``vr``: (value, is_marker) or None if not plantable."""
        self.n += 1
        n = self.n
        if vr in MARKABLE_VRS:
            self.n -= 1
            return self.marker(), True
        if vr == "DA":
            return f"1961{1 + n % 12:02d}{1 + n % 28:02d}", False
        if vr == "DT":
            return f"1962{1 + n % 12:02d}{1 + n % 28:02d}101112.{n:06d}", False
        if vr == "TM":
            return f"10{n % 60:02d}{(n // 60) % 60:02d}.{n:06d}", False
        if vr == "UI":
            return f"1.2.826.0.1.3680043.10.999.{n}", False
        if vr in ("DS", "IS"):
            return str(1000 + n), False
        if vr == "AS":
            return "042Y", False
        if vr in _NUMERIC_VRS:
            return (7000 + n) if _NUMERIC_VRS[vr] == 1 else float(7000 + n) + 0.25, False
        if vr in _BYTES_VRS:
            m = self.marker().encode()
            return m + b"\x00" * (len(m) % 2), True
        return None

    def add(self, ds: Dataset, path: tuple, tag: int, vr: str, expect: str, value=None) -> None:
        if value is None:
            got = self.value_for(vr)
            if got is None:
                return
            value, is_marker = got
        else:
            is_marker = isinstance(value, (str, bytes)) and bool(
                MARKER_RE.search(value.encode() if isinstance(value, str) else value)
            )
        ds.add_new(tag, vr, value)
        self.corpus.planted.append(Planted(self.file, path, tag, vr, value, is_marker, expect))

    def expect(self, tag: int) -> str:
        code = self.table.action(tag, self.options)
        return "" if code is None else resolve_action(code, tag)

    def plant_table_rows(self, ds: Dataset, path: tuple, with_sequences: bool = True) -> None:
        """Every exact table row: a value (non-sequence) or an item holding a marker (sequence)."""
        for row in self.table.rows:
            if "x" in row.tag or row.tag == "PRIVATE":
                continue
            tag = int(row.tag, 16)
            if tag >> 16 in (0x0000, 0x0002, 0x0004) or tag in ds:
                continue
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
            if " or " in vr:
                continue
            exp = "PSEUDO" if tag in PSEUDONYM_TAGS else self.expect(tag)
            if vr == "SQ":
                if not with_sequences or exp == "K":
                    continue
                item = Dataset()
                self.add(item, path + ((tag, 0),), 0x00081070, "PN", self.expect(0x00081070))  # Operators' Name
                self.add(item, path + ((tag, 0),), 0x00100010, "PN", "PSEUDO")
                ds.add_new(tag, "SQ", Sequence([item]))
                continue
            if exp == "K":
                continue  # the table keeps it under these options: not an identifier to plant
            self.add(ds, path, tag, vr, exp)

    def plant_private(self, ds: Dataset, path: tuple, group: int, creator: str) -> None:
        ds.add_new((group << 16) | 0x0010, "LO", creator)
        self.add(ds, path, (group << 16) | 0x1001, "LO", "X")
        self.add(ds, path, (group << 16) | 0x1002, "UT", "X")

    def plant_unlisted(self, ds: Dataset, path: tuple) -> None:
        safe = load_safe_attributes()
        for tag, entry in DicomDictionary.items():
            vr, _vm, _name, retired, _kw = entry
            if retired or vr not in MARKABLE_VRS or tag in safe or tag in ds:
                continue
            group = tag >> 16
            if group in (0x0000, 0x0002, 0x0004, 0x0012) or group >= 0xFFFE or self.table.row(tag) is not None:
                continue
            if 0x5000 <= group <= 0x60FF:
                continue
            self.add(ds, path, tag, vr, "N")


def _nested(ds: Dataset, tag: int) -> Dataset:
    item = Dataset()
    ds.add_new(tag, "SQ", Sequence([item]))
    return item


def _plant_overlay_and_curve(p: _Planter, ds: Dataset) -> None:
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    p.add(ds, (), 0x60003000, "OW", "X")
    p.add(ds, (), 0x60000022, "LO", "X")  # Overlay Description
    p.add(ds, (), 0x60001500, "LO", "X")  # Overlay Label
    p.add(ds, (), 0x60004000, "LT", "X")  # Overlay Comments
    ds.add_new(0x50000005, "US", 2)
    p.add(ds, (), 0x50002500, "LO", "X")  # Curve Label
    p.add(ds, (), 0x50003000, "OB", "X")  # Curve Data


def _plant_sr_content(p: _Planter, ds: Dataset) -> None:
    def code(value, meaning):
        c = Dataset()
        c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, "DCM", meaning
        return c

    def content_item(path, depth):
        item = Dataset()
        item.RelationshipType = "CONTAINS"
        item.ValueType = "TEXT"
        item.ConceptNameCodeSequence = Sequence([code("121106", "Comment")])
        p.add(item, path, 0x0040A160, "UT", "N")  # Text Value (unlisted: removed)
        p.add(item, path, 0x0040A123, "PN", p.expect(0x0040A123))  # Person Name
        p.add(item, path, 0x0040A120, "DT", p.expect(0x0040A120))  # DateTime
        p.add(item, path, 0x0040A124, "UI", p.expect(0x0040A124))  # UID
        p.add(item, path, 0x0040A121, "DA", p.expect(0x0040A121))  # Date
        if depth < 3:
            child = content_item(path + ((0x0040A730, 0),), depth + 1)
            item.add_new(0x0040A730, "SQ", Sequence([child]))
        return item

    seq = ds.get(0x0040A730)
    n = len(seq.value) if seq is not None else 0
    new = content_item(((0x0040A730, n),), 1)
    if seq is None:
        ds.add_new(0x0040A730, "SQ", Sequence([new]))
    else:
        seq.value.append(new)


def build_corpus(out_dir, options, base_files=BASE_FILES) -> Corpus:
    """Write planted copies of ``base_files`` into ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Created if needed; files are named ``planted_<n>.dcm``.
    options : iterable of str
        The de-identification options the corpus is planted for: table rows
        the options keep (``K``) are not planted with identifiers.

    Returns
    -------
    Corpus
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    p = _Planter(options)
    for i, name in enumerate(base_files):
        ds = pydicom.dcmread(get_testdata_file(name))
        path_out = out_dir / f"planted_{i + 1}.dcm"
        p.file = str(path_out)
        # depth 0: every table row, private blocks, overlays, curves, unlisted text
        p.plant_table_rows(ds, ())
        p.plant_private(ds, (), 0x0011, "NDMK CREATOR")
        ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")  # allow-listed creator ...
        p.add(ds, (), 0x00291030, "LO", "X")  # ... but a non-allow-listed element
        p.add(ds, (), 0x00171001, "LO", "X")  # private element without a creator
        priv_item = _nested(ds, 0x00111003)  # a private sequence holding a private block
        p.plant_private(priv_item, ((0x00111003, 0),), 0x0013, "NDMK NESTED")
        _plant_overlay_and_curve(p, ds)
        p.plant_unlisted(ds, ())
        # depths 1-3 through safe-set sequences (kept, so their insides must be cleaned)
        d1 = _nested(ds, 0x52009229)  # Shared Functional Groups Sequence
        path1 = ((0x52009229, 0),)
        p.plant_table_rows(d1, path1, with_sequences=False)
        d2 = _nested(d1, 0x00209111)  # Frame Content Sequence
        path2 = path1 + ((0x00209111, 0),)
        p.plant_table_rows(d2, path2, with_sequences=False)
        p.plant_private(d2, path2, 0x0015, "NDMK DEEP")
        d3 = _nested(d2, 0x00082218)  # Anatomic Region Sequence
        path3 = path2 + ((0x00082218, 0),)
        p.plant_table_rows(d3, path3, with_sequences=True)
        # a reference sequence kept with remapped UIDs (X/Z/U*)
        ref = ds.get(0x00081140)
        if ref is not None and len(ref.value):
            p.plant_table_rows(ref.value[0], ((0x00081140, 0),), with_sequences=False)
        if "ContentSequence" in ds or str(ds.SOPClassUID).startswith("1.2.840.10008.5.1.4.1.1.88"):
            _plant_sr_content(p, ds)
        # file meta and preamble (byte scan only): an AE title and free bytes before "DICM"
        ds.file_meta.SourceApplicationEntityTitle = p.marker()
        ds.preamble = p.marker().encode().ljust(128, b"\x00")
        ds.save_as(path_out, enforce_file_format=True)
        p.corpus.files.append(path_out)
    return p.corpus


def find_markers(data: bytes) -> set[str]:
    """Planted markers present in ``data``."""
    return {m.decode() for m in MARKER_RE.findall(data)}


def _resolve(ds: Dataset, path: tuple):
    for seq_tag, idx in path:
        if seq_tag not in ds:
            return None
        items = ds[seq_tag].value
        if idx >= len(items):
            return None
        ds = items[idx]
    return ds


def _norm(value):
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return tuple(str(v) for v in value)
    if isinstance(value, bytes):
        return value.rstrip(b"\x00 ")
    return str(value).strip()


def unchanged_values(corpus: Corpus, outputs: dict, keep_time_of_day: bool = True) -> list[Planted]:
    """Planted values the table does not keep that are still present unchanged.

    Parameters
    ----------
    outputs : dict
        ``{planted file path (str): de-identified file path or None}``.
    keep_time_of_day : bool
        When the corpus options include Modified Dates and the engine keeps
        the time of day, TM values are expected unchanged and not counted.
    """
    cache = {}
    left = []
    for pl in corpus.planted:
        if pl.expect == "K":
            continue
        if pl.vr == "TM" and pl.expect == "C" and keep_time_of_day:
            continue
        out = outputs.get(pl.file)
        if out is None:
            continue
        if out not in cache:
            cache[out] = pydicom.dcmread(out)
        holder = _resolve(cache[out], pl.path)
        if holder is None or pl.tag not in holder:
            continue
        value = holder[pl.tag].value
        if value in (None, "", b"") or (hasattr(value, "__len__") and len(value) == 0):
            continue
        if _norm(value) == _norm(pl.value):
            left.append(pl)
    return left
