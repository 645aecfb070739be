"""Pieces of neurodeid.redact that need no OCR: selection, rules, methods, verification, geometry."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from neurodeid.redact import (RedactionConfig, RedactionConfigError, RegionRule, Verifier, Word, needs_redaction,
                              tesseract_available)
from neurodeid.redact.config import load_data_json, load_rules
from neurodeid.redact.dicom_pixels import read_frames, ultrasound_regions, update_geometry, write_frames
from neurodeid.redact.methods import apply_blur, apply_mask, boxes_mask, crop_window, fill_value, pad_box
from neurodeid.redact.ocr import text_boxes


# ---------------------------------------------------------------- selection
def _ds(**kw) -> Dataset:
    ds = Dataset()
    ds.PixelData = b"\0\0"
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize("kw, expect, words", [
    (dict(Modality="US"), True, "modality US"),
    (dict(Modality="MR", BurnedInAnnotation="YES"), True, "BurnedInAnnotation"),
    (dict(Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.7"), True, "SOP class"),
    (dict(Modality="CT", ConversionType="WSD"), True, "ConversionType"),
    (dict(Modality="CT", ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]), True, "LOCALIZER"),
    (dict(Modality="MR", ImageType=["DERIVED", "SECONDARY", "OTHER"]), False, "no header"),  # MR reformats
    (dict(Modality="MR", ImageType=["ORIGINAL", "PRIMARY", "M", "ND"], BurnedInAnnotation="NO"), False, "no header"),
])
def test_needs_redaction(kw, expect, words):
    ok, reason = needs_redaction(_ds(**kw))
    assert ok is expect and words in reason


def test_needs_redaction_modality_list_and_no_pixels():
    assert needs_redaction(_ds(Modality="US"), modalities=("CR",))[0] is False
    ds = Dataset()
    ds.Modality = "US"
    assert needs_redaction(ds) == (False, "no pixel data")


def test_needs_redaction_real_files():
    assert needs_redaction(pydicom.dcmread(get_testdata_file("MR_small.dcm")))[0] is False   # DERIVED\SECONDARY MR
    assert needs_redaction(pydicom.dcmread(get_testdata_file("CT_small.dcm")))[0] is False
    assert needs_redaction(pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm")))[0] is True


def test_data_tables_carry_reasons():
    sel = load_data_json("redact_selection.json")
    assert all(isinstance(v, str) and len(v) > 10 for v in sel["modalities"].values())
    ver = load_data_json("redact_verify.json")
    assert all(p["reason"] for p in ver["date_patterns"])
    assert load_rules(None) == []


# ---------------------------------------------------------------- rules and config
def test_region_rule_matching_and_boxes():
    r = RegionRule.from_mapping({"name": "x", "match": {"Manufacturer": "GE.*", "Rows": 600},
                                 "rectangles": [[0, 0, None, 40], [700, 10, 900, 20]], "method": "crop"})
    assert r.matches({"Manufacturer": "GE Healthcare", "Rows": 600})
    assert not r.matches({"Manufacturer": "Siemens", "Rows": 600})
    assert not r.matches({"Manufacturer": "GE", "Rows": 480})
    assert not r.matches({"Rows": 600})            # Manufacturer missing never matches
    assert r.boxes(600, 800) == [(0, 0, 800, 40), (700, 10, 800, 20)]


@pytest.mark.parametrize("bad", [
    {"match": {}},                                     # no name
    {"name": "a", "match": {"Colour": "x"}},           # unknown key
    {"name": "a", "match": {"Rows": "600"}},           # Rows not int
    {"name": "a", "rectangles": [[0, 0, 10]]},         # 3 numbers
    {"name": "a", "method": "smudge"},
])
def test_region_rule_rejects_bad_entries(bad):
    with pytest.raises(RedactionConfigError):
        RegionRule.from_mapping(bad)


def test_config_from_mapping():
    cfg = RedactionConfig.from_mapping({"method": "blur", "sigma": 5, "rules": [{"name": "r", "match": {"Rows": 10}}]})
    assert cfg.method == "blur" and cfg.rules[0].name == "r"
    assert cfg.rule_for({"Rows": 10}).name == "r" and cfg.rule_for({"Rows": 11}) is None
    assert "rules" in cfg.as_params()
    with pytest.raises(RedactionConfigError, match="unknown redaction setting"):
        RedactionConfig.from_mapping({"methd": "mask"})
    with pytest.raises(RedactionConfigError):
        RedactionConfig(method="erase")


# ---------------------------------------------------------------- methods
def test_mask_and_fill_values():
    frames = np.arange(2 * 4 * 5, dtype=np.int16).reshape(2, 4, 5, 1) - 10
    m = boxes_mask([(1, 1, 3, 2)], 4, 5)
    assert m.sum() == 2
    black = fill_value(frames, "black", "MONOCHROME2")
    assert black == frames.min()
    assert fill_value(frames, "black", "MONOCHROME1") == frames.max()
    out = apply_mask(frames, m, black)
    assert (out[:, 1, 1:3, 0] == frames.min()).all()
    assert (np.any(out != frames, axis=-1).sum()) == 4  # 2 pixels x 2 frames
    assert pad_box((1, 1, 3, 2), 2, 4, 5) == (0, 0, 5, 4)


def test_blur_only_inside_box_and_smooths():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(1, 40, 40, 3), dtype=np.uint8)
    m = boxes_mask([(10, 10, 30, 30)], 40, 40)
    out = apply_blur(frames, m, sigma=3)
    assert np.array_equal(out[:, ~m], frames[:, ~m])
    assert out[0, 12:28, 12:28].std() < frames[0, 12:28, 12:28].std() / 3
    assert out.dtype == np.uint8


def test_crop_window_cuts_bands_and_masks_inner_boxes():
    # top band, right label, one box in the middle
    boxes = [(0, 0, 100, 10), (90, 40, 100, 50), (40, 40, 60, 60)]
    (r0, r1, c0, c1), left = crop_window(boxes, 100, 100, min_keep=0.5, max_cut=0.2)
    assert (r0, r1, c0, c1) == (10, 100, 0, 90)
    assert left == [(40, 40, 60, 60)]


# ---------------------------------------------------------------- OCR box selection (words given)
def _w(text, conf, x0, y0, x1, y1, line=("gray", 1, 1, 1)):
    return Word(text, conf, x0, y0, x1, y1, 0, line)


def test_text_boxes_seed_grow_merge():
    words = [
        _w("CARTER,", 95, 100, 20, 200, 40),
        _w("STEPHAN1E", 5, 220, 20, 330, 40),   # weak, same line, close: joins
        _w("ae", 60, 500, 300, 510, 304),         # speckle: 2 letters, 4 px tall
        _w("matt", 51, 600, 400, 620, 406),       # speckle: low and thin
    ]
    assert text_boxes(words, 60, 1.5) == [(100, 20, 330, 40)]


# ---------------------------------------------------------------- verification
RULES = load_data_json("redact_verify.json")


def test_verifier_needles_dates_names_and_safe_reasons():
    v = Verifier(RULES, {"PatientName": "KAUFMAN^SCOTT"})
    assert v.needle_label("KAUPMAN") == "PatientName"      # one OCR error
    assert v.needle_label("ARTER") is None
    assert v.needle_label("SCOTT,") == "PatientName"
    assert Verifier(RULES, ["CARTER^STEPHANIE"]).needle_label("ARTER,") == "needle #0"  # truncated read
    for d in ("07.22.1943", "O1/11/08", "2012-03-09", "19430722", "12-JAN-2008", "Jan 12, 2008"):
        assert v.is_date(d), d
    for not_d in ("20.2mm", "0.7", "6.5EV13/5.5", "100%", "18fps"):
        assert not v.is_date(not_d), not_d
    assert v.is_time("10:16:28")
    assert v.is_name_like(_w("COUNTY", 92, 0, 0, 10, 10))
    assert not v.is_name_like(_w("COUNTY", 30, 0, 0, 10, 10))
    assert not v.is_name_like(_w("Text", 90, 0, 0, 10, 10))   # allowed word
    words = [_w("KAUPMAN", 80, 0, 0, 70, 11), _w("SCOTT", 30, 75, 0, 130, 11),
             _w("DOB:", 92, 0, 15, 30, 26, ("gray", 1, 1, 2)), _w("07.22.1943", 91, 40, 15, 110, 26, ("gray", 1, 1, 2))]
    found = v.findings([words])
    reasons = " ".join(f.reason() for f in found)
    assert "needle (PatientName) was read in frame 0" in reasons and "date-like" in reasons
    assert "KAUF" not in reasons.upper() and "1943" not in reasons and "SCOTT" not in reasons.upper()


def test_verifier_joins_split_dates_on_a_line():
    v = Verifier(RULES, None, time_like=False)
    words = [_w("10.", 90, 0, 0, 20, 10), _w("16.", 60, 22, 0, 40, 10), _w("28", 90, 42, 0, 55, 10)]
    assert [f.kind for f in v.findings([words])] == ["date"]


# ---------------------------------------------------------------- DICOM pixel module and geometry
def test_write_frames_ybr_jpeg_to_rgb_uncompressed():
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))   # YBR_FULL, JPEG baseline
    frames, pi = read_frames(ds)
    assert pi == "RGB" and frames.shape == (1, 100, 100, 3)
    write_frames(ds, frames, pi)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.PhotometricInterpretation == "RGB" and ds.PlanarConfiguration == 0 and ds.BurnedInAnnotation == "NO"
    assert np.array_equal(ds.pixel_array, frames[0])


def test_write_frames_palette_and_multiframe_number_of_frames(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    frames, pi = read_frames(ds)
    assert pi == "RGB" and frames.dtype == np.uint16
    removed = write_frames(ds, frames, pi)
    assert "RedPaletteColorLookupTableData" in removed and ds.BitsStored == 16
    out = tmp_path / "p.dcm"
    ds.save_as(out, enforce_file_format=True)
    assert np.array_equal(pydicom.dcmread(out).pixel_array, frames[0])
    # a multi-frame RLE file keeps NumberOfFrames
    mf = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm"))
    fr, pi = read_frames(mf)
    write_frames(mf, fr, pi)
    assert int(mf.NumberOfFrames) == 2 and mf.pixel_array.shape == (2, 100, 100, 3)


def test_update_geometry_plain_crop_and_ultrasound_regions():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = [float(v) for v in ds.ImageOrientationPatient]
    ps = [float(v) for v in ds.PixelSpacing]
    update_geometry(ds, (5, 64, 3, 64), 59, 61)
    expect = ipp + 3 * ps[1] * np.array(iop[:3]) + 5 * ps[0] * np.array(iop[3:])
    assert np.allclose([float(v) for v in ds.ImagePositionPatient], expect, atol=1e-4)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx(ps)

    us = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    (x0, y0, x1, y1), second = ultrasound_regions(us)[:2]
    dx = float(us.SequenceOfUltrasoundRegions[0].PhysicalDeltaX)
    update_geometry(us, (100, 350, 0, 800), 250, 800)          # 100 rows cut off the top
    reg = us.SequenceOfUltrasoundRegions
    assert len(reg) == 1                                      # the second region (y >= 522) lay outside
    assert (reg[0].RegionLocationMinX0, reg[0].RegionLocationMinY0) == (x0, 0)
    assert reg[0].RegionLocationMaxY1 == 249 and float(reg[0].PhysicalDeltaX) == pytest.approx(dx)


@pytest.mark.skipif(not tesseract_available()[0], reason=f"OCR test needs tesseract: {tesseract_available()[1]}")
def test_blank_outside_ultrasound_regions():
    from neurodeid.redact import redact_frames

    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    frames, pi = read_frames(ds)
    regions = ultrasound_regions(ds)
    out, red = redact_frames(frames, pi, RedactionConfig(us_blank_outside_regions=True, ocr=False), None,
                             header={"Modality": "US"}, us_regions=regions)
    keep = boxes_mask(red.us_keep, *frames.shape[1:3])
    assert red.result["us_blanked_outside_regions"]
    assert (out[0][~keep] == frames.min()).all()
    assert red.result["pixels_changed"] >= int((np.any(frames[0] != frames.min(), axis=-1) & ~keep).sum())


def test_needle_forms_accepted():
    from neurodeid.redact.verify import normalise_needles

    class N:  # the shape of neurodeid.audit.Needle
        def __init__(self, text, source):
            self.text, self.source = text, source

    assert normalise_needles({"PatientName": "A^B"}) == [("PatientName", "A^B")]
    assert normalise_needles(["A^B", ""]) == [("needle #0", "A^B")]
    assert normalise_needles([N("A^B", "PatientName")]) == [("PatientName", "A^B")]
    assert normalise_needles([["A^B", "PatientName"]]) == [("PatientName", "A^B")]   # audit JSON row
    try:
        from neurodeid.audit import Needle
    except ImportError:
        return
    v = Verifier(RULES, [Needle("KAUFMAN^SCOTT", "PatientName")])
    assert v.needle_label("KAUFMAN") == "PatientName"


@pytest.mark.skipif(not tesseract_available()[0], reason=f"OCR test needs tesseract: {tesseract_available()[1]}")
def test_big_endian_input_written_little_endian(tmp_path):
    from neurodeid.redact import redact_dicom_file

    src = get_testdata_file("ExplVR_BigEnd.dcm")     # 60 x 80 RGB ultrasound, Explicit VR Big Endian
    ref = pydicom.dcmread(src)
    res = redact_dicom_file(src, tmp_path / "le.dcm", RedactionConfig(), None)
    assert res["status"] == "PASS"
    out = pydicom.dcmread(tmp_path / "le.dcm")
    assert out.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert (out.Rows, out.Columns) == (ref.Rows, ref.Columns)
    same = np.all(out.pixel_array == ref.pixel_array, axis=-1)
    assert same.sum() == same.size - res["pixels_changed"]


def test_recogniser_reads_a_crop_the_same_alone_or_in_company_and_once():
    """A crop's read depends on its pixels only (each crop is its own batch: in a shared
    batch crops are padded to the widest and scores move), and a crop seen before (the
    overlay of every frame of a cine) is not read again."""
    pytest.importorskip("rapidocr_onnxruntime")
    from PIL import Image, ImageDraw, ImageFont

    from neurodeid.redact import detect

    def crop(text, width):
        img = Image.new("L", (width, 48), 0)
        ImageDraw.Draw(img).text((4, 8), text, fill=255, font=ImageFont.load_default(size=28))
        return np.repeat(np.asarray(img)[..., None], 3, axis=2)

    name, wide = crop("ZORVAK", 160), crop("TELMINA 12/03/1961 GLENMOOR", 520)
    detect._READS.clear()
    alone = detect.recognise([name])[0]
    detect._READS.clear()
    together = detect.recognise([wide, name])[1]
    assert alone == together and "ZORVAK" in alone[0]
    eng = detect._engine()
    calls = []
    real = eng.text_rec
    eng.text_rec = lambda crops, *a, **k: (calls.append(len(crops)), real(crops, *a, **k))[1]
    try:
        again = detect.recognise([name, wide, name.copy()])
    finally:
        eng.text_rec = real
    assert calls == [] and again[0] == again[2] == alone
