"""Needles read from raw private bytes are the needles read from converted elements."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from neurodeid.audit.needles import dataset_needles
from neurodeid.deid.profile import DEFAULT_OPTIONS


def _convert_all(ds) -> None:
    """Every element converted (no raw element left: the needle walk reads values only)."""
    for tag in list(ds._dict):
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value or []:
                _convert_all(item)


def _private_dataset() -> bytes:
    """A file with private blocks holding every VR the raw reading takes, odd values
    (backslashes, NUL and space padding, empty, a vocabulary word), a creator with
    spaces, an allow-listed creator and an element without a creator."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.add_new(0x00190010, "LO", "NDMK CREATOR ")
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00290011, "LO", " SIEMENS MEDCOM HEADER2")
    values = {"AE": "NDMKAET", "AS": "045Y", "DA": "19800102\\19790203", "DT": "19800102101010",
              "LO": "Doe^John\\ ID123456 \\", "SH": "SH\x00VALUE", "TM": "101010", "UC": "uc text\\more",
              "UI": "1.2.3.4.5.6\\1.2.840.10008.1.2", "LT": "free\\text \x00", "ST": "  station 77  ",
              "UT": "", "PN": "Doe^Jane"}
    for i, (vr, value) in enumerate(values.items()):
        for creator_block in (0x0019, 0x0029):
            ds.add_new((creator_block << 16) | 0x1000 | i, vr, value)
        ds.add_new(0x00291100 | i, vr, value)  # block 0x11
    ds.add_new(0x00191020, "DS", "123456\\1.5\\ 1234567 ")
    ds.add_new(0x00291021, "DS", "7654321")  # allow-listed key (SIEMENS CSA HEADER, 0x21 is not): removed
    inner = pydicom.Dataset()
    inner.add_new(0x00190010, "LO", "NDMK INNER")
    inner.add_new(0x00191001, "LO", "Inner^Secret")
    inner.add_new(0x00191002, "SH", "ID998877")
    ds.add_new(0x00191030, "SQ", pydicom.Sequence([inner]))  # a removed private sequence
    kept_inner = pydicom.Dataset()
    kept_inner.add_new(0x00190010, "LO", "NDMK KEPT")
    kept_inner.add_new(0x00191001, "LO", "Kept^Secret")
    ds.add_new(0x00291010, "SQ", pydicom.Sequence([kept_inner]))  # an allow-listed key, as a sequence
    ds.add_new(0x00211010, "LO", "NDMK NO CREATOR")
    ds.add_new(0x00291008, "LO", "CSA Image Header Type")
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize("options", [DEFAULT_OPTIONS, (), ("retain_safe_private",)])
def test_synthetic_private_blocks(options):
    data = _private_dataset()
    raw = pydicom.dcmread(io.BytesIO(data))
    converted = pydicom.dcmread(io.BytesIO(data))
    _convert_all(converted)
    assert dataset_needles(raw, options) == dataset_needles(converted, options)
    assert any(n.text == "Doe^John" for n in dataset_needles(raw, options))


def _shared_files():
    root = os.environ.get("NEURODEID_SHARED_DATA")
    path = Path(root) / "dicom" if root else Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"
    if not path.is_dir():
        return []
    by_dir: dict = {}
    for p in sorted(q for q in path.rglob("*.dcm")):
        by_dir.setdefault(p.parent, []).append(p)
    return [fs[0] for fs in by_dir.values()]  # one file per folder


@pytest.mark.parametrize("path", _shared_files() or [pytest.param(None, marks=pytest.mark.skip("no shared data"))])
def test_shared_files(path):
    """One real file per shared folder (Siemens, GE, Philips private blocks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = pydicom.dcmread(path, force=True)
        converted = pydicom.dcmread(path, force=True)
        _convert_all(converted)
        for options in (DEFAULT_OPTIONS, ()):
            assert dataset_needles(raw, options) == dataset_needles(converted, options)


def test_invalid_decimal_string_is_left_to_pydicom():
    from neurodeid.audit.needles import _raw_values

    assert _raw_values("DS", b"abc") is None
    assert _raw_values("DS", b" 123456\\1.5 ") == ["123456", "1.5"]


def test_removed_private_elements_stay_raw():
    """The elements read from their bytes are not converted (they never reach the output)."""
    raw = pydicom.dcmread(io.BytesIO(_private_dataset()))
    dataset_needles(raw, DEFAULT_OPTIONS)
    assert raw._dict[pydicom.tag.Tag(0x00191004)].is_raw  # LO under a non-allow-listed creator
    assert not raw._dict[pydicom.tag.Tag(0x0019100C)].is_raw  # PN: converted
    removed_sq = raw[0x00191030].value[0]
    assert removed_sq._dict[pydicom.tag.Tag(0x00191001)].is_raw  # inside a removed private sequence
    kept_sq = raw[0x00291010].value[0]
    assert not kept_sq._dict[pydicom.tag.Tag(0x00191001)].is_raw  # inside one the allow-list may keep


@pytest.mark.parametrize("options", [DEFAULT_OPTIONS, (), ("retain_device_identity", "clean_descriptors")])
def test_planted_corpus(tmp_path, options):
    """Every table row planted at depths 0-3, private blocks, SR content: the needles read
    from raw bytes are those of the converted elements; replaced values stay unconverted."""
    import deid_corpus

    corpus = deid_corpus.build_corpus(tmp_path, options)
    for path in corpus.files:
        raw = pydicom.dcmread(path, force=True)
        converted = pydicom.dcmread(path, force=True)
        _convert_all(converted)
        assert dataset_needles(raw, options) == dataset_needles(converted, options), path


def test_replaced_public_elements_stay_raw():
    """A date the table shifts is read from its bytes and left for the table to convert."""
    raw = pydicom.dcmread(io.BytesIO(_private_dataset()))
    assert raw._dict[pydicom.tag.Tag(0x00080020)].is_raw
    dataset_needles(raw, DEFAULT_OPTIONS)
    assert raw._dict[pydicom.tag.Tag(0x00080020)].is_raw  # StudyDate: C (shifted)
