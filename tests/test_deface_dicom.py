"""Defaced DICOM: the removal mask carried back to the DICOM pixels (neurodeid.deface.dicom).

Real data: the bundled example MR head (de-identified, converted with dcm2niix, defaced with
the template method, then written back as DICOM and converted again), the GE 3D structural
of dcm_qa_deident (already refaced by its provider: template defacing fails on it, so a
synthetic anterior-inferior box is the removal mask), the example CT, pydicom's lossy
JPEG 2000 CT and an enhanced multi-frame MR built from the example slices.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import EXAMPLE_DICOM, TEST_KEY, pydicom_testdir
from nibabel.affines import apply_affine
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from neurodeid import audit, keys
from neurodeid.convert import convert_series
from neurodeid.deface import deface_file
from neurodeid.deface.io import load_head, write_defaced, write_mask
from neurodeid.deface.dicom import (
    DefacedDicomError,
    frame_removal_mask,
    write_defaced_series,
)
from neurodeid.deid import DeidConfig, deidentify_series
from neurodeid.deid.profile import DEFAULT_OPTIONS

HEAD_DIR = EXAMPLE_DICOM / "DOE_JOHN" / "20200611_MR_BRAIN" / "t1_mprage"
CT_DIR = EXAMPLE_DICOM / "DOE_JOHN" / "2019-03-14_CT_HEAD" / "SE2"


def _deid(files, out_dir, label):
    cfg = DeidConfig(key=TEST_KEY, subject_label=label, date_shift_days=keys.date_shift_days(TEST_KEY, label),
                     options=frozenset(DEFAULT_OPTIONS))
    res = deidentify_series(files, out_dir, cfg)
    assert all(r["status"] == "ok" for r in res), [r["reason"] for r in res if r["status"] != "ok"]
    return sorted(Path(out_dir).glob("*.dcm"))


def _convert(files, out_dir):
    res = convert_series(files, out_dir, stem="image")
    assert len(res) == 1, res
    return res[0]["nifti"]


def _lps_pixel_voxels(ds: Dataset, affine) -> np.ndarray:
    """Test oracle, written independently of the library: NIfTI voxel (i, j, k) nearest to
    every pixel centre of a single-frame image, shape (rows, cols, 3)."""
    ipp = np.array(ds.ImagePositionPatient, float)
    iop = np.array(ds.ImageOrientationPatient, float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    rr, cc = np.meshgrid(np.arange(ds.Rows), np.arange(ds.Columns), indexing="ij")
    lps = ipp + cc[..., None] * dc * iop[:3] + rr[..., None] * dr * iop[3:]
    ras = lps * np.array([-1.0, -1.0, 1.0])
    return np.rint(apply_affine(np.linalg.inv(affine), ras)).astype(int)


def _check_pixels(src_files, out_files, mask_path, bg_scaled):
    """Outside the mask: pixels (and their stored bytes) identical; inside: the background."""
    m = nib.load(str(mask_path))
    mask = np.asarray(m.dataobj) > 0
    n_inside = 0
    for src, out in zip(src_files, out_files):
        a, b = pydicom.dcmread(src), pydicom.dcmread(out)
        pa, pb = a.pixel_array, b.pixel_array
        idx = _lps_pixel_voxels(a, m.affine)
        inside = mask[idx[..., 0], idx[..., 1], idx[..., 2]]
        n_inside += int(inside.sum())
        assert np.array_equal(pa[~inside], pb[~inside]), out
        bg = round((bg_scaled - float(a.get("RescaleIntercept", 0))) / float(a.get("RescaleSlope", 1)))
        assert np.all(pb[inside] == bg), out
        if not UID(a.file_meta.TransferSyntaxUID).is_encapsulated:
            wa = np.frombuffer(a.PixelData, np.uint16)[: pa.size].reshape(pa.shape)
            wb = np.frombuffer(b.PixelData, np.uint16)[: pb.size].reshape(pb.shape)
            assert np.array_equal(wa[~inside], wb[~inside])  # stored bytes, not only values
    return n_inside


def _round_trip(out_files, defaced_nifti, tmp):
    back = nib.load(str(_convert(out_files, tmp)))
    ref = nib.load(str(defaced_nifti))
    assert back.shape == ref.shape
    assert np.abs(back.affine - ref.affine).max() <= 1e-3
    assert np.array_equal(np.asarray(back.dataobj.get_unscaled()), np.asarray(ref.dataobj.get_unscaled()))
    assert np.array_equal(back.get_fdata(), ref.get_fdata())
    return float(np.abs(back.get_fdata() - ref.get_fdata()).max())


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """The example head through deid -> convert -> deface (template) -> defaced DICOM."""
    tmp = tmp_path_factory.mktemp("head")
    raw = sorted(p for p in HEAD_DIR.iterdir() if p.is_file())
    deid = _deid(raw, tmp / "deid", "head1")
    nifti = _convert(deid, tmp / "convert")
    defaced, mask = tmp / "defaced.nii.gz", tmp / "removal.nii.gz"
    deface_file(nifti, defaced, method="template", mask_out=mask)
    summary = write_defaced_series(deid, nifti, mask, tmp / "out", TEST_KEY)
    return SimpleNamespace(tmp=tmp, raw=raw, deid=deid, nifti=nifti, defaced=defaced, mask=mask,
                           out=[Path(f) for f in summary["files"]], summary=summary)


def test_example_head_round_trip(head):
    s = head.summary
    assert s["n_files"] == len(head.deid) == len(head.out) == 177
    assert [p.name for p in head.out] == [f"{n:05d}.dcm" for n in range(1, 178)]
    assert s["mapping"] == {"exact": 177, "conservative": 0}
    assert s["pixels_removed"] == int(np.count_nonzero(nib.load(str(head.mask)).dataobj))
    assert 0 < s["pixels_changed"] <= s["pixels_removed"]
    assert s["transfer_syntax"] == {f"{ExplicitVRLittleEndian} -> {ExplicitVRLittleEndian}": 177}
    assert _round_trip(head.out, head.defaced, head.tmp / "back") == 0.0


def test_example_head_pixels_outside_mask_identical(head):
    bg = float(load_head(head.nifti)[1].min())
    n_inside = _check_pixels(head.deid, head.out, head.mask, bg)
    assert n_inside == head.summary["pixels_removed"]


def test_uids_keyed_stable_and_derived(head, tmp_path):
    again = write_defaced_series(head.deid, head.nifti, head.mask, tmp_path / "again", TEST_KEY)
    for a, b in zip(head.out, again["files"]):
        assert a.read_bytes() == Path(b).read_bytes()
    other = write_defaced_series(head.deid[:3], head.nifti, head.mask, tmp_path / "otherkey", b"another-key-0123456789abcdef")
    src = [pydicom.dcmread(f, stop_before_pixels=True) for f in head.deid]
    out = [pydicom.dcmread(f, stop_before_pixels=True) for f in head.out]
    o2 = pydicom.dcmread(other["files"][0], stop_before_pixels=True)
    series = {d.SeriesInstanceUID for d in out}
    assert len(series) == 1 and series.pop() == keys.remap_uid(TEST_KEY, src[0].SeriesInstanceUID + "/defaced")
    assert out[0].SeriesInstanceUID != src[0].SeriesInstanceUID != o2.SeriesInstanceUID != out[0].SeriesInstanceUID
    assert len({d.SOPInstanceUID for d in out} | {d.SOPInstanceUID for d in src}) == 2 * len(src)
    for s, d in zip(src, out):
        assert d.SOPInstanceUID == keys.remap_uid(TEST_KEY, s.SOPInstanceUID + "/defaced")
        assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
        assert d.StudyInstanceUID == s.StudyInstanceUID and d.FrameOfReferenceUID == s.FrameOfReferenceUID
        assert list(d.ImageType[:2]) == ["DERIVED", "SECONDARY"]
        assert "face" in d.DerivationDescription and "defaced" in d.DeidentificationMethod[-1]
        codes = [(c.CodeValue, c.CodingSchemeDesignator) for c in d.DeidentificationMethodCodeSequence]
        assert codes.count(("113102", "DCM")) == 1 and ("113100", "DCM") in codes
        assert d.RecognizableVisualFeatures == "NO" and d.PatientIdentityRemoved == "YES"


def test_release_audit_finds_nothing(head, tmp_path):
    needles: set = set()
    for f in head.raw:
        needles |= audit.read_file_needles(f, DEFAULT_OPTIONS)  # the options the series was de-identified with
    needles |= audit.path_needles([p.relative_to(EXAMPLE_DICOM).as_posix() for p in head.raw])
    matcher = audit.Matcher(sorted(needles, key=lambda n: (n.text, n.source)))
    assert any(n.text.upper().startswith("DOE") for n in needles)  # the planted name is looked for
    rel = tmp_path / "release" / "sourcedata" / "dicom" / "sub-head1" / "ses-1" / "s001"
    shutil.copytree(head.out[0].parent, rel)
    hits, n_files = audit.scan_release(tmp_path / "release", matcher)
    assert n_files == 177
    assert hits == []


def test_geometry_mismatch_fails_loudly(head, tmp_path):
    img = nib.load(str(head.nifti))
    data = np.asarray(img.dataobj.get_unscaled())
    out = tmp_path / "out"
    # a mask of another shape
    small = tmp_path / "small_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), img.affine), str(small))
    with pytest.raises(DefacedDicomError, match="mask shape"):
        write_defaced_series(head.deid, head.nifti, small, out, TEST_KEY)
    # a grid shifted by 40 voxels along k: the first slices fall outside it
    shifted = img.affine.copy()
    shifted[:3, 3] += shifted[:3, 2] * 40
    for name, arr, aff, msg in [
        ("shifted", data, shifted, "outside the NIfTI grid"),
        ("flipped", data[::-1].copy(), img.affine, "differ from the voxels"),  # left-right flipped voxels
    ]:
        n, m = tmp_path / f"{name}.nii.gz", tmp_path / f"{name}_mask.nii.gz"
        nib.save(nib.Nifti1Image(arr, aff), str(n))
        nib.save(nib.Nifti1Image(np.asarray(nib.load(str(head.mask)).dataobj), aff), str(m))
        with pytest.raises(DefacedDicomError, match=msg) as err:
            write_defaced_series(head.deid, n, m, out, TEST_KEY)
        assert ".dcm" in str(err.value)
    assert not out.exists() or not any(out.iterdir())  # nothing written, no temporary left


def _files_with_removal(head, n=24):
    """Indices of ``n`` example slices that hold removed pixels."""
    s = []
    for i, f in enumerate(head.out):
        if "(0 pixels)" not in pydicom.dcmread(f, stop_before_pixels=True).DerivationDescription:
            s.append(i)
    assert len(s) >= n
    return s[:: max(1, len(s) // n)][:n]


_LOSSLESS = {"RLE": pydicom.uid.RLELossless, "JPEG-LS": pydicom.uid.JPEGLSLossless,
             "J2K": pydicom.uid.JPEG2000Lossless}


@pytest.mark.parametrize("name", sorted(_LOSSLESS))
def test_lossless_transfer_syntax_is_kept(head, tmp_path, name):
    from pydicom.pixels import get_encoder

    ts = _LOSSLESS[name]
    if not get_encoder(ts).is_available:
        pytest.skip(f"no pydicom encoder for {ts.name} here (pyjpegls / pylibjpeg-openjpeg)")
    idx = _files_with_removal(head)
    src = []
    for i in idx:
        ds = pydicom.dcmread(head.deid[i])
        ds.compress(ts, generate_instance_uid=False)
        p = tmp_path / "in" / head.deid[i].name
        p.parent.mkdir(exist_ok=True)
        ds.save_as(p, enforce_file_format=True)
        src.append(p)
    s = write_defaced_series(src, head.nifti, head.mask, tmp_path / "out", TEST_KEY)
    assert s["transfer_syntax"] == {f"{ts} -> {ts}": len(idx)}
    assert s["pixels_changed"] > 0
    for i, f in zip(idx, s["files"]):
        d = pydicom.dcmread(f)
        assert d.file_meta.TransferSyntaxUID == ts
        assert np.array_equal(d.pixel_array, pydicom.dcmread(head.out[i]).pixel_array)


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"])
def test_pydicom_transfer_syntaxes(tmp_path, name):
    """pydicom's small MR slice in six transfer syntaxes: the syntax is kept (lossless
    re-encoding), outside the mask every pixel is unchanged."""
    from pydicom.pixels import get_decoder, get_encoder

    src = tmp_path / name
    shutil.copy(pydicom_testdir(name), src)
    ts = pydicom.dcmread(src, stop_before_pixels=True).file_meta.TransferSyntaxUID
    if ts.is_encapsulated and not (get_decoder(ts).is_available and get_encoder(ts).is_available):
        pytest.skip(f"no pydicom decoder/encoder for {ts.name} here (pyjpegls / pylibjpeg-openjpeg)")
    nifti = _convert([src], tmp_path / "conv")
    img, data, _ = load_head(nifti)
    mask = np.zeros(img.shape, bool)
    mask[:30, :20] = True
    write_mask(img, mask, tmp_path / "mask.nii.gz")
    s = write_defaced_series([src], nifti, tmp_path / "mask.nii.gz", tmp_path / "out", TEST_KEY)
    assert s["transfer_syntax"] == {f"{ts} -> {ts}": 1} and s["pixels_removed"] == 600
    assert pydicom.dcmread(s["files"][0]).file_meta.TransferSyntaxUID == ts
    assert _check_pixels([src], s["files"], tmp_path / "mask.nii.gz", float(data.min())) == 600


def test_lossy_input_written_uncompressed_ct_background(tmp_path):
    """pydicom's lossy JPEG 2000 CT slice: no lossless re-encoding -> Explicit VR Little Endian;
    CT background -1000 HU in stored units."""
    from pydicom.pixels import get_decoder

    if not get_decoder(pydicom.uid.JPEG2000).is_available:
        pytest.skip("no JPEG 2000 decoder for pydicom (pylibjpeg-openjpeg)")
    src = tmp_path / "ct.dcm"
    shutil.copy(pydicom_testdir("693_J2KI.dcm"), src)
    nifti = _convert([src], tmp_path / "conv")
    img = nib.load(str(nifti))
    mask = np.zeros(img.shape, bool)
    mask[:100, :120] = True
    write_mask(img, mask, tmp_path / "mask.nii.gz")
    s = write_defaced_series([src], nifti, tmp_path / "mask.nii.gz", tmp_path / "out", TEST_KEY)
    assert s["transfer_syntax"] == {f"{pydicom.uid.JPEG2000} -> {ExplicitVRLittleEndian}": 1}
    assert s["background"] == -1000.0 and s["pixels_removed"] == 12000
    d = pydicom.dcmread(s["files"][0])
    assert d.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian and "PixelData" in d
    _check_pixels([src], s["files"], tmp_path / "mask.nii.gz", -1000.0)


def test_example_ct_round_trip(tmp_path):
    """CT (RescaleIntercept -1024): removed pixels -> -1000 HU, the round trip equals the
    defaced NIfTI written by neurodeid.deface.io with the CT background."""
    deid = _deid(sorted(CT_DIR.glob("*.dcm")), tmp_path / "deid", "ct1")
    nifti = _convert(deid, tmp_path / "conv")
    img = nib.load(str(nifti))
    mask = np.zeros(img.shape, bool)
    mask[:, : img.shape[1] // 3, :2] = True
    write_mask(img, mask, tmp_path / "mask.nii.gz")
    write_defaced(nifti, img, mask, -1000.0, tmp_path / "defaced.nii.gz")
    s = write_defaced_series(deid, nifti, tmp_path / "mask.nii.gz", tmp_path / "out", TEST_KEY)
    assert s["background"] == -1000.0 and s["pixels_removed"] == int(mask.sum())
    out = [Path(f) for f in s["files"]]
    _check_pixels(deid, out, tmp_path / "mask.nii.gz", -1000.0)
    _round_trip(out, tmp_path / "defaced.nii.gz", tmp_path / "back")


def _enhanced_from(files, order) -> Dataset:
    """An Enhanced MR Image (single file, per-frame functional groups) made of ``files``,
    frames in the given ``order``."""
    dss = [pydicom.dcmread(files[i]) for i in order]
    ds = copy.deepcopy(dss[0])
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceLocation",
               "InstanceNumber", "SliceThickness", "SpacingBetweenSlices"):
        if kw in ds:
            del ds[kw]
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.NumberOfFrames = len(dss)
    ds.InstanceNumber = 1
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = dss[0].PixelSpacing
    pm.SliceThickness = dss[0].get("SliceThickness", 1)
    po = Dataset()
    po.ImageOrientationPatient = dss[0].ImageOrientationPatient
    ft = Dataset()
    ft.FrameType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.PlaneOrientationSequence = Sequence([po])
    shared.MRImageFrameTypeSequence = Sequence([ft])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for i, d in enumerate(dss):
        pp = Dataset()
        pp.ImagePositionPatient = d.ImagePositionPatient
        fc = Dataset()
        fc.InStackPositionNumber = i + 1
        item = Dataset()
        item.PlanePositionSequence = Sequence([pp])
        item.FrameContentSequence = Sequence([fc])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = b"".join(d.PixelData for d in dss)
    return ds


def test_enhanced_multiframe_per_frame_geometry(head, tmp_path):
    """Frames in shuffled order: each is defaced through its own PlanePositionSequence."""
    idx = _files_with_removal(head, 30)
    order = list(np.random.default_rng(0).permutation(idx))
    src = tmp_path / "enhanced.dcm"
    _enhanced_from(head.deid, order).save_as(src, enforce_file_format=True)
    s = write_defaced_series([src], head.nifti, head.mask, tmp_path / "out", TEST_KEY)
    assert s["n_frames"] == 30 and s["mapping"]["exact"] == 30 and s["pixels_changed"] > 0
    d = pydicom.dcmread(s["files"][0])
    frames = d.pixel_array
    for f, i in enumerate(order):
        assert np.array_equal(frames[f], pydicom.dcmread(head.out[i]).pixel_array), (f, i)
    assert d.ImageType[0] == "DERIVED"
    assert d.SharedFunctionalGroupsSequence[0].MRImageFrameTypeSequence[0].FrameType[0] == "DERIVED"

    # all 177 slices as one enhanced file in position order: dcm2niix reads it back as the defaced volume
    _enhanced_from(head.deid, range(len(head.deid))).save_as(tmp_path / "all.dcm", enforce_file_format=True)
    s = write_defaced_series([tmp_path / "all.dcm"], head.nifti, head.mask, tmp_path / "out_all", TEST_KEY)
    assert s["n_frames"] == 177 and s["pixels_removed"] == head.summary["pixels_removed"]
    _round_trip([Path(f) for f in s["files"]], head.defaced, tmp_path / "back")


def test_ge_3d_structural(shared_data, tmp_path):
    """GE sagittal 3D IR-SPGR (196 files). Its provider refaced it (mri_reface), so template
    defacing rejects it; a synthetic removal mask (anterior 25 %, inferior 40 % in RAS mm) is
    used instead."""
    src = sorted((shared_data / "dicom" / "dcm_qa_deident" / "In").glob("*.dcm"))
    if len(src) != 196:
        pytest.skip(f"dcm_qa_deident not complete here ({len(src)} files)")
    deid = _deid(src, tmp_path / "deid", "ge1")
    nifti = _convert(deid, tmp_path / "conv")
    img, data, aff = load_head(nifti)
    i, j, k = (np.arange(n, dtype=np.float32) for n in img.shape[:3])
    y = aff[1, 0] * i[:, None, None] + aff[1, 1] * j[None, :, None] + aff[1, 2] * k[None, None, :] + aff[1, 3]
    z = aff[2, 0] * i[:, None, None] + aff[2, 1] * j[None, :, None] + aff[2, 2] * k[None, None, :] + aff[2, 3]
    mask = (y > y.min() + 0.75 * np.ptp(y)) & (z < z.min() + 0.4 * np.ptp(z))  # anterior, inferior (RAS mm)
    assert 0 < mask.sum() < mask.size // 4
    write_mask(img, mask, tmp_path / "mask.nii.gz")
    write_defaced(nifti, img, mask, float(data.min()), tmp_path / "defaced.nii.gz")
    s = write_defaced_series(deid, nifti, tmp_path / "mask.nii.gz", tmp_path / "out", TEST_KEY)
    assert s["n_files"] == 196 and s["mapping"]["exact"] == 196 and s["pixels_removed"] == int(mask.sum())
    out = [Path(f) for f in s["files"]]
    _check_pixels(deid, out, tmp_path / "mask.nii.gz", float(data.min()))
    _round_trip(out, tmp_path / "defaced.nii.gz", tmp_path / "back")


def test_mosaic_is_refused(shared_data, tmp_path):
    f = shared_data / "dicom" / "dcm_qa_ts" / "In" / "1.dcm"
    if not f.is_file():
        pytest.skip("dcm_qa_ts not found")
    img = nib.Nifti1Image(np.zeros((64, 64, 35), np.int16), np.eye(4))
    nib.save(img, str(tmp_path / "i.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 35), np.uint8), np.eye(4)), str(tmp_path / "m.nii.gz"))
    with pytest.raises(DefacedDicomError, match="mosaic"):
        write_defaced_series([f], tmp_path / "i.nii.gz", tmp_path / "m.nii.gz", tmp_path / "out", TEST_KEY)


def test_conservative_mapping_on_unaligned_grid():
    """Pixel centres between voxel centres (a resampled grid): a pixel is removed when any
    neighbouring voxel is, so no face voxel is ever kept."""
    removal = np.zeros((4, 4, 4), bool)
    removal[2, 2, 2] = True
    coords = np.zeros((3, 3, 3))
    coords[..., 0] = np.arange(3)[:, None] + 0.5
    coords[..., 1] = np.arange(3)[None, :] + 0.5
    coords[..., 2] = 1.5
    m, mode, offset, _ = frame_removal_mask(coords, removal, tol_vox=0.1)
    assert mode == "conservative" and offset == 0.5
    assert m.tolist() == [[False, False, False], [False, True, True], [False, True, True]]
    m2, mode2, _, _ = frame_removal_mask(np.rint(coords + 0.01), removal, tol_vox=0.1)
    assert mode2 == "exact" and m2.sum() == 1
