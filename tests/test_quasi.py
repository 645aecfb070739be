"""Quasi-identifiers in de-identified DICOM: Safe Harbor ages, generalisation, vendor private items.

Real files from the shared data (dcm_qa_nih Siemens/GE, dcm_qa_enh Philips/Canon/Siemens XA,
dcm_qa_xa30), with planted ages where the real ones are young; the CSA reader used to check is
nibabel's (independent of neurodeid's own CSA walk).
"""

from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from neurodeid.deid.engine import DeidConfig, deidentify_dataset
from neurodeid.deid.quasi import (
    QuasiError,
    QuasiPolicy,
    age_years,
    generalise_age,
    generalise_csa,
    generalise_dataset,
    load_private_items,
)
from neurodeid.deid.profile import DEFAULT_OPTIONS

from conftest import SHARED_DATA, TEST_KEY

NO_CHARS = frozenset(DEFAULT_OPTIONS) - {"retain_patient_characteristics"}
SIEMENS = SHARED_DATA / "dicom" / "dcm_qa_nih" / "In" / "20180918Si"


def _csa():
    warnings.filterwarnings("ignore", message="The DICOM readers are highly experimental")
    from nibabel.nicom import csareader

    return csareader


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set NEURODEID_SHARED_DATA)")
    return path


def _cfg(options=DEFAULT_OPTIONS, **kw) -> DeidConfig:
    return DeidConfig(key=TEST_KEY, subject_label="q1", options=frozenset(options), **kw)


def plant_csa_item(value: bytes, item: str, text: str) -> bytes:
    """Write ``text`` into the first value of a CSA2 item (test helper, independent of neurodeid)."""
    data = bytearray(value)
    (n_tags,) = struct.unpack_from("<I", data, 8)
    off = 16
    for _ in range(n_tags):
        name = bytes(data[off : off + 64]).split(b"\x00")[0].decode()
        (n_items,) = struct.unpack_from("<i", data, off + 76)
        off += 84
        for i in range(n_items):
            (item_len,) = struct.unpack_from("<i", data, off + 4)
            if name == item and i == 0:
                raw = text.encode() + b"\x00"
                assert len(raw) <= item_len, "planted text longer than the slot"
                data[off + 16 : off + 16 + item_len] = raw + b"\x00" * (item_len - len(raw))
                return bytes(data)
            off += 16 + (item_len + 3) // 4 * 4
    raise AssertionError(f"no CSA item {item}")


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "value, policy, expected",
    [
        ("093Y", QuasiPolicy(), "090Y"),
        ("090Y", QuasiPolicy(), "090Y"),
        ("089Y", QuasiPolicy(), "089Y"),
        ("120Y", QuasiPolicy(), "090Y"),
        ("999M", QuasiPolicy(), "083Y"),  # 83.25 years, written in whole years
        ("006M", QuasiPolicy(), "006M"),
        ("400W", QuasiPolicy(), "007Y"),
        ("042Y", QuasiPolicy(age_band_years=5), "040Y"),
        ("089Y", QuasiPolicy(age_band_years=20), "080Y"),
        ("097Y", QuasiPolicy(age_band_years=20), "090Y"),
        ("006M", QuasiPolicy(age_band_years=5), "000Y"),
        ("093Y", QuasiPolicy(age_cap_years=85), "085Y"),
        ("abc", QuasiPolicy(), ""),
    ],
)
def test_generalise_age(value, policy, expected):
    assert generalise_age(value, policy) == expected


def test_policy_rejects_a_cap_above_safe_harbor_and_unknown_removals():
    with pytest.raises(QuasiError, match="090Y"):
        QuasiPolicy.from_mapping({"age_cap": "095Y"})
    with pytest.raises(QuasiError, match="unknown characteristic"):
        QuasiPolicy(remove={"shoe_size"})
    p = QuasiPolicy.from_mapping({"age_band_years": 5, "remove": ["sex"], "dates_to_year": True})
    assert QuasiPolicy.from_mapping(p.to_mapping()) == p
    assert any("bands of 5 years" in s for s in p.applied())


