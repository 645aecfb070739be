"""Rebuild the bundled example DICOM tree under ``example/dicom``.

Run from the repository root::

    python example/build_example.py            # writes example/dicom/
    python example/build_example.py --out DIR  # writes DIR/ instead

The output is deterministic: every UID, date and time is fixed, nothing is
random, so two runs give byte-identical files (the test suite checks this).

Inputs (real data nobody on this project wrote, see example/LICENSES.md):

- pydicom's bundled ``test_files/dicomdirtests/98892001/CT5N`` (a 5-slice CT);
- ``heads/colin27_ch2.nii.gz`` and ``images/identifiable_us.jpg`` from the
  shared test data folder, found through the environment variable
  ``NEURODEID_SHARED_DATA`` (default ``<repo>/../shared/data``).

Every patient identifier written here is FAKE and planted on purpose so the
release audit and the de-identification tests have something to find; the
full list is ``example/planted_identifiers.json``, whose values are taken
from the ``SUBJECTS`` / ``STUDIES`` tables below (keep them in sync: the
script rewrites that JSON file too when writing to the default location).

Needs (build time only): pydicom >= 3.0, numpy, nibabel (NIfTI reading) and
SimpleITK (JPEG decoding).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example"

# ---------------------------------------------------------------------------
# Fixed identities of the writer (kept constant so output does not depend on
# the pydicom version that happens to be installed).
IMPLEMENTATION_VERSION_NAME = "NEURODEID_EX1"
PRIVATE_CREATOR = "ACME_PRIVATE 1.0"
PRIVATE_GROUP = 0x0011

CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
MR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.4"
US_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.6.1"
STUDY_ROOT_QR_FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # used in ReferencedStudySequence


def fixed_uid(*parts: str) -> str:
    """Return a deterministic ``2.25.<int>`` UID derived from `parts`.

    Parameters
    ----------
    parts : str
        Any strings; the same parts always give the same UID.

    Returns
    -------
    str
        A UID of the form ``2.25.<decimal of a 128-bit hash>`` (<= 64 chars).
    """
    h = hashlib.sha256("|".join(("neurodeid-example",) + parts).encode()).digest()
    return "2.25." + str(int.from_bytes(h[:16], "big"))


IMPLEMENTATION_CLASS_UID = fixed_uid("implementation-class")

# ---------------------------------------------------------------------------
# Planted FAKE identifiers. Strings chosen so they never occur by chance.
SUBJECTS = {
    "DOE_JOHN": {
        "PatientName": "DOE^JOHN",
        "PatientID": "PID-4417-DOE",
        "IssuerOfPatientID": "ST-MARYS-MRN",
        "OtherPatientID": "OPID-88213-JD",
        "OtherPatientIDIssuer": "NORTHGATE-CLINIC-ID",
        "PatientBirthDate": "19610723",
        "PatientSex": "M",
        "PatientAddress": "17 Quillfeather Lane, Brackenford BF9 4QZ",
        "PatientTelephoneNumbers": "+44 1632 960417",
        "InstitutionName": "St Marys Teaching Hospital",
        "InstitutionAddress": "1 Wexcombe Road, Brackenford BF1 2XY",
        "ReferringPhysicianName": "HALLORAN^MAEVE^^DR",
        "PerformingPhysicianName": "ZUBRINSKA^OKSANA",
        "OperatorsName": "TECHLEY^BARNABY",
        "NestedPersonName": "VANTRESCA^ODILE",
        "PrivateTopLevelID": "ACME-PT-66120-DOE",
        "PrivateTopLevelName": "JOHNNY^DOEMAN",
        "PrivateNestedID": "ACME-ORDER-44871-DOE",
        "ImageComments": "Copy requested by patient John Q. Doe",
        "SourceApplicationEntityTitle": "STMARYS_PACS",
    },
    "ROE_JANE": {
        "PatientName": "ROE^JANE",
        "PatientID": "PID-9052-ROE",
        "IssuerOfPatientID": None,
        "OtherPatientID": "OPID-31006-JR",
        "OtherPatientIDIssuer": "WESTBURN-GP-ID",
        "PatientBirthDate": "19880214",
        "PatientSex": "F",
        "PatientAddress": "42 Marrowby Street, Tillingham TG3 7RW",
        "PatientTelephoneNumbers": "+44 1632 960982",
        "InstitutionName": "Northgate Womens Clinic",
        "InstitutionAddress": "9 Ferncastle Row, Tillingham TG1 5PL",
        "ReferringPhysicianName": "OKONKWO-BREE^ADAEZE^^DR",
        "PerformingPhysicianName": "LINDQVARN^SOLVEIG",
        "OperatorsName": "SONOGRAPH^PERPETUA",
        "NestedPersonName": "QUARTERMAINE^ISOLDE",
        "PrivateTopLevelID": "ACME-PT-70931-ROE",
        "PrivateTopLevelName": "JANIE^ROEFIELD",
        "PrivateNestedID": "ACME-ORDER-52298-ROE",
        "ImageComments": "Keepsake print for Jane R. Roe",
        "SourceApplicationEntityTitle": "NGWC_US_ROOM2",
    },
}

STUDIES = {
    "CT": {
        "subject": "DOE_JOHN",
        "folder": ("DOE_JOHN", "2019-03-14_CT_HEAD", "SE2"),
        "StudyDate": "20190314",
        "StudyTime": "081522",
        "SeriesTime": "082704",
        "AccessionNumber": "ACC-CT-550193",
        "StudyID": "STU-7731-CT",
        "StudyDescription": "CT HEAD for DOE JOHN",
        "StationName": "SMTH-CT-QUILL7",
        "DeviceSerialNumber": "SN-CT-0044718",
        "RequestedProcedureID": "RPID-31337-DOE",
        "SeriesNumber": 2,
        "PatientAge": "057Y",
    },
    "MR": {
        "subject": "DOE_JOHN",
        "folder": ("DOE_JOHN", "20200611_MR_BRAIN", "t1_mprage"),
        "StudyDate": "20200611",
        "StudyTime": "143005",
        "SeriesTime": "144212",
        "AccessionNumber": "ACC-MR-550877",
        "StudyID": "STU-7802-MR",
        "StudyDescription": "MR BRAIN for DOE JOHN",
        "StationName": "SMTH-MR-PRISMA3",
        "DeviceSerialNumber": "SN-PRISMA-166042",
        "RequestedProcedureID": "RPID-31410-DOE",
        "SeriesNumber": 3,
        "PatientAge": "058Y",
    },
    "US": {
        "subject": "ROE_JANE",
        "folder": ("ROE_JANE", "US_20210102"),
        "StudyDate": "20210102",
        "StudyTime": "101744",
        "SeriesTime": "101801",
        "AccessionNumber": "ACC-US-620004",
        "StudyID": "STU-9120-US",
        "StudyDescription": "OB US for ROE JANE",
        "StationName": "NGWC-US-ROOM2",
        "DeviceSerialNumber": "SN-US-ACU-30981",
        "RequestedProcedureID": "RPID-40772-ROE",
        "SeriesNumber": 1,
        "PatientAge": "032Y",
    },
}

MR_SERIES_DESCRIPTION = "t1_mprage_ax DOE"

# The CT file written without 128-byte preamble and 'DICM' prefix
# (read it with pydicom.dcmread(..., force=True)).
CT_NO_PREAMBLE_INDEX = 3  # IM_0003.dcm


def study_uids(key: str) -> dict[str, str]:
    """Fixed Study/Series/FrameOfReference UIDs for study `key` ('CT', 'MR', 'US')."""
    return {
        "StudyInstanceUID": fixed_uid(key, "study"),
        "SeriesInstanceUID": fixed_uid(key, "series"),
        "FrameOfReferenceUID": fixed_uid(key, "frame-of-reference"),
    }


def planted_identifiers() -> dict:
    """Return the planted-identifier inventory written to planted_identifiers.json.

    Returns
    -------
    dict
        ``{"subjects": {label: {"strings": [...], "dates": [...], "uids": [...],
        "path_components": [...], "burned_in_pixel_text": [...]}}}``.
        ``strings`` are greppable byte strings present in the DICOM headers.
    """
    out: dict = {
        "note": (
            "All identifiers in example/dicom are FAKE and planted on purpose. "
            "'strings' occur verbatim in DICOM headers (at top level, in sequences, "
            "in private blocks or in the file meta); 'dates' are real-looking dates "
            "that must be shifted or removed; 'uids' are the original UIDs that must "
            "be remapped; 'path_components' are folder/file names carrying "
            "identifiers; 'burned_in_pixel_text' is text burned into the pixels "
            "(not present as bytes; found only by OCR/redaction)."
        ),
        "subjects": {},
    }
    for label, s in SUBJECTS.items():
        strings = [
            s["PatientName"],
            s["PatientID"],
            s["OtherPatientID"],
            s["OtherPatientIDIssuer"],
            s["PatientAddress"],
            s["PatientTelephoneNumbers"],
            s["InstitutionName"],
            s["InstitutionAddress"],
            s["ReferringPhysicianName"],
            s["PerformingPhysicianName"],
            s["OperatorsName"],
            s["NestedPersonName"],
            s["PrivateTopLevelID"],
            s["PrivateTopLevelName"],
            s["PrivateNestedID"],
            s["ImageComments"],
            s["SourceApplicationEntityTitle"],
        ]
        if s["IssuerOfPatientID"]:
            strings.insert(2, s["IssuerOfPatientID"])
        dates = [s["PatientBirthDate"]]
        uids = []
        paths = [label]
        for key, st in STUDIES.items():
            if st["subject"] != label:
                continue
            strings += [
                st["AccessionNumber"],
                st["StudyID"],
                st["StudyDescription"],
                st["StationName"],
                st["DeviceSerialNumber"],
                st["RequestedProcedureID"],
            ]
            dates.append(st["StudyDate"])
            uids += [
                uid
                for name, uid in study_uids(key).items()
                if not (key == "US" and name == "FrameOfReferenceUID")  # US has none
            ]
            # folder names carrying a name or a date (not "SE2", "t1_mprage")
            paths += [
                p for p in st["folder"][1:] if re.search(r"\d{4}-?\d{2}-?\d{2}", p)
            ]
        if label == "DOE_JOHN":
            strings.append(MR_SERIES_DESCRIPTION)  # a name fragment in free text
            paths.append("DOE_JOHN_0001")
        entry = {
            "PatientName": s["PatientName"],
            "PatientID": s["PatientID"],
            "strings": strings,
            "dates": dates,
            "uids": uids,
            "path_components": paths,
        }
        if label == "ROE_JANE":
            entry["burned_in_pixel_text"] = [
                "CARTER, STEPHANIE",
                "48206",
                "NORTH COUNTY OBGYN",
            ]
        out["subjects"][label] = entry
    return out


# ---------------------------------------------------------------------------
# Building blocks


def shared_data_dir() -> Path:
    """Shared test data folder: $NEURODEID_SHARED_DATA or <repo>/../shared/data."""
    env = os.environ.get("NEURODEID_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def new_file_meta(sop_class: str, sop_instance: str, ae_title: str) -> FileMetaDataset:
    """File meta information with fixed implementation identifiers."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    meta.SourceApplicationEntityTitle = ae_title
    return meta


