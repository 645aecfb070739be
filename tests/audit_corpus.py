"""A planted-identifier corpus for the release audit: every miss and every false alarm
of issue #17, in several vendors' real files and character sets.

Each case builds a raw export (real vendor DICOM with a planted subject identity) and
a release made the way the workflow makes one (the raw file de-identified by
:func:`neurodeid.deid.deidentify_file`, a sidecar, README, dataset_description and
participants.tsv in the pipeline's own wording), then changes one of them:

- ``leak`` cases plant an identifying value of the subject into the **release**
  (where a failed de-identification would leave it): the audit must catch it;
- ``deid`` cases plant it into the **raw** file where de-identification used to
  keep it: the release must then be clean (0 hits), and the planted value gone;
- ``harmless`` cases plant vendor vocabulary and pipeline wording that the old
  audit flagged: the audit must flag nothing.

Bases (``vendor``): Siemens and GE EPI from ``dcm_qa_nih``, Philips enhanced from
``dcm_qa_enh`` (BSD-2-Clause, read in place, not copied) when the shared data is
present, else pydicom's bundled MR/CT files; character sets: ASCII, Latin-1
(``ISO_IR 100``), Japanese (``ISO 2022 IR 87``, the identity of pydicom's
``chrH31.dcm``).

Importable by tests and benchmarks::

    cases = build_cases(tmp_path)
    result = run_case(case)   # {"hits": [...], "caught": bool, ...}
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from neurodeid import audit
from neurodeid.deid import DeidConfig
from neurodeid.deid.series import deidentify_file
from neurodeid.deid.profile import DEFAULT_OPTIONS

from conftest import SHARED_DATA, pydicom_testdir

KEY = b"audit-corpus-key-0123456789abcdef"

#: The planted subject (Latin script).
FAMILY, GIVEN, MRN, MRN_BARE, DOB = "Quorna", "Imogen", "PID-31415926", "PID31415926", "19420317"
#: A StudyInstanceUID under the DICOM root built from the MRN's digits and the birth date, glued:
#: no date or ID needle matches inside it, only the UID itself identifies.
UID_ONLY = f"1.2.840.10008.{MRN_BARE[3:]}{DOB}"
#: The planted subject (Japanese, pydicom's chrH31.dcm): family and given name of 2 kanji each.
KANJI_NAME, KANJI_FAMILY, KANJI_GIVEN = "Yamada^Tarou=山田^太郎=やまだ^たろう", "山田", "太郎"

LEAK, DEID, HARMLESS = "leak", "deid", "harmless"


@dataclass
class Case:
    cls: str  # the class of the list
    kind: str  # LEAK / DEID / HARMLESS
    vendor: str
    raw: Path  # the raw export folder
    release: Path  # the release folder
    planted: str = ""  # the planted value (leak / deid)


def vendor_bases() -> dict[str, Path]:
    """Real vendor files: Siemens, GE (dcm_qa_nih), Philips (dcm_qa_enh); pydicom's otherwise."""
    nih = SHARED_DATA / "dicom" / "dcm_qa_nih" / "In"
    if nih.is_dir():
        return {
            "Siemens": nih / "20180918Si" / "mr_0003" / "epi_pe_ap-00001.dcm",
            "GE": nih / "20180918GE" / "mr_0004" / "axial_epi_fmri_interleaved_i_to_s-00001.dcm",
            "Philips": SHARED_DATA / "dicom" / "dcm_qa_enh" / "In" / "Philips" / "IM_0027_fMAP.dcm",
        }
    return {"pydicom MR": Path(get_testdata_file("MR_small.dcm")), "pydicom CT": Path(get_testdata_file("CT_small.dcm"))}


def _identity(ds, charset: str = "latin") -> None:
    if charset == "japanese":
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
        ds.PatientName = KANJI_NAME
    elif charset == "latin-1":
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName = f"{FAMILY}-Müller^{GIVEN}"
    else:
        ds.PatientName = f"{FAMILY}^{GIVEN}"
    ds.PatientID = MRN
    ds.PatientBirthDate = DOB


def plant_csa(value: bytes, item: str, token: bytes) -> bytes:
    """``value`` (a CSA2 header) with the first item named ``item`` overwritten by ``token``
    (same length: padded with spaces, truncated to the item)."""
    for name, a, b in audit.csa_items(value):
        if name == item:
            buf = bytearray(value)
            room = b - a
            buf[a:b] = (token + b" " * room)[:room]
            return bytes(buf)
    raise KeyError(item)


