"""The typed stage result (neurodeid.results): one writer, one reader, the files' layout kept
byte for byte; and the one decision of an image's review verdict (review.image_verdict)."""

from __future__ import annotations

import json

import pytest

from neurodeid.results import (RECORD_KEYS, Check, Release, StageResult, StageResultError, StageStatus, by_image,
                               parse_status, passed, qc_pictures, read_stage_result, write_stage_result)
from neurodeid.review import image_verdict


def test_enums_are_their_values():
    assert str(StageStatus.OK) == f"{StageStatus.OK}" == "ok" and StageStatus.FAILED == "failed"
    assert f"{Check.WARN}" == "WARN" and "\t".join([Release.WITHHELD]) == "WITHHELD"
    assert json.dumps({"status": Check.PASS}) == '{"status": "PASS"}'
    assert {"ok": 1}[StageStatus.OK] == 1  # a TSV's strings and the enums are the same keys


def test_parse_status_knows_both_vocabularies():
    assert parse_status("face") is StageStatus.FACE and parse_status("FAIL") is Check.FAIL
    with pytest.raises(StageResultError, match="'OK'"):
        parse_status("OK")


# The files as the stages wrote them before the typed result (key order, indentation).
CONVERT_BIDS = """{
 "status": "failed",
 "reason": "import failed: x",
 "source": "bids",
 "images": []
}
"""
REDACT_SCREENED = """{
 "status": "FAIL",
 "mode": "screen",
 "reason": "text found",
 "files": [
  {
   "file": "00001.dcm",
   "status": "FAIL",
   "reasons": [
    "a name"
   ]
  }
 ],
 "screened": [
  "00001.dcm frame 0: the detector finds text"
 ]
}
"""
DEFACE = """{
 "method": "template",
 "images": [
  {
   "image": "a.nii.gz",
   "status": "ok",
   "reason": "",
   "summary": {
    "removed_ml": 210.5
   }
  },
  {
   "image": "b.nii.gz",
   "status": "failed",
   "reason": "no head",
   "summary": {}
  }
 ]
}
"""
DEFACE_DICOM_OK = """{
 "status": "ok",
 "reason": "",
 "summary": {
  "files": 3
 }
}
"""


@pytest.mark.parametrize("stage, text", [("convert", CONVERT_BIDS), ("redact", REDACT_SCREENED),
                                         ("deface", DEFACE), ("deface_dicom", DEFACE_DICOM_OK)])
def test_read_then_write_is_byte_identical(tmp_path, stage, text):
    src, out = tmp_path / "in.json", tmp_path / "out.json"
    src.write_text(text)
    result = read_stage_result(src, stage)
    write_stage_result(out, result)
    assert out.read_text() == text


def test_round_trip_types_the_statuses(tmp_path):
    r = StageResult("deface", images=[{"image": "a.nii.gz", "status": StageStatus.OK, "reason": "", "summary": {}},
                                      {"image": "b.nii.gz", "status": StageStatus.FAILED, "reason": "no head",
                                       "summary": {}}], measures={"method": "template"})
    write_stage_result(tmp_path / "r.json", r)
    back = read_stage_result(tmp_path / "r.json", "deface")
    assert back == r and back.status is None and not back.ok
    assert [im["status"] for im in back.images] == [StageStatus.OK, StageStatus.FAILED]
    assert type(back.images[0]["status"]) is StageStatus
    assert list(by_image(back)) == ["a.nii.gz", "b.nii.gz"] and by_image(None) == {}
    text = read_stage_result(tmp_path / "r.json", "deface")
    assert list(text.to_dict()) == list(RECORD_KEYS["deface"])


def test_a_text_stage_result_is_typed_pass_or_fail(tmp_path):
    (tmp_path / "r.json").write_text(REDACT_SCREENED)
    r = read_stage_result(tmp_path / "r.json", "redact")
    assert r.status is Check.FAIL and not r.ok and r.measures == {
        "mode": "screen", "screened": ["00001.dcm frame 0: the detector finds text"]}
    assert r.files[0]["status"] is Check.FAIL