def plant_identifiers(ds: Dataset, key: str) -> None:
    """Write the planted patient/study/equipment identifiers of study `key` into `ds`.

    Modifies `ds` in place: patient module, general study/series/equipment
    identifiers, OtherPatientIDsSequence, RequestAttributesSequence with a
    depth-2 nested person name and a private block inside the item, and a
    top-level private block (group 0x0011, creator 'ACME_PRIVATE 1.0').
    """
    st = STUDIES[key]
    s = SUBJECTS[st["subject"]]
    uids = study_uids(key)

    ds.SpecificCharacterSet = "ISO_IR 100"
    for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, kw, st["StudyDate"])
    ds.StudyTime = st["StudyTime"]
    ds.SeriesTime = st["SeriesTime"]
    ds.AccessionNumber = st["AccessionNumber"]
    ds.InstitutionName = s["InstitutionName"]
    ds.InstitutionAddress = s["InstitutionAddress"]
    ds.ReferringPhysicianName = s["ReferringPhysicianName"]
    ds.StationName = st["StationName"]
    ds.StudyDescription = st["StudyDescription"]
    ds.PerformingPhysicianName = s["PerformingPhysicianName"]
    ds.OperatorsName = s["OperatorsName"]

    ds.PatientName = s["PatientName"]
    ds.PatientID = s["PatientID"]
    if s["IssuerOfPatientID"]:
        ds.IssuerOfPatientID = s["IssuerOfPatientID"]
    ds.PatientBirthDate = s["PatientBirthDate"]
    ds.PatientSex = s["PatientSex"]
    ds.PatientAge = st["PatientAge"]
    other = Dataset()
    other.PatientID = s["OtherPatientID"]
    other.IssuerOfPatientID = s["OtherPatientIDIssuer"]
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientAddress = s["PatientAddress"]
    ds.PatientTelephoneNumbers = s["PatientTelephoneNumbers"]

    ds.DeviceSerialNumber = st["DeviceSerialNumber"]
    ds.StudyInstanceUID = uids["StudyInstanceUID"]
    ds.SeriesInstanceUID = uids["SeriesInstanceUID"]
    ds.StudyID = st["StudyID"]
    ds.SeriesNumber = st["SeriesNumber"]
    ds.ImageComments = s["ImageComments"]

    # Request attributes: depth 1 holds IDs, depth 2 holds a person name
    # (in a code item) and a referenced study; the item also has a private block.
    code = Dataset()
    code.CodeValue = "R51.9"
    code.CodingSchemeDesignator = "I10"
    code.CodeMeaning = "Headache, unspecified"
    code.add_new(0x0040A123, "PN", s["NestedPersonName"])  # PersonName
    ref_study = Dataset()
    ref_study.ReferencedSOPClassUID = STUDY_ROOT_QR_FIND
    ref_study.ReferencedSOPInstanceUID = uids["StudyInstanceUID"]
    req = Dataset()
    req.RequestedProcedureID = st["RequestedProcedureID"]
    req.ScheduledProcedureStepID = st["RequestedProcedureID"].replace("RPID", "SPS")
    req.AccessionNumber = st["AccessionNumber"]
    req.ReferencedStudySequence = Sequence([ref_study])
    req.ReasonForRequestedProcedureCodeSequence = Sequence([code])
    blk = req.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    blk.add_new(0x10, "LO", s["PrivateNestedID"])
    ds.RequestAttributesSequence = Sequence([req])

    blk = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    blk.add_new(0x01, "LO", s["PrivateTopLevelID"])
    blk.add_new(0x02, "PN", s["PrivateTopLevelName"])