def _release(case_dir: Path, raw_file: Path, vendor: str) -> tuple[Path, Path]:
    """The release of one raw file, in the pipeline's wording; returns (release, released dcm)."""
    rel = case_dir / "release"
    dcm = rel / "sourcedata" / "dicom" / "sub-a1b2c3d4" / "ses-1" / "s001" / "00001.dcm"
    dcm.parent.mkdir(parents=True)
    cfg = DeidConfig(key=KEY, subject_label="a1b2c3d4", session_label="1", date_shift_days=-3001,
                     options=frozenset(DEFAULT_OPTIONS))
    deidentify_file(raw_file, dcm, cfg)
    func = rel / "sub-a1b2c3d4" / "ses-1" / "func"
    func.mkdir(parents=True)
    out = pydicom.dcmread(dcm, stop_before_pixels=True)
    (func / "sub-a1b2c3d4_ses-1_task-rest_run-1_bold.json").write_text(json.dumps({
        "Manufacturer": str(out.get("Manufacturer", vendor)), "ParallelReductionFactorInPlane": 2,
        "ConversionSoftware": "dcm2niix", "ReceiveCoilName": "HeadNeck_64", "TaskName": "rest"}, indent=1))
    (rel / "README").write_text(
        "De-identified with neurodeid (https://github.com/neurodeid). The audit found none of the "
        "identifying values. PatientIdentityRemoved=YES is written into every DICOM file.\n")
    (rel / "dataset_description.json").write_text(json.dumps({"Name": "corpus", "BIDSVersion": "1.9.0"}))
    (rel / "participants.tsv").write_text("participant_id\tsex\nsub-a1b2c3d4\tF\n")
    return rel, dcm


def _raw(case_dir: Path, base: Path, folder: str, charset: str = "latin", edit=None) -> Path:
    ds = pydicom.dcmread(base)
    _identity(ds, charset)
    if edit:
        edit(ds)
    raw = case_dir / "raw" / folder / "IM0001.dcm"
    raw.parent.mkdir(parents=True)
    ds.save_as(raw)
    return raw


