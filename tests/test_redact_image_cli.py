"""`neurodeid redact-image`: a plain image listed in config is released only when OCR reads nothing left."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image, ImageDraw, ImageFont

from neurodeid.cli import main

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def _image_with_text(path):
    im = Image.new("RGB", (640, 400), (20, 20, 20))
    d = ImageDraw.Draw(im)
    d.text((20, 15), "CARTER, STEPHANIE  12/03/2019", fill=(255, 255, 255), font=ImageFont.load_default(size=28))
    d.ellipse((200, 150, 440, 350), fill=(120, 120, 120))
    im.save(path)


def _run(tmp_path, method: str, extra: dict | None = None):
    src, out = tmp_path / "in.png", tmp_path / "release" / "sourcedata" / "images" / "image00.png"
    _image_with_text(src)
    cfg = json.dumps({"method": method, **(extra or {})})
    rc = main(["redact-image", str(src), "--release-out", str(out), "--result", str(tmp_path / "r.json"),
               "--qc", str(tmp_path / "qc.png"), "--config-json", cfg])
    return rc, out, json.loads((tmp_path / "r.json").read_text())


def test_listed_image_is_released_clean(tmp_path):
    import pytesseract

    assert "CARTER" in pytesseract.image_to_string(Image.open(_image_with_text(tmp_path / "x.png") or tmp_path / "x.png"))
    rc, out, res = _run(tmp_path, "mask")
    assert rc == 0 and res["status"] == "PASS" and out.is_file()
    text = pytesseract.image_to_string(Image.open(out)).upper()
    assert "CARTER" not in text and "STEPHANIE" not in text and "2019" not in text
    assert Image.open(out).size == (640, 400)


def test_failed_image_stays_out(tmp_path):
    # a blur too weak to hide the text: the verification OCR still reads it
    rc, out, res = _run(tmp_path, "blur", {"sigma": 0.3, "max_passes": 1})
    assert rc == 0 and res["status"] == "FAIL" and not out.exists()
    assert res["reasons"] and not any("CARTER" in r for r in res["reasons"])