def write_dataset(ds: Dataset, path: Path, preamble: bool = True) -> None:
    """Write `ds` to `path` (Explicit VR Little Endian).

    With ``preamble=False`` the file starts directly with the File Meta group
    (no 128-byte preamble, no 'DICM' prefix), as some old exporters do.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if preamble:
        ds.preamble = b"\x00" * 128
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.preamble = None
        ds.save_as(path, enforce_file_format=False)


# ---------------------------------------------------------------------------
# Study 1: the real CT5N series with planted identifiers


def build_ct(out: Path) -> list[Path]:
    """Write the CT5N series (5 slices) under DOE_JOHN/2019-03-14_CT_HEAD/SE2.

    Pixels, geometry and acquisition tags are those of pydicom's CT5N test
    series; identifiers, dates and UIDs are replaced by the planted ones.
    """
    src = Path(pydicom.data.__file__).parent / "test_files/dicomdirtests/98892001/CT5N"
    st = STUDIES["CT"]
    s = SUBJECTS[st["subject"]]
    files = sorted(src.iterdir(), key=lambda p: int(p.name))
    datasets = [pydicom.dcmread(f) for f in files]
    datasets.sort(key=lambda d: -float(d.ImagePositionPatient[2]))  # superior first
    written = []
    for n, ds in enumerate(datasets, start=1):
        # drop the de-identification markers of the source: the planted
        # dataset pretends to be an identified original
        for kw in (
            "PatientIdentityRemoved",
            "DeidentificationMethod",
            "InstanceCreatorUID",
        ):
            if kw in ds:
                delattr(ds, kw)
        plant_identifiers(ds, "CT")
        ds.InstanceCreationDate = st["StudyDate"]
        ds.PerformedProcedureStepStartDate = st["StudyDate"]
        ds.PerformedProcedureStepStartTime = st["StudyTime"]
        ds.FrameOfReferenceUID = study_uids("CT")["FrameOfReferenceUID"]
        ds.InstanceNumber = n
        ds.SOPInstanceUID = fixed_uid("CT", "instance", str(n))
        ds.file_meta = new_file_meta(
            CT_SOP_CLASS, ds.SOPInstanceUID, s["SourceApplicationEntityTitle"]
        )
        path = out.joinpath(*st["folder"], f"IM_{n:04d}.dcm")
        write_dataset(ds, path, preamble=(n != CT_NO_PREAMBLE_INDEX))
        written.append(path)
    return written


# ---------------------------------------------------------------------------
# Study 2: T1w MR head series from colin27


def ras_to_dicom_slices(affine_ras: np.ndarray, shape: tuple[int, int, int]):
    """Geometry of axial DICOM slices for a RAS+ volume whose voxel axes are (R, A, S)-ish.

    The DICOM pixel (row r, column c) of slice k is voxel
    (i, j, k) = (ni - 1 - c, nj - 1 - r, k), i.e. the array is flipped in i
    and j so that columns run towards patient Left and rows towards
    Posterior (ImageOrientationPatient close to 1\\0\\0\\0\\1\\0).

    Parameters
    ----------
    affine_ras : (4, 4) ndarray
        Voxel (i, j, k) -> RAS+ mm (NIfTI convention).
    shape : tuple of int
        (ni, nj, nk) voxel counts.

    Returns
    -------
    iop : list of float
        ImageOrientationPatient (row direction, then column direction), LPS.
    pixel_spacing : list of float
        [spacing between rows, spacing between columns] in mm.
    slice_spacing : float
        Distance between slice centres in mm.
    ipp : (nk, 3) ndarray
        ImagePositionPatient of the first pixel of each slice, LPS mm.
    """
    ni, nj, nk = shape
    ras2lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip = np.array(
        [[-1, 0, 0, ni - 1], [0, -1, 0, nj - 1], [0, 0, 1, 0], [0, 0, 0, 1]],
        dtype=float,
    )
    m = ras2lps @ affine_ras @ flip  # (c, r, k) -> LPS mm
    col_step = m[:3, 0]  # moving one column (along a row)
    row_step = m[:3, 1]  # moving one row (down a column)
    sl_step = m[:3, 2]
    dc, dr, ds_ = (float(np.linalg.norm(v)) for v in (col_step, row_step, sl_step))
    iop = list(col_step / dc) + list(row_step / dr)
    normal = np.cross(col_step / dc, row_step / dr)
    if abs(abs(float(normal @ (sl_step / ds_))) - 1) > 1e-6:
        raise ValueError(
            f"affine is not orthogonal, cannot make DICOM slices: {affine_ras}"
        )
    ipp = np.array([m @ [0, 0, k, 1] for k in range(nk)])[:, :3]
    return iop, [dr, dc], ds_, ipp


def mr_crop_slices(data: np.ndarray) -> tuple[slice, slice, slice]:
    """Bounding box of non-zero voxels (drops only all-zero background planes)."""
    nz = np.argwhere(data > 0)
    lo, hi = nz.min(0), nz.max(0) + 1
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def fmt_ds(x: float) -> str:
    """Format a float for a DS element (<= 16 characters, no trailing noise)."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def build_mr(out: Path, nifti: Path) -> list[Path]:
    """Write colin27 as an axial 1 mm T1w MR series under DOE_JOHN/20200611_MR_BRAIN/t1_mprage.

    Only all-zero background planes are cropped; voxel values (uint8 0..254)
    are stored unchanged as uint16 (BitsStored 12, RescaleSlope 1, Intercept 0).
    """
    import nibabel as nib

    img = nib.load(str(nifti))
    img = img.slicer[mr_crop_slices(np.asarray(img.dataobj))]
    data = np.asarray(img.dataobj)
    affine = img.affine
    iop, spacing, slice_spacing, ipp = ras_to_dicom_slices(affine, data.shape)
    st = STUDIES["MR"]
    s = SUBJECTS[st["subject"]]
    uids = study_uids("MR")
    written = []
    for k in range(data.shape[2]):
        n = k + 1
        pix = np.ascontiguousarray(data[::-1, ::-1, k].T).astype("<u2")  # (rows, cols)
        ds = Dataset()
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.InstanceCreationDate = st["StudyDate"]
        ds.InstanceCreationTime = st["SeriesTime"]
        ds.SOPClassUID = MR_SOP_CLASS
        ds.SOPInstanceUID = fixed_uid("MR", "instance", str(n))
        ds.Modality = "MR"
        ds.Manufacturer = "SIEMENS"
        ds.ManufacturerModelName = "Prisma"
        ds.SeriesDescription = MR_SERIES_DESCRIPTION
        ds.BodyPartExamined = "HEAD"
        ds.ScanningSequence = ["GR", "IR"]
        ds.SequenceVariant = ["SP", "MP"]
        ds.ScanOptions = "IR"
        ds.MRAcquisitionType = "3D"
        ds.SequenceName = "*tfl3d1_16ns"
        ds.AngioFlag = "N"
        ds.SliceThickness = fmt_ds(slice_spacing)
        ds.RepetitionTime = "2300"
        ds.EchoTime = "2.98"
        ds.InversionTime = "900"
        ds.NumberOfAverages = "1"
        ds.ImagingFrequency = "123.251815"
        ds.ImagedNucleus = "1H"
        ds.EchoNumbers = "1"
        ds.MagneticFieldStrength = "3"
        ds.SpacingBetweenSlices = fmt_ds(slice_spacing)
        ds.EchoTrainLength = "1"
        ds.PercentSampling = "100"
        ds.PercentPhaseFieldOfView = "100"
        ds.PixelBandwidth = "240"
        ds.SoftwareVersions = "syngo MR E11"
        ds.ProtocolName = "t1_mprage"
        ds.TransmitCoilName = "Body"
        ds.ReceiveCoilName = "HeadNeck_64"
        ds.AcquisitionMatrix = [0, 256, 256, 0]
        ds.InPlanePhaseEncodingDirection = "ROW"
        ds.FlipAngle = "9"
        ds.VariableFlipAngleFlag = "N"
        ds.SAR = "0.0714"
        ds.PatientPosition = "HFS"
        plant_identifiers(ds, "MR")
        ds.AcquisitionTime = st["SeriesTime"]
        ds.ContentTime = st["SeriesTime"]
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = n
        ds.ImagePositionPatient = [fmt_ds(v) for v in ipp[k]]
        ds.ImageOrientationPatient = [fmt_ds(v) for v in iop]
        ds.FrameOfReferenceUID = uids["FrameOfReferenceUID"]
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = fmt_ds(float(ipp[k][2]))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = pix.shape
        ds.PixelSpacing = [fmt_ds(v) for v in spacing]
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.SmallestImagePixelValue = int(pix.min())
        ds.LargestImagePixelValue = int(pix.max())
        ds["SmallestImagePixelValue"].VR = "US"
        ds["LargestImagePixelValue"].VR = "US"
        ds.WindowCenter = "110"
        ds.WindowWidth = "230"
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "US"
        ds.PixelData = pix.tobytes()
        ds["PixelData"].VR = "OW"
        ds.file_meta = new_file_meta(
            MR_SOP_CLASS, ds.SOPInstanceUID, s["SourceApplicationEntityTitle"]
        )
        path = out.joinpath(*st["folder"], f"DOE_JOHN_{n:04d}")
        write_dataset(ds, path)
        written.append(path)
    return written


