"""QC pictures: PNG writer, labels, triplanar and surface render on synthetic heads."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from neurodeid.deface import qc


def _read_png(path):
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, chunks = 8, b"", []
    while pos < len(b):
        n = struct.unpack(">I", b[pos:pos + 4])[0]
        tag = b[pos + 4:pos + 8]
        chunks.append(tag)
        if tag == b"IHDR":
            w, h = struct.unpack(">II", b[pos + 8:pos + 16])
        if tag == b"IDAT":
            idat += b[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3), chunks


def _head():
    """A ball head (radius 40 mm) with a nose bump on +y, 2 mm voxels, RAS affine."""
    g = np.mgrid[-50:50, -50:50, -50:50].astype(float)
    head = (g**2).sum(0) < 20**2
    nose = ((g[0]) ** 2 + (g[1] - 21) ** 2 + (g[2]) ** 2) < 5**2
    vol = np.where(head | nose, 100.0, 0.0).astype(np.float32)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = -100
    return vol, nose & ~head, aff


def test_png_roundtrip_and_no_metadata(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    qc.write_png(tmp_path / "a.png", rgb)
    back, chunks = _read_png(tmp_path / "a.png")
    assert np.array_equal(back, rgb)
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]  # no text/time chunks


def test_only_known_labels():
    img = np.zeros((20, 200, 3))
    qc._text(img, "REMOVED", 2, 2)
    assert img.any()
    try:
        qc._text(img, "ID 42", 2, 2)
    except KeyError:
        pass
    else:
        raise AssertionError("digits must not be drawable: pictures carry no identifiers")


def test_render_shows_the_nose_is_gone(tmp_path):
    vol, nose, aff = _head()
    after = vol.copy()
    after[nose] = 0
    render = qc.surface_render(vol, after, aff, threshold=50, spacing=2.0)
    h = render.shape[0] // 2
    before_half, after_half = render[:h], render[h:]
    assert render.dtype == np.uint8 and render.max() > 200
    # the side view differs where the nose was; the rest is alike
    assert np.abs(before_half.astype(int)[:, 100:] - after_half.astype(int)[: h, 100:]).sum() > 0
    paths = qc.deface_qc(vol, after, nose, aff, 50, tmp_path)
    for p in paths:
        pic, _ = _read_png(p)
        assert pic.shape[0] > 50 and pic.shape[1] > 100
    tri, _ = _read_png(paths[0])
    red = (tri[..., 0] > 150) & (tri[..., 1] < 90)
    assert red.sum() > 10  # removed region overlaid in red (plus the REMOVED label)
