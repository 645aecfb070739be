"""neurodeid.deid.fastwrite: the same bytes as pydicom.dcmwrite, or None (pydicom writes)."""

from __future__ import annotations

import io
import warnings

import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from neurodeid.deid import DeidConfig, deidentify_dataset
from neurodeid.deid.fastwrite import encode_file
from neurodeid.deid.profile import DEFAULT_OPTIONS

KEY = b"neurodeid-test-key-0123456789"


def _assert_same_bytes_quietly(build) -> None:
    """The fast encoding of ``build()`` exists and equals pydicom's (its value warnings muted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = encode_file(build())
        slow = _pydicom_bytes(build())
    assert fast is not None and fast == slow


def _pydicom_bytes(ds) -> bytes | None:
    buf = io.BytesIO()
    try:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except Exception:  # noqa: BLE001 - pydicom refuses: the fast path must too
        return None
    return buf.getvalue()


def _readable_test_files():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = sorted(f for f in get_testdata_files("*") if f.endswith(".dcm"))
    out = []
    for f in files:
        try:
            ds = pydicom.dcmread(f, force=True)
        except Exception:  # noqa: BLE001
            continue
        if "TransferSyntaxUID" in getattr(ds, "file_meta", {}):
            out.append(f)
    return out


@pytest.mark.parametrize("path", _readable_test_files())
def test_same_bytes_as_pydicom_as_read(path):
    """Every pydicom test file, as read: identical bytes, or None (pydicom writes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = encode_file(pydicom.dcmread(path, force=True))
        slow = _pydicom_bytes(pydicom.dcmread(path, force=True))
    if fast is not None:
        assert fast == slow


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "test-SR.dcm", "rtplan.dcm", "JPEG2000.dcm",
                                  "SC_rgb_rle.dcm", "MR_small_implicit.dcm"])