# ---------------------------------------------------------------------------
# Study 3: the identifiable ultrasound still


# The imaged sector/area below the top text band of identifiable_us.jpg
# (pixel columns x0..x1, rows y0..y1, inclusive); physical delta from the
# "5.0cm" depth shown on the image over ~730 rows.
US_REGION = {"x0": 40, "y0": 90, "x1": 1079, "y1": 819, "delta_cm": 0.0068}


def build_us(out: Path, jpeg: Path) -> list[Path]:
    """Write identifiable_us.jpg as an uncompressed RGB US Image Storage file."""
    import SimpleITK as sitk

    rgb = sitk.GetArrayFromImage(sitk.ReadImage(str(jpeg)))  # (rows, cols, 3) uint8
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"{jpeg}: expected an 8-bit RGB image, got {rgb.shape} {rgb.dtype}"
        )
    st = STUDIES["US"]
    s = SUBJECTS[st["subject"]]
    ds = Dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OB", "0001"]
    ds.InstanceCreationDate = st["StudyDate"]
    ds.InstanceCreationTime = st["SeriesTime"]
    ds.SOPClassUID = US_SOP_CLASS
    ds.SOPInstanceUID = fixed_uid("US", "instance", "1")
    ds.Modality = "US"
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "ACUSON Antares"
    ds.SeriesDescription = "OB early pregnancy"
    ds.BodyPartExamined = "ABDOMEN"
    plant_identifiers(ds, "US")
    ds.AcquisitionTime = st["SeriesTime"]
    ds.ContentTime = st["SeriesTime"]
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "YES"
    region = Dataset()
    region.RegionLocationMinX0 = US_REGION["x0"]
    region.RegionLocationMinY0 = US_REGION["y0"]
    region.RegionLocationMaxX1 = US_REGION["x1"]
    region.RegionLocationMaxY1 = US_REGION["y1"]
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX = US_REGION["delta_cm"]
    region.PhysicalDeltaY = US_REGION["delta_cm"]
    region.RegionSpatialFormat = 1  # 2D (tissue or flow)
    region.RegionDataType = 1  # tissue
    region.RegionFlags = 0
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"  # the source is a JPEG
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    ds["PixelData"].VR = "OB"
    ds.file_meta = new_file_meta(
        US_SOP_CLASS, ds.SOPInstanceUID, s["SourceApplicationEntityTitle"]
    )
    path = out.joinpath(*st["folder"], "US1.dcm")
    write_dataset(ds, path)
    return [path]


