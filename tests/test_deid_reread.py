"""The re-read check of written files: neurodeid.deid.reread's strict walk, pydicom otherwise."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from neurodeid.deid import DeidConfig, DeidError, deidentify_series
from neurodeid.deid import series as series_mod
from neurodeid.deid.reread import uid_bytes, written_sop_uids

KEY = b"neurodeid-test-key-0123456789"


def _written(name: str = "CT_small.dcm", change=None) -> tuple[bytes, Dataset]:
    ds = pydicom.dcmread(get_testdata_file(name))
    if change:
        change(ds)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue(), ds


def _nested(ds):
    inner = Dataset()
    inner.CodeValue = "1"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    item.ConceptNameCodeSequence = Sequence([inner])
    item.is_undefined_length_sequence_item = True
    ds.ReferencedImageSequence = Sequence([item, Dataset()])
    ds["ReferencedImageSequence"].is_undefined_length = True


@pytest.mark.parametrize("name,change", [("CT_small.dcm", None), ("MR_small.dcm", _nested),
                                         ("JPEG2000.dcm", None), ("SC_rgb_rle.dcm", None)])
def test_walk_gives_the_uids_pydicom_reads(name, change):
    """Explicit VR files, nested sequences and items of both lengths, encapsulated pixel
    data: the walk accepts them and finds the UIDs pydicom reads back."""
    buf, ds = _written(name, change)
    uids = written_sop_uids(buf)
    assert uids == (uid_bytes(ds.SOPClassUID), uid_bytes(ds.SOPInstanceUID))
    back = pydicom.dcmread(io.BytesIO(buf), stop_before_pixels=True)
    assert uids[1].rstrip(b"\0").decode() == back.SOPInstanceUID


def _offset_of(buf: bytes, tag: int) -> int:
    return buf.index(struct.pack("<HH", tag >> 16, tag & 0xFFFF), 132)


def test_walk_refuses_what_it_does_not_accept():
    """Truncated, trailing bytes, a wrong meta group length, an unknown VR, tags out of
    order, a wrong sequence length, implicit VR, big endian: None (pydicom decides)."""
    buf, _ = _written("MR_small.dcm", _nested)
    assert written_sop_uids(buf) is not None
    assert written_sop_uids(buf[:-2]) is None
    assert written_sop_uids(buf + b"\x00\x00") is None
    bad = bytearray(buf)
    bad[140] += 2  # meta group length
    assert written_sop_uids(bytes(bad)) is None
    bad = bytearray(buf)
    at = _offset_of(buf, 0x00080060)  # Modality, CS
    bad[at + 4 : at + 6] = b"ZZ"
    assert written_sop_uids(bytes(bad)) is None
    bad = bytearray(buf)
    bad[at + 2] = 0x00  # (0008,0000): lower than the tag before it
    assert written_sop_uids(bytes(bad)) is None
    plain, _ = _written("CT_small.dcm", lambda ds: ds.__setattr__("ReferencedImageSequence", Sequence([Dataset()])))
    at = _offset_of(plain, 0x00081140)
    bad = bytearray(plain)
    bad[at + 8] += 2  # the sequence's defined length
    assert written_sop_uids(bytes(bad)) is None
    assert written_sop_uids(_written("MR_small_implicit.dcm")[0]) is None
    assert written_sop_uids(_written("MR_small_bigendian.dcm")[0]) is None


def test_uid_bytes_only_plain_uids():
    """Digits and dots padded with one NUL; anything pydicom's reading would strip or split: None."""
    assert uid_bytes("1.2.3") == b"1.2.3\x00"
    assert uid_bytes("1.2.30") == b"1.2.30"
    assert uid_bytes("1.2.3 ") is None and uid_bytes("1.2\\3.4") is None and uid_bytes(None) is None


def test_wrong_uids_in_the_written_file_quarantine(tmp_path, monkeypatch):
    """A writer that puts other UIDs in the file: the check (walk, then pydicom) quarantines it."""
    real = series_mod._write

    def wrong_uid(dst, ds):
        real(dst, ds)
        data = Path(dst).read_bytes()
        uid = uid_bytes(ds.SOPInstanceUID)
        Path(dst).write_bytes(data.replace(uid, uid[:-2] + (b"7" if uid[-2:-1] != b"7" else b"8") + uid[-1:]))

    monkeypatch.setattr(series_mod, "_write", wrong_uid)
    cfg = DeidConfig(key=KEY, subject_label="s1")
    with pytest.raises(DeidError, match="does not re-read with the same SOP UIDs"):
        deidentify_series([get_testdata_file("CT_small.dcm")], tmp_path / "out", cfg)