def test_optional_keys_are_left_out_and_unknown_ones_refused():
    assert StageResult("convert", StageStatus.OK).to_dict() == {"status": "ok", "reason": "", "images": []}
    assert list(StageResult("redact", Check.PASS, measures={"mode": "read"}).to_dict()) == [
        "status", "mode", "reason", "files"]
    with pytest.raises(StageResultError, match="unknown key"):
        StageResult("convert", StageStatus.OK, measures={"mode": "read"})
    with pytest.raises(StageResultError, match="unknown stage"):
        StageResult("morphometry", Check.PASS)


def test_the_reader_names_the_file_and_raises_the_callers_error(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text('{"status": "maybe", "reason": "", "images": []}')
    with pytest.raises(KeyError, match="r.json.*'maybe'"):
        read_stage_result(bad, "convert", KeyError)
    bad.write_text("{not json")
    with pytest.raises(StageResultError, match="cannot read as JSON"):
        read_stage_result(bad, "convert")


def test_passed_is_ok_or_pass():
    assert passed(StageStatus.OK) and passed("PASS") and passed(Check.PASS)
    assert not any(passed(s) for s in (StageStatus.FAILED, StageStatus.FACE, Check.WARN, Check.FAIL, None, ""))


# -- the decision: plan flag + stage status + check verdict -> review verdict ------------------

OK = {"image": "a.nii.gz", "status": StageStatus.OK, "reason": ""}


@pytest.mark.parametrize("args, kwargs, verdict, reason", [
    ((False, None, None), {}, Release.RELEASED, ""),
    ((True, None, None), {}, Release.WITHHELD, "defacing pending"),
    ((True, {"image": "a.nii.gz", "status": StageStatus.FAILED, "reason": "a.nii.gz: no head"}, None), {},
     Check.FAIL, "defacing failed: no head"),
    ((True, OK, None), {}, Release.WITHHELD, "morphometry pending"),
    ((True, OK, {"verdict": "PASS", "reasons": ""}), {}, Check.PASS, ""),
    ((True, OK, {"verdict": "warn", "reasons": "WARN brain_dice"}), {}, Check.WARN, "morphometry WARN: WARN brain_dice"),
    ((True, OK, {"verdict": "FAIL", "reasons": "x"}), {}, Check.FAIL, "morphometry FAIL: x"),
    ((True, OK, {"verdict": "", "reasons": ""}), {}, Check.FAIL, "the morphometry table has no verdict"),
    # not defaced, checked for a face: the face check decides
    ((False, None, None), {"face_checked": True, "face": None}, Release.WITHHELD, "face check pending"),
    ((False, None, None), {"face_checked": True, "face": {"status": StageStatus.OK, "reason": ""}},
     Release.RELEASED, ""),
    ((False, None, None), {"face_checked": True, "face": {"status": StageStatus.FACE, "reason": "a face"}},
     Release.WITHHELD, "a face"),
    # defaced: a face check does not apply
    ((True, OK, {"verdict": "PASS"}), {"face_checked": True, "face": None}, Check.PASS, ""),
])
def test_image_verdict(args, kwargs, verdict, reason):
    got, why = image_verdict(*args, **kwargs)
    assert got is verdict
    assert (why == "") if not reason else reason in why


def test_qc_pictures_are_named_by_the_record_and_must_exist(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "deface_render.png").write_bytes(b"png")
    (tmp_path / "face_screen.png").write_bytes(b"png")
    entry = {"image": "a.nii.gz", "qc": ["a/deface_triplanar.png", "a/deface_render.png"]}
    assert qc_pictures(tmp_path, entry) == [tmp_path / "a" / "deface_render.png"]
    assert qc_pictures(tmp_path, {"image": "b.nii.gz"}) == [] and qc_pictures(tmp_path, None) == []
    series = StageResult("redact", Check.FAIL, "a face", qc=["face_screen.png"], measures={"mode": "read"})
    assert qc_pictures(tmp_path, series) == [tmp_path / "face_screen.png"]
    # written after the files, read back the same; left out when empty
    assert list(series.to_dict())[-1] == "qc" and "qc" not in StageResult("redact", Check.PASS).to_dict()
    write_stage_result(tmp_path / "r.json", series)
    assert read_stage_result(tmp_path / "r.json", "redact") == series