# ---------------------------------------------------------------------------
# DICOMDIR and the non-DICOM file


def build_dicomdir(out: Path, files: list[Path]) -> Path:
    """Write ``out/DICOMDIR`` referencing `files` at their (PACS-style) paths.

    pydicom's FileSet always lays out files as PTxxxxxx/STxxxxxx/...; we let it
    build the directory records in a temporary folder, then point each IMAGE
    record's ReferencedFileID at the real file and recompute the record offsets.
    The component names (lower case, '-', > 8 characters) do not follow the
    PS3.10 File ID rules, as in many real exports; readers must tolerate it.
    """
    from pydicom.fileset import FileSet

    # the File IDs below break the CS rules on purpose; keep pydicom quiet about it
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="(Invalid value for VR CS|The value length)"
        )
        return _build_dicomdir(out, files)


def _build_dicomdir(out: Path, files: list[Path]) -> Path:
    from pydicom.fileset import FileSet

    by_uid = {}
    fs = FileSet()
    fs.ID = "NEURODEID_EX"
    fs.UID = fixed_uid("fileset")
    for f in files:
        ds = pydicom.dcmread(f, force=True)
        by_uid[ds.SOPInstanceUID] = f.relative_to(out).parts
        fs.add(ds)
    with tempfile.TemporaryDirectory() as tmp:
        fs.write(tmp)
        dd = pydicom.dcmread(Path(tmp) / "DICOMDIR")
    records = dd.DirectoryRecordSequence
    for rec in records:
        if "ReferencedFileID" in rec:
            rec.ReferencedFileID = list(by_uid[rec.ReferencedSOPInstanceUIDInFile])
    dd.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    dd.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    old_index = {rec.seq_item_tell: i for i, rec in enumerate(records)}
    links = []
    for rec in records:
        links.append(
            {
                kw: (old_index[rec[kw].value] if rec[kw].value else None)
                for kw in (
                    "OffsetOfTheNextDirectoryRecord",
                    "OffsetOfReferencedLowerLevelDirectoryEntity",
                )
            }
        )
    root = {
        kw: old_index[dd[kw].value]
        for kw in (
            "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity",
            "OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity",
        )
    }
    # pass 1: write with the new File IDs to learn where each record now lands
    buf = io.BytesIO()
    dd.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    new_tells = [r.seq_item_tell for r in pydicom.dcmread(buf).DirectoryRecordSequence]
    for rec, link in zip(records, links):
        for kw, idx in link.items():
            rec[kw].value = 0 if idx is None else new_tells[idx]
    for kw, idx in root.items():
        dd[kw].value = new_tells[idx]
    path = out / "DICOMDIR"
    dd.save_as(path, enforce_file_format=True)
    return path


