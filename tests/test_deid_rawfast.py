"""The engine's shortcuts for raw elements give what converting them first gives."""

import warnings

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from neurodeid.deid.engine import (
    DeidConfig,
    _Context,
    _empty_raw,
    _empty_value,
    _map_values,
    _remap_raw_uids,
    _shift_raw_dates,
    _written_as_read,
    shift_date,
)
from neurodeid.deid.fastwrite import _string_value

TAG = BaseTag(0x00081155)  # ReferencedSOPInstanceUID (UI); the VR of each test is its own


def _ds(vr: str, value: bytes) -> Dataset:
    ds = Dataset()
    ds._dict[TAG] = RawDataElement(TAG, vr, len(value), value, 0, False, True)
    return ds


def _converted(ds: Dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ds[TAG]


def _same(a, b) -> None:
    assert (a.tag, a.VR, a.is_undefined_length) == (b.tag, b.VR, b.is_undefined_length)
    assert type(a.value) is type(b.value) and a.value == b.value
    assert _string_value(a.VR, a.value, ["iso8859"]) == _string_value(b.VR, b.value, ["iso8859"])


CTX = _Context(DeidConfig(key=b"k" * 32, subject_label="s01"))


@pytest.mark.parametrize("value", [b"1.2.3.4\x00", b"1.2.840.10008.1.2\x00", b"1.2.3\\4.5.6 ", b"1.2.3"])
def test_raw_uids_are_remapped_as_after_conversion(value):
    fast, slow = _ds("UI", value), _ds("UI", value)
    assert _remap_raw_uids(fast, TAG, CTX)
    elem = _converted(slow)
    elem.value = _map_values(elem.value, CTX.uid)
    _same(fast[TAG], elem)


@pytest.mark.parametrize("vr, value", [("UI", b""), ("UI", b"1.2.a\x00"), ("UI", b"1.2\\\\3.4"), ("UI", b" 1.2.3"),
                                       ("UN", b"1.2.3.4\x00"), ("UI", "1.2.3.4\u00e9".encode("latin-1"))])
def test_other_uid_elements_are_left_to_conversion(vr, value):
    ds = _ds(vr, value)
    assert not _remap_raw_uids(ds, TAG, CTX)
    assert ds._dict[TAG].is_raw


@pytest.mark.parametrize("value", [b"20200131", b"20200131\\19991231 ", b"20000229\x00\x00"])
def test_raw_dates_are_shifted_as_after_conversion(value):
    fast, slow = _ds("DA", value), _ds("DA", value)
    assert _shift_raw_dates(fast, TAG, -45)
    elem = _converted(slow)
    elem.value = _map_values(elem.value, lambda v: shift_date(v, -45))
    _same(fast[TAG], elem)


@pytest.mark.parametrize("value", [b"", b"2020", b"2020.01.31", b"20200131\\", b"20200131X"])
def test_other_dates_are_left_to_conversion(value):
    assert not _shift_raw_dates(_ds("DA", value), TAG, 3)


@pytest.mark.parametrize("value, same", [(b"120000", True), (b"12000 ", True), (b"120000.5 ", False),
                                         (b"120000\x00\x00", False), (b"1200\x00 ", False), (b"", True),
                                         (b"12  ", False), ("12\u00e9 ".encode("latin-1"), False)])
def test_written_as_read_means_conversion_writes_the_same_bytes(value, same):
    raw = _ds("TM", value)._dict[TAG]
    assert _written_as_read(raw) is same
    if same:
        assert _string_value("TM", _converted(_ds("TM", value)).value, ["iso8859"]) == value


@pytest.mark.parametrize("vr, value", [("PN", b"Doe^John"), ("LO", b"x\xe9 "), ("DA", b"2020"), ("SH", b""),
                                       ("UI", b"1.2\x00")])
def test_raw_elements_are_emptied_as_after_conversion(vr, value):
    fast, slow = _ds(vr, value), _ds(vr, value)
    assert _empty_raw(fast, TAG)
    elem = _converted(slow)
    elem.value = _empty_value(elem.VR)
    _same(fast[TAG], elem)


@pytest.mark.parametrize("vr", ["DS", "IS", "UN", "SQ", "OB", "US"])
def test_other_elements_are_emptied_after_conversion(vr):
    assert not _empty_raw(_ds(vr, b"12"), TAG)