def build_cases(tmp: Path) -> list[Case]:
    """Every class of the issue, per vendor base (see the module docstring)."""
    cases: list[Case] = []
    bases = vendor_bases()
    n = 0

    def new(cls, kind, vendor, base, folder="export/series1", charset="latin", raw_edit=None, planted=""):
        nonlocal n
        n += 1
        d = tmp / f"c{n:03d}"
        raw = _raw(d, base, folder, charset, raw_edit)
        rel, dcm = _release(d, raw, vendor)
        case = Case(cls, kind, vendor, d / "raw", rel, planted)
        cases.append(case)
        return case, rel, dcm

    def edit_dcm(dcm: Path, fn) -> None:
        ds = pydicom.dcmread(dcm)
        fn(ds)
        ds.save_as(dcm)

    for vendor, base in bases.items():
        siemens = vendor == "Siemens"
        # ---- leaks: planted in the release, the audit must catch them
        _, rel, dcm = new("name in a kept attribute (SequenceName)", LEAK, vendor, base, planted=GIVEN)
        edit_dcm(dcm, lambda ds: setattr(ds, "SequenceName", f"*ep_{GIVEN}"))
        _, rel, dcm = new("name in a code meaning at depth 2", LEAK, vendor, base, planted=FAMILY)

        def deep(ds):
            item, code = pydicom.Dataset(), pydicom.Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-A0100", "SRT", f"{FAMILY} brain"
            item.AnatomicRegionSequence = pydicom.Sequence([code])
            ds.ReferencedImageSequence = pydicom.Sequence([item])
        edit_dcm(dcm, deep)
        _, rel, dcm = new("MRN in a private element", LEAK, vendor, base, planted=MRN)
        edit_dcm(dcm, lambda ds: ds.private_block(0x0011, "ACME 1.0", create=True).add_new(0x01, "LO", MRN))
        _, rel, _ = new("name glued to digits in a BIDS entity", LEAK, vendor, base, planted=GIVEN)
        f = next(rel.rglob("*_bold.json"))
        f.rename(f.with_name(f"sub-a1b2c3d4_ses-1_task-{GIVEN}31415926_bold.json"))
        for spelling in ("17.03.1942", "1942.03.17", "17 Mar 1942", "03/17/1942", "17.03.42"):
            _, rel, _ = new(f"birth date as free text ({spelling})", LEAK, vendor, base, planted=spelling)
            (rel / "README").write_text(f"Scanned after a visit; born {spelling}.\n")
        _, rel, _ = new("MRN without separators in a TSV cell", LEAK, vendor, base, planted=MRN_BARE)
        (rel / "participants.tsv").write_text(f"participant_id\tsource\nsub-a1b2c3d4\t{MRN_BARE}\n")
        _, rel, dcm = new("text appended after the image in Pixel Data", LEAK, vendor, base, planted=GIVEN)

        def append(ds):
            ds.PixelData = bytes(ds.PixelData) + f" {GIVEN} ".encode()
        edit_dcm(dcm, append)
        _, rel, dcm = new("StudyInstanceUID from MRN and birth date under the DICOM root", LEAK, vendor, base,
                          planted="1.2.840.10008.31415926.19420317")
        edit_dcm(dcm, lambda ds: setattr(ds, "StudyInstanceUID", "1.2.840.10008.31415926.19420317"))
        _, rel, dcm = new("UID only: a raw StudyInstanceUID built from MRN and birth date, kept", LEAK, vendor, base,
                          planted=UID_ONLY, raw_edit=lambda ds: setattr(ds, "StudyInstanceUID", UID_ONLY))
        edit_dcm(dcm, lambda ds: setattr(ds, "StudyInstanceUID", UID_ONLY))
        _, rel, dcm = new("name in the file meta (SourceApplicationEntityTitle)", LEAK, vendor, base, planted=GIVEN)
        edit_dcm(dcm, lambda ds: setattr(ds.file_meta, "SourceApplicationEntityTitle", GIVEN))
        _, rel, dcm = new("name in a private binary block (OB)", LEAK, vendor, base, planted=GIVEN)
        edit_dcm(dcm, lambda ds: ds.private_block(0x0011, "ACME 1.0", create=True).add_new(
            0x02, "OB", b"\x01\x02" + GIVEN.encode() + b"\x00\x00"))
        _, rel, dcm = new("name in the DICOM preamble", LEAK, vendor, base, planted=GIVEN)
        edit_dcm(dcm, lambda ds: setattr(ds, "preamble", (b"\x00" * 8 + GIVEN.encode()).ljust(128, b"\x00")))
        _, rel, dcm = new("text after the end of the DICOM dataset", LEAK, vendor, base, planted=GIVEN)
        dcm.write_bytes(dcm.read_bytes() + f" {GIVEN} ".encode())
        _, rel, _ = new("name glued camelCase in a BIDS entity", LEAK, vendor, base, planted=GIVEN)
        f = next(rel.rglob("*_bold.json"))
        f.rename(f.with_name(f"sub-a1b2c3d4_ses-1_task-rest{GIVEN}_bold.json"))
        _, rel, _ = new("name in the sidecar ReceiveCoilName", LEAK, vendor, base, planted=GIVEN)
        side = next(rel.rglob("*_bold.json"))
        side.write_text(side.read_text().replace("HeadNeck_64", f"Head_{GIVEN}"))
        _, rel, dcm = new("kanji family name (2 characters) in a released DICOM", LEAK, vendor, base,
                          charset="japanese", planted=KANJI_FAMILY)

        def kanji(ds):
            ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
            ds.ImageComments = f"{KANJI_FAMILY} scan"
        edit_dcm(dcm, kanji)
        _, rel, _ = new("kanji given name (2 characters) in a JSON value", LEAK, vendor, base,
                        charset="japanese", planted=KANJI_GIVEN)
        side = next(rel.rglob("*_bold.json"))
        side.write_text(side.read_text().replace('"rest"', json.dumps(f"rest {KANJI_GIVEN}", ensure_ascii=False)))
        _, rel, _ = new("Latin-1 name part in a folder name", LEAK, vendor, base, charset="latin-1", planted="Müller")
        (rel / "derivatives" / "Müller").mkdir(parents=True)
        if siemens:
            _, rel, dcm = new("token in a CSA ImageHistory item", LEAK, vendor, base, planted=GIVEN)
            edit_dcm(dcm, lambda ds: setattr(ds[0x00291010], "value",
                                             plant_csa(ds[0x00291010].value, "ImageHistory", GIVEN.encode())))
            # ---- de-identification: planted in the raw CSA, the release must be clean
            new("token in a CSA ImageHistory item", DEID, vendor, base, planted=GIVEN,
                raw_edit=lambda ds: setattr(ds[0x00291010], "value",
                                            plant_csa(ds[0x00291010].value, "ImageHistory", f"x {GIVEN}".encode())))
            new("name in a CSA coil string (ImaCoilString)", DEID, vendor, base, planted=FAMILY,
                raw_edit=lambda ds: setattr(ds[0x00291010], "value",
                                            plant_csa(ds[0x00291010].value, "ImaCoilString", FAMILY.encode())))
        # ---- de-identification: planted in the raw file, the release must be clean
        new("name in a kept attribute (SequenceName)", DEID, vendor, base, planted=GIVEN,
            raw_edit=lambda ds: setattr(ds, "SequenceName", f"*ep{GIVEN}"))
        new("MRN in a kept code meaning", DEID, vendor, base, planted=MRN,
            raw_edit=lambda ds: setattr(ds, "ReferencedImageSequence", pydicom.Sequence([_coded(f"region {MRN}")])))
        new("StudyInstanceUID from MRN and birth date under the DICOM root", DEID, vendor, base,
            planted="1.2.840.10008.31415926.19420317",
            raw_edit=lambda ds: setattr(ds, "StudyInstanceUID", "1.2.840.10008.31415926.19420317"))
        # ---- harmless: vendor vocabulary and pipeline wording
        new("'com' in Siemens Series Workflow Status vs github.com", HARMLESS, vendor, base,
            raw_edit=lambda ds: ds.private_block(0x0029, "SIEMENS MEDCOM HEADER2", create=True).add_new(0x60, "LO", "com"))
        new("'YES' in a vendor private tag vs PatientIdentityRemoved", HARMLESS, vendor, base,
            raw_edit=lambda ds: ds.private_block(0x0019, "ACME VENDOR 1", create=True).add_new(0x10, "LO", "YES"))
        new("'NONE' / 'None' in comments vs the README", HARMLESS, vendor, base,
            raw_edit=lambda ds: (setattr(ds, "ImageComments", "None"), setattr(ds, "StudyComments", "NONE")))
        new("Philips 'PARALLEL' vs the sidecar key ParallelReductionFactorInPlane", HARMLESS, vendor, base,
            raw_edit=lambda ds: ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x20, "LO", "PARALLEL"))
        new("vendor folder name 'Philips'", HARMLESS, vendor, base, folder="Philips/series1")
        new("file name word 'RGB' vs PhotometricInterpretation", HARMLESS, vendor, base, folder="export/RGB_scan")
        _, rel, dcm = new("'tsv' of a raw .tsv vs participants.tsv", HARMLESS, vendor, base, folder="export/list.tsv")
    return cases


def _coded(meaning: str) -> pydicom.Dataset:
    item, code = pydicom.Dataset(), pydicom.Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-A0100", "SRT", meaning
    item.AnatomicRegionSequence = pydicom.Sequence([code])
    return item


def case_needles(case: Case) -> list[audit.Needle]:
    """The needles the workflow would collect for the case's raw export."""
    found: set = set()
    files = sorted(p for p in case.raw.rglob("*") if p.is_file())
    for f in files:
        found |= audit.read_file_needles(f, DEFAULT_OPTIONS)
    found |= audit.path_needles([p.relative_to(case.raw).as_posix() for p in files])
    return sorted(found, key=lambda n: (n.text, n.source))


def run_case(case: Case) -> dict:
    """Audit one case: its hits, and whether the planted value was caught."""
    needles = case_needles(case)
    hits, _ = audit.scan_release(case.release, audit.Matcher(needles))
    planted_hit = [h for h in hits if case.planted and case.planted.lower() in h.needle.lower()
                   or case.planted and h.needle.lower() in case.planted.lower()]
    return {"hits": hits, "planted_caught": bool(planted_hit), "needles": len(needles)}


def cleanup(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["Case", "build_cases", "run_case", "pydicom_testdir"]