NOTES_TEXT = "Exported from the PACS workstation. Three studies, two patients.\n"


def build(out: Path, shared: Path) -> list[Path]:
    """Delete `out` and rebuild the whole example tree in it; return written files."""
    nifti = shared / "heads" / "colin27_ch2.nii.gz"
    jpeg = shared / "images" / "identifiable_us.jpg"
    for p in (nifti, jpeg):
        if not p.is_file():
            raise FileNotFoundError(
                f"source file {p} not found; set NEURODEID_SHARED_DATA to the shared data folder"
            )
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = build_ct(out) + build_mr(out, nifti) + build_us(out, jpeg)
    notes = out / "DOE_JOHN" / "export_notes.txt"
    notes.write_text(NOTES_TEXT)
    dicomdir = build_dicomdir(out, files)
    return files + [notes, dicomdir]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=EXAMPLE / "dicom",
        help="output folder (deleted and recreated; default example/dicom)",
    )
    args = parser.parse_args(argv)
    files = build(args.out, shared_data_dir())
    if args.out.resolve() == (EXAMPLE / "dicom").resolve():
        (EXAMPLE / "planted_identifiers.json").write_text(
            json.dumps(planted_identifiers(), indent=2) + "\n"
        )
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {total / 1e6:.1f} MB, under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