def test_every_depth_and_generalisation_options():
    ds = Dataset()
    ds.PatientAge = "097Y"
    ds.PatientSize = "1.7834"
    ds.PatientWeight = "83.4"
    ds.PatientSex = "F"
    ds.StudyDate = "20180918"
    ds.AcquisitionDateTime = "20180918101112.5"
    ds.EthnicGroup = "Some group"
    inner = Dataset()
    inner.PatientAge = "091Y"
    inner.SelectorASValue = "095Y"
    inner.ContentDate = "20180920"
    ds.ReferencedStudySequence = Sequence([inner])
    pol = QuasiPolicy(height_step_m=0.05, weight_step_kg=5, remove={"sex"}, dates_to_year=True, drop_free_text=True)
    counts = generalise_dataset(ds, pol)
    assert ds.PatientAge == "090Y" and inner.PatientAge == "090Y" and inner.SelectorASValue == "090Y"
    assert float(ds.PatientSize) == pytest.approx(1.8) and float(ds.PatientWeight) == 85
    assert "PatientSex" not in ds and "EthnicGroup" not in ds
    assert ds.StudyDate == "20180101" and inner.ContentDate == "20180101" and ds.AcquisitionDateTime == "2018"
    assert counts["age"] == 3 and counts["removed"] == 1 and counts["free_text"] == 1


# --------------------------------------------------------------------------- real Siemens CSA


def _siemens_file() -> Path:
    return sorted(_need(SIEMENS / "mr_0005").glob("*.dcm"))[0]


def test_planted_old_patient_on_real_siemens_is_capped_in_header_and_csa():
    """The issue's case: PatientAge 093Y and a CSA PatReinPattern with 93 years, under the
    default options (retain_patient_characteristics on)."""
    csareader = _csa()
    ds = pydicom.dcmread(_siemens_file())
    ds.PatientAge = "093Y"
    ds[0x00291020].value = plant_csa_item(ds[0x00291020].value, "PatReinPattern", "1;HFS;70.00;93.41;1;0;0;-478201571")
    deidentify_dataset(ds, _cfg())
    assert ds.PatientAge == "090Y"
    tags = csareader.read(ds[0x00291020].value)["tags"]
    fields = tags["PatReinPattern"]["items"][0].split(";")
    assert fields[:5] == ["1", "HFS", "70.00", "90", "1"]
    assert fields[7] == "0", "the unknown signed number is not kept"
    assert tags["UsedPatientWeight"]["items"] == [90]
    # every other CSA item still parses as before (structure intact)
    assert len(tags) == len(csareader.read(pydicom.dcmread(_siemens_file())[0x00291020].value)["tags"])


def test_fractional_csa_age_becomes_whole_years():
    """33.68 years and the study date give the birth date to a few days; whole years do not."""
    csareader = _csa()
    ds = pydicom.dcmread(sorted(_need(SIEMENS / "mr_0003").glob("*.dcm"))[0])
    ds[0x00291020].value = plant_csa_item(ds[0x00291020].value, "PatReinPattern", "1;HFS;100.70;33.68;2;0;0;-478201571")
    deidentify_dataset(ds, _cfg())
    assert csareader.read(ds[0x00291020].value)["tags"]["PatReinPattern"]["items"][0].split(";")[3] == "33"


def test_bands_and_rounding_reach_the_csa():
    csareader = _csa()
    ds = pydicom.dcmread(_siemens_file())
    ds[0x00291020].value = plant_csa_item(ds[0x00291020].value, "PatReinPattern", "1;HFS;83.99;47.00;2;0;0;1")
    deidentify_dataset(ds, _cfg(quasi=QuasiPolicy(age_band_years=10, weight_step_kg=5)))
    fields = csareader.read(ds[0x00291020].value)["tags"]["PatReinPattern"]["items"][0].split(";")
    assert fields[2:4] == ["85.00", "40"]
    assert ds.PatientAge == "040Y" and float(ds.PatientWeight) == 90


def test_unparsable_listed_block_is_removed_not_kept():
    assert generalise_csa(b"SV10" + b"\xff" * 20, "SIEMENS CSA HEADER", QuasiPolicy()) is None
    assert generalise_csa(b"anything", "OTHER CREATOR", QuasiPolicy()) == b"anything"