def test_same_bytes_after_deidentification(name):
    """Changed values, removed elements, new items (the marker code sequence): same bytes."""
    cfg = DeidConfig(key=KEY, subject_label="s1", date_shift_days=-9, options=frozenset(DEFAULT_OPTIONS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = pydicom.dcmread(get_testdata_file(name)), pydicom.dcmread(get_testdata_file(name))
        deidentify_dataset(a, cfg)
        deidentify_dataset(b, cfg)
        fast = encode_file(a)
    assert fast is not None
    assert fast == _pydicom_bytes(b)


def test_converted_and_new_elements_and_undefined_lengths():
    """Elements converted on access, odd-length pixel bytes, items of undefined length,
    a new sequence of undefined length: the same bytes as pydicom."""

    def build():
        ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
        _ = ds.PatientName, ds.StudyDate  # converted, unchanged
        ds.StudyDescription = "changed"
        item = Dataset()
        item.CodeValue = "1"
        item.is_undefined_length_sequence_item = True
        ds.ReferencedStudySequence = Sequence([item, Dataset()])
        ds["ReferencedStudySequence"].is_undefined_length = True
        ds.add_new(0x00091010, "OB", b"\x01\x02\x03")  # odd length: padded
        return ds

    fast = encode_file(build())
    assert fast is not None and fast == _pydicom_bytes(build())


def test_unsupported_encodings_return_none():
    """Big endian and deflated files are left to pydicom."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert encode_file(pydicom.dcmread(get_testdata_file("MR_small_bigendian.dcm"))) is None
        assert encode_file(pydicom.dcmread(get_testdata_file("image_dfl.dcm"))) is None


def test_error_returns_none_so_pydicom_raises():
    """A dataset pydicom refuses to write (no SOP class in the file meta nor the data
    set) gives None: the caller's pydicom call raises its own error."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.file_meta.MediaStorageSOPClassUID
    del ds.SOPClassUID
    assert encode_file(ds) is None
    assert _pydicom_bytes(ds) is None


def test_short_value_too_long_for_its_header_returns_none():
    """A short-header value longer than 0xFFFF: pydicom writes it as UN with a warning; not here."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds._dict[Tag(0x00091011)] = RawDataElement(Tag(0x00091011), "LT", 0x10000, b"A" * 0x10000, 0, False, True)
    assert encode_file(ds) is None


@pytest.mark.parametrize("charset", [None, "ISO_IR 100", "ISO_IR 192", ["", "ISO 2022 IR 87"], "ISO_IR 144"])
def test_converted_string_values_same_bytes(charset):
    """String and text values set in memory (odd and even lengths, several values, empty,
    non-ASCII, UIDs padded with a NUL) under several character sets: same bytes."""

    def build():
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        if charset is not None:
            ds.SpecificCharacterSet = charset
        ds.StudyInstanceUID = "1.2.3.45"  # odd: NUL pad
        ds.SeriesInstanceUID = "1.2.3.4"
        ds.ReferencedSOPClassUIDInFile = "1.2.840.10008.5.1.4.1.1.2"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.StudyDate = "20010203"
        ds.AcquisitionDateTime = "20010203101112"
        ds.StudyTime = "101"
        ds.InstitutionName = "odd"
        ds.StationName = ""
        ds.StudyDescription = "Ünïcode"
        ds.SeriesDescription = ["a", "bc"]
        ds.ImageComments = "long\\text"
        ds.add_new(0x00091011, "UT", "x" * 7)
        ds.add_new(0x00091012, "UC", ["u", "v"])
        ds.add_new(0x00091013, "UR", "http://x")
        ds.add_new(0x00091014, "AE", "AET")
        ds.add_new(0x00091015, "AS", "045Y")
        ds.add_new(0x00091016, "LO", None)
        return ds

    _assert_same_bytes_quietly(build)


@pytest.mark.parametrize("change", ["none", "no group length", "no version name", "other media uid",
                                    "no implementation uid", "converted group length", "private meta"])
def test_file_meta_variants_same_bytes(change):
    """The file meta group built directly or by pydicom: the same bytes either way."""

    def build():
        ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
        meta = ds.file_meta
        if change == "no group length":
            del meta[0x00020000]
        elif change == "no version name" and 0x00020013 in meta:
            del meta[0x00020013]
        elif change == "other media uid":
            meta.MediaStorageSOPInstanceUID = "1.2.3.4"
        elif change == "no implementation uid":
            del meta[0x00020012]
        elif change == "converted group length":
            meta.FileMetaInformationGroupLength = 7
        elif change == "private meta":
            meta.add_new(0x00020016, "AE", "ODD")
            meta.add_new(0x00020100, "UI", "1.2.3")
            meta.add_new(0x00020102, "OB", b"\x01\x02\x03")
        return ds

    fast = encode_file(build())
    assert fast is not None and fast == _pydicom_bytes(build())


def test_items_made_in_memory_same_bytes():
    """Items made in memory: plain ones encoded directly, one with an ambiguous VR or a
    nested sequence re-encoded by pydicom, as dcmwrite does."""

    def build():
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        plain, ambiguous, nested = Dataset(), Dataset(), Dataset()
        plain.CodeValue, plain.CodingSchemeDesignator, plain.CodeMeaning = "113100", "DCM", "Basic"
        ambiguous.PixelRepresentation = 1
        ambiguous.add_new(0x00280106, "US or SS", 5)  # SmallestImagePixelValue
        inner = Dataset()
        inner.CodeValue = "1"
        nested.ConceptCodeSequence = Sequence([inner])
        ds.DeidentificationMethodCodeSequence = Sequence([plain, ambiguous, nested])
        return ds

    _assert_same_bytes_quietly(build)


@pytest.mark.parametrize("charset", [None, "ISO_IR 100", "ISO_IR 192", ["", "ISO 2022 IR 87"], "ISO_IR 144"])
def test_person_names_and_numbers_set_in_memory_same_bytes(charset):
    """Person names set in memory (odd and even, empty, groups, non-ASCII, several values)
    and plain numbers of VR US, UL, SS, SL (extremes; a value out of range refuses in
    both) under several character sets: same bytes."""

    def build():
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        if charset is not None:
            ds.SpecificCharacterSet = charset
        ds.PatientName = "sub-g01"
        ds.ReferringPhysicianName = ""
        ds.PerformingPhysicianName = ["Doe^Jo", "Roe^Ann^^Dr"]
        ds.OperatorsName = "Doe^John^^^"
        ds.NameOfPhysiciansReadingStudy = "Yamada^Tarou=山田^太郎"
        ds.RequestingPhysician = "Müller^Jörg"
        ds.add_new(0x00091020, "PN", "A=B")
        ds.Rows = 65535
        ds.Columns = 0
        ds.add_new(0x00091021, "UL", 4294967295)
        ds.add_new(0x00091022, "SS", -32768)
        ds.add_new(0x00091023, "SL", -2147483648)
        ds.add_new(0x00091024, "US", [1, 2])
        return ds

    _assert_same_bytes_quietly(build)


def test_number_out_of_range_returns_none():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.add_new(0x00091021, "US", 70000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert encode_file(ds) is None and _pydicom_bytes(ds) is None
