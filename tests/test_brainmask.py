"""The independent brain mask (BET's algorithm in numpy) and the brain-safety judgement.

Real heads from the shared data (colin27_ch2, vrd_seg3D_MR; chris_t1 is read in place and
never copied). The default run extracts two heads and defaces one; every head with every
method runs with NEURODEID_FULL_DEFACE=1.

Reference facts checked here come from the images, not from the library: the facial
features boxes of tests/test_deface.py (drawn by hand on colin27), and the head surface
(plain intensity threshold) for "the mask stays inside the skull".
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from neurodeid.deface import deface_image
from neurodeid.deface.brainmask import brain_safety, extract_brain, icosphere
from neurodeid.morphometry import MorphometryThresholds, verdict

SHARED = Path(os.environ.get("NEURODEID_SHARED_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))
HEADS = SHARED / "heads"
FULL = bool(os.environ.get("NEURODEID_FULL_DEFACE"))

# colin27 facial features (eyes, nose, lips/chin), voxel boxes drawn by hand (as in
# tests/test_deface.py): the brain mask must not reach any of them
COLIN_FACE_BOXES = [(42, 73, 150, 217, 26, 52), (108, 139, 150, 217, 26, 52),
                    (75, 106, 150, 217, 21, 62), (65, 116, 150, 217, 0, 26)]


def _load(name):
    path = HEADS / f"{name}.nii.gz"
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set NEURODEID_SHARED_DATA)")
    img = nib.load(str(path))
    return img, np.asarray(img.dataobj, np.float32)


_MASKS: dict = {}


def _brain(name):
    if name not in _MASKS:
        img, d = _load(name)
        _MASKS[name] = (img, d, extract_brain(d, img.header.get_zooms()[:3]))
    return _MASKS[name]


# --------------------------------------------------------------------------- pure parts
def test_icosphere_is_closed_and_outward():
    v, f = icosphere(4)
    assert v.shape == (2562, 3) and f.shape == (5120, 3)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-12)
    # every edge shared by exactly two faces (closed), normals point away from the centre
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert set(counts) == {2}
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert np.all(np.einsum("ij,ij->i", n, v[f].mean(1)) > 0)


def _ball(shape, centre, r_vox):
    g = np.indices(shape).astype(float)
    return sum((g[a] - centre[a]) ** 2 for a in range(3)) <= r_vox ** 2


def test_brain_safety_distances_are_in_mm():
    mask = _ball((40, 40, 40), (20, 20, 20), 8)  # brain: radius 8 voxels
    orig = np.full(mask.shape, 100, np.int16)
    spacing = (2.0, 2.0, 2.0)
    # change one voxel 6 voxels (12 mm) beyond the mask surface along i
    d = orig.copy()
    d[20 + 8 + 6, 20, 20] = 0
    ok = brain_safety(orig, d, mask, spacing, margin_mm=10.0)
    assert ok.verdict == "PASS" and ok.brain_voxels_changed == 0 and ok.changed_voxels == 1
    assert ok.min_distance_mm == pytest.approx(12.0)
    near = brain_safety(orig, d, mask, spacing, margin_mm=12.5)
    assert near.verdict == "FAIL" and "brain_min_distance_mm = 12.00 mm" in near.reasons[0]
    d[20, 20, 20] = 0  # and one inside
    bad = brain_safety(orig, d, mask, spacing, margin_mm=6.0)
    assert bad.verdict == "FAIL" and bad.brain_voxels_changed == 1 and bad.min_distance_mm == 0


def test_brain_safety_nothing_changed_4d_and_grids():
    mask = _ball((20, 20, 20), (10, 10, 10), 5)
    orig = np.zeros((20, 20, 20, 3), np.float32)
    same = brain_safety(orig, orig.copy(), mask, (1, 1, 1), 6.0)
    assert same.verdict == "PASS" and math.isinf(same.min_distance_mm)
    d = orig.copy()
    d[10, 10, 10, 2] = 1  # a change in the last volume counts
    assert brain_safety(orig, d, mask, (1, 1, 1), 6.0).brain_voxels_changed == 1
    with pytest.raises(ValueError, match="grids differ"):
        brain_safety(orig, orig[:-1], mask, (1, 1, 1), 6.0)
    empty = brain_safety(orig[..., 0], d[..., 0], np.zeros_like(mask), (1, 1, 1), 6.0)
    assert empty.verdict == "FAIL" and "empty" in empty.reasons[0]


def test_verdict_fails_on_the_independent_check():
    base = {"brain_voxels_changed": 0, "brain_dice": 1.0, "brain_delta_pct": 0.0,
            **{f"{t}_{k}": v for t in ("csf", "gm", "wm")
               for k, v in (("delta_pct", 0.0), ("dice", 1.0))}}
    ok = dict(base, independent_brain_voxels_changed=0, independent_min_distance_mm=8.0,
              independent_margin_mm=6.0, independent_brain_ml=1400.0,
              independent_extractor="bet-numpy")
    assert verdict(ok)["verdict"] == "PASS"
    assert verdict(base)["verdict"] == "PASS"  # not measured: not judged
    r = verdict(dict(ok, independent_brain_voxels_changed=797, independent_min_distance_mm=0.0))
    assert r["verdict"] == "FAIL"
    assert any("independent_brain_voxels_changed = 797 voxels" in x for x in r["reasons"])
    assert any("independent_min_distance_mm = 0.00 mm (< margin 6 mm" in x for x in r["reasons"])
    r = verdict(dict(ok, independent_min_distance_mm=4.5))
    assert r["verdict"] == "FAIL" and "4.50 mm" in r["reasons"][0]
    r = verdict(dict(ok, independent_brain_ml=120.0))  # a collapsed surface judges nothing
    assert r["verdict"] == "FAIL" and "implausible" in r["reasons"][0]
    t = MorphometryThresholds(fail_independent_brain_ml_min=None)
    assert verdict(dict(ok, independent_brain_ml=120.0), t)["verdict"] == "PASS"


# --------------------------------------------------------------------------- real heads
@pytest.mark.parametrize("name", ["colin27_ch2", "vrd_seg3D_MR"])
def test_extract_brain_on_real_heads(name):
    img, d, bm = _brain(name)
    m = bm.mask
    assert m.shape == d.shape and m.dtype == bool
    # an adult brain (colin27's mask runs down the brainstem to the edge of the field of view)
    assert 1100 <= bm.volume_ml <= 2200, bm.volume_ml
    assert bm.extractor == "bet-numpy" and bm.seconds > 0
    # inside the head and clear of its surface: above the mask's top there is scalp and skull
    head = d > 0.3 * np.percentile(d, 98)
    top_head = np.max(np.nonzero(head.any(axis=(0, 1)))[0])
    top_brain = np.max(np.nonzero(m.any(axis=(0, 1)))[0])
    dz = float(np.linalg.norm(img.affine[:3, 2]))
    assert (top_head - top_brain) * dz >= 4.0
    # the mask is one piece, and the deep centre of the head is in it
    from scipy import ndimage as ndi

    assert ndi.label(m)[1] == 1
    c = np.round(np.argwhere(m).mean(0)).astype(int)
    assert m[tuple(c)]
    if name == "colin27_ch2":
        # facial features: the boxes within 12 mm of the most anterior tissue of each
        # (i, k) column (the boxes alone reach back behind the orbits)
        front = np.where(head.any(1), d.shape[1] - 1 - np.argmax(head[:, ::-1, :], 1), -1)
        j = np.arange(d.shape[1])[None, :, None]
        layer = j >= front[:, None, :] - 12
        box = np.zeros(d.shape, bool)
        for i0, i1, j0, j1, k0, k1 in COLIN_FACE_BOXES:
            box[i0:i1, j0:j1, k0:k1] = True
        assert (box & layer & head).sum() > 20_000
        assert not (m & box & layer).any(), "brain mask reaches a facial feature"


def test_safety_catches_a_cut_into_the_frontal_pole():
    """A 'defacing' that shaves 3 mm off the front of the brain fails; the same cut moved
    in front of the mask by less than the margin fails on distance."""
    img, d, bm = _brain("colin27_ch2")
    m = bm.mask
    front = np.max(np.nonzero(m.any(axis=(0, 2)))[0])  # +j is anterior (RAS grid)
    cut = d.copy()
    cut[:, front - 2:, :] = 0
    r = brain_safety(d, cut, m, img.header.get_zooms()[:3], 6.0)
    assert r.verdict == "FAIL" and r.brain_voxels_changed > 0
    near = d.copy()
    near[:, front + 3:, :] = 0  # 3 mm in front of the mask: inside the 6 mm margin
    r = brain_safety(d, near, m, img.header.get_zooms()[:3], 6.0)
    assert r.brain_voxels_changed == 0 and r.verdict == "FAIL"
    assert 2.5 <= r.min_distance_mm <= 6.0


def test_template_defacing_keeps_the_margin_from_the_independent_mask():
    img, d, bm = _brain("colin27_ch2")
    res = deface_image(d, img.affine, "template", {"threads": 2}, name="colin27",
                       independent_brain=bm.mask)
    after = d.copy()
    after[res.removal] = res.background
    r = brain_safety(d, after, bm.mask, img.header.get_zooms()[:3], 6.0)
    assert r.verdict == "PASS", r.reasons
    assert r.changed_voxels > 0 and r.min_distance_mm >= 6.0
    assert not (res.removal & bm.mask).any()
    assert res.protected[bm.mask].all()


@pytest.mark.skipif(not FULL, reason="orientation: set NEURODEID_FULL_DEFACE=1")
@pytest.mark.slow
@pytest.mark.parametrize("name", ["colin27_ch2", "vrd_seg3D_MR"])
def test_extract_brain_ignores_voxel_order(name):
    """Permuted and flipped voxel axes (and anisotropic voxels) give the same mask."""
    img, d, bm = _brain(name)
    z = np.asarray(img.header.get_zooms()[:3], float)
    p = (1, 2, 0)
    r = extract_brain(d.transpose(p)[:, ::-1], z[list(p)])
    back = r.mask[:, ::-1].transpose(np.argsort(p))
    dice = 2 * (back & bm.mask).sum() / (back.sum() + bm.mask.sum())
    assert dice >= 0.98 and abs(r.volume_ml - bm.volume_ml) <= 0.02 * bm.volume_ml


@pytest.mark.skipif(not FULL, reason="every head and method: set NEURODEID_FULL_DEFACE=1")
@pytest.mark.slow
@pytest.mark.parametrize("name", ["colin27_ch2", "vrd_seg3D_MR", "chris_t1"])
@pytest.mark.parametrize("method", ["template", "shell", "threshold-morphology",
                                    "connected-threshold"])
def test_every_method_keeps_the_margin(name, method):
    img, d, bm = _brain(name)
    assert 1100 <= bm.volume_ml <= 2200
    res = deface_image(d, img.affine, method, {"threads": 2}, name=name,
                       independent_brain=bm.mask)
    after = d.copy()
    after[res.removal] = res.background
    r = brain_safety(d, after, bm.mask, img.header.get_zooms()[:3], 6.0)
    assert r.verdict == "PASS", r.reasons
    assert r.min_distance_mm >= 6.0 and res.summary["removed_ml"] >= 5


def test_morphometry_series_withholds_on_the_independent_check(tmp_path):
    """The per-image table carries the independent columns, and a change within the margin
    of the independent brain mask FAILs the image (which keeps it out of the release)."""
    import csv
    import json
    import subprocess
    import sys

    img, d, bm = _brain("colin27_ch2")
    front = np.max(np.nonzero(bm.mask.any(axis=(0, 2)))[0])
    conv, defd = tmp_path / "convert", tmp_path / "deface"
    conv.mkdir()
    defd.mkdir()
    name = "sub-x_T1w.nii.gz"
    nib.save(nib.Nifti1Image(d.astype(np.uint8), img.affine), conv / name)
    cut = d.copy()
    cut[:, front + 3:, :] = 0  # 3 mm in front of the brain: inside the 5 mm margin
    nib.save(nib.Nifti1Image(cut.astype(np.uint8), img.affine), defd / name)
    nib.save(nib.Nifti1Image((cut != d).astype(np.uint8), img.affine),
             defd / "sub-x_T1w_removal.nii.gz")
    result = tmp_path / "deface.json"
    result.write_text(json.dumps({"method": "template", "images": [
        {"image": name, "status": "ok", "reason": "",
         "summary": {"params": {"brain_margin_mm": 5.0}}}]}))
    out = tmp_path / "series.tsv"
    subprocess.run([sys.executable, "-m", "neurodeid.cli", "morphometry-series", str(conv),
                    str(defd), "--deface-result", str(result), "--label", "sub-x/anat",
                    "--out-dir", str(tmp_path / "morph"), "--out", str(out)], check=True)
    row = next(csv.DictReader(out.open(), delimiter="\t"))
    assert row["verdict"] == "FAIL"
    assert row["independent_brain_voxels_changed"] == "0"
    assert row["independent_margin_mm"] == "5.0"
    assert 2.5 <= float(row["independent_min_distance_mm"]) < 5.0
    assert row["independent_extractor"] == "bet-numpy"
    assert "FAIL independent_min_distance_mm" in row["reasons"]


def test_deface_file_fails_loudly_when_the_independent_extraction_cannot_run(tmp_path):
    from neurodeid.deface import DefaceError, deface_file

    empty = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((30, 30, 30), np.float32), np.eye(4)), empty)
    with pytest.raises(DefaceError, match="independent brain extraction failed"):
        deface_file(empty, tmp_path / "out.nii.gz")
    assert not (tmp_path / "out.nii.gz").exists()