# --------------------------------------------------------------------------- every vendor file

_PATIENT_WORDS = re.compile(r"(?i)patient|weight|height|\bage\b|sex|birth|bmi")
_CHAR_KEYWORDS = ("PatientAge", "PatientSex", "PatientSize", "PatientWeight", "PatientBirthDate", "EthnicGroup")


def _one_file_per_series(root: Path) -> list[Path]:
    seen: dict[Path, Path] = {}
    for p in sorted(root.rglob("*")):
        if "Ref" in p.parts or not p.is_file() or p.suffix in (".md", ".txt", ".json") or p.name == "LICENSE":
            continue
        seen.setdefault(p.parent, p)
    return list(seen.values())


def test_vendor_files_keep_no_characteristic_without_the_option():
    """Measured on one file of every series of the shared vendor data (Siemens, GE, Philips,
    Canon, classic and enhanced): with retain_patient_characteristics off, no age, sex, size or
    weight at any depth nor in any kept private element; with it on, no age above the cap.
    A CSA item whose name speaks of the patient must be listed in quasi_private_items.tsv (or
    be one of the geometry items), so a new vendor item cannot slip through unnoticed."""
    csareader = _csa()
    root = _need(SHARED_DATA / "dicom")
    listed = {item for (_, item) in load_private_items()}
    geometry = {"ImagePositionPatient", "ImageOrientationPatient", "CsiImagePositionPatient",
                "CsiImageOrientationPatient"}
    n_files = n_csa = 0
    for path in _one_file_per_series(root):
        try:
            raw = pydicom.dcmread(path, force=True)
        except Exception:  # noqa: BLE001 - non-DICOM files in the tree
            continue
        if "SOPClassUID" not in raw:
            continue
        n_files += 1
        for options in (NO_CHARS, frozenset(DEFAULT_OPTIONS)):
            ds = pydicom.dcmread(path, force=True)
            deidentify_dataset(ds, _cfg(options))
            for elem in ds.iterall():
                assert elem.keyword not in ("PatientBirthDate", "PatientBirthTime") or not elem.value, path
                if options == NO_CHARS:
                    assert elem.keyword not in _CHAR_KEYWORDS or not elem.value, (path, elem.keyword)
                if elem.VR == "AS" and elem.value:
                    assert age_years(elem.value) <= 90, (path, elem)
                if isinstance(elem.value, bytes) and elem.value[:4] == b"SV10":
                    n_csa += 1
                    for name, item in csareader.read(elem.value)["tags"].items():
                        if _PATIENT_WORDS.search(name) and item["items"]:
                            assert name in listed | geometry, f"{path}: CSA item {name} is not judged"
                            if options == NO_CHARS and name == "PatReinPattern":
                                assert item["items"][0].split(";")[2:5] == ["", "", ""]
                            if options == NO_CHARS and name == "UsedPatientWeight":
                                assert item["items"] == [0]
    assert n_files >= 20 and n_csa >= 4


def test_ge_user_define_data_holds_no_weight():
    """GE UserDefineData (kept, text blanked) is a binary structure of undocumented layout:
    none of its numbers, at any offset and in any common width, equals the patient's weight
    (90 kg in dcm_qa_nih GE; its age is 000Y there)."""
    path = sorted(_need(SHARED_DATA / "dicom" / "dcm_qa_nih" / "In" / "20180918GE" / "mr_0005").glob("*.dcm"))[0]
    ds = pydicom.dcmread(path)
    weight = float(ds.PatientWeight)
    deidentify_dataset(ds, _cfg())
    blocks = [e.value for e in ds.iterall() if e.tag.group == 0x0043 and (e.tag.element & 0xFF) == 0x2A]
    assert blocks and len(blocks[0]) > 1000
    v = blocks[0]
    for fmt, size in (("<h", 2), ("<i", 4), ("<f", 4), ("<d", 8)):
        for off in range(len(v) - size + 1):
            x = struct.unpack_from(fmt, v, off)[0]
            assert not abs(x - weight) < 0.01, f"{fmt} at byte {off} equals the weight"
