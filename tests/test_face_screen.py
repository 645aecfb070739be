"""The face screen of DICOM that is released without conversion (issue #18).

A secondary capture, a localizer or an unmatched series is judged by its pixels: stacks are
rendered like volumes, lone and colour images are shown to the detector as they are. The
heads come from ``../shared/data/heads`` (colin27; skipped without it); the DICOM is written
here with plain pydicom, independently of the library: a multi-frame secondary capture with
no plane geometry (slices as a viewer displays them), an 18-slice sagittal MR with its
geometry, a screenshot of a head render.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pytest.importorskip("dlib")
import pydicom
from scipy import ndimage as ndi

from conftest import image_dataset, run_workflow

from neurodeid.deface import screen
from neurodeid.deface.dicom import FrameGeometry
from neurodeid.results import Check

SHARED = Path(os.environ.get("NEURODEID_SHARED_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))
SC = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
MR = "1.2.840.10008.5.1.4.1.1.4"


def _colin() -> np.ndarray:
    p = SHARED / "heads" / "colin27_ch2.nii.gz"
    if not p.is_file():
        pytest.skip(f"{p} not found (set NEURODEID_SHARED_DATA)")
    img = nib.as_closest_canonical(nib.load(str(p)))  # 1 mm, voxel axes along R, A, S
    return np.asarray(img.dataobj, np.float32)


def _axial_display(vol: np.ndarray) -> np.ndarray:
    """RAS voxel grid -> axial images as displayed (rows anterior to posterior, columns the
    patient's right to left), inferior first: shape (slices, rows, cols)."""
    return np.stack([vol[::-1, ::-1, k].T for k in range(vol.shape[2])])


# ------------------------------------------------------------------ stacking, no detector
def _slice(z: float, value: float = 1.0, shape=(8, 8), **kw) -> screen._Slice:
    g = FrameGeometry("f", 0, np.array([0.0, 0.0, z]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
                      (2.0, 2.0), *shape)
    return screen._Slice(np.full(shape, value, np.float32), f"z{z}v{value}", g, (2.0, 2.0, 3.0), (0, "f", z), **kw)


def test_repeats_at_one_position_are_averaged_into_one_slice():
    # two volumes of 4 slices (a 4-D series): one 4-slice stack, each slice the mean
    slices = [_slice(z, v) for v in (1.0, 3.0) for z in (0.0, 3.0, 6.0, 9.0)]
    (st,) = screen.stacks_of(slices)
    assert st.data.shape == (8, 8, 4) and np.allclose(st.data, 2.0)
    assert len(st.affines) == 1 and np.allclose(st.affines[0][1][:3, 2], [0, 0, 3.0])
    assert len(st.sources) == 8  # every image is part of the volume (none is judged alone)


def test_a_cine_and_a_mosaic_are_no_volume():
    assert screen.stacks_of([_slice(0.0, v) for v in range(5)]) == []  # one position, 5 times
    assert screen.stacks_of([_slice(z, mosaic=True) for z in range(5)]) == []


def test_unplaced_stack_gets_every_display_orientation_at_head_size():
    s = [screen._Slice(np.zeros((100, 50), np.float32), f"f{i}", None, (3.25, 3.25, 3.2), (i, "f", 0))
         for i in range(4)]
    (st,) = screen.stacks_of(s)
    assert st.data.shape == (50, 100, 4)
    assert [n for n, _ in st.affines] == list(screen.UNPLACED_ORIENTATIONS)
    for _, aff in st.affines:  # the larger in-plane extent (100 rows) spans 256 mm
        assert np.isclose(max(np.linalg.norm(aff[:3, 0]) * 50, np.linalg.norm(aff[:3, 1]) * 100), 256.0)
    axial = dict(st.affines)["axial, slices upwards"]
    assert np.allclose(np.sign(axial[:3, :3]), [[-1, 0, 0], [0, -1, 0], [0, 0, 1]])


# ------------------------------------------------------------------ real heads
@pytest.mark.slow
def test_head_stored_as_secondary_capture_without_geometry_shows_a_face(tmp_path):
    """The head volume stored as a multi-frame secondary capture (issue #18), no geometry."""
    vol = _colin()[:, :, ::2]  # 2 mm slices
    p = tmp_path / "sc.dcm"
    image_dataset(SC, _axial_display(vol), "OT", ImageType=["DERIVED", "SECONDARY"]).save_as(p, enforce_file_format=True)
    s = screen.screen_files([p])
    assert s.face and s.stacks == 1, s.summary()
    assert "axial" in s.where and s.reason().startswith("a face is detected in its pixels")


def test_a_cine_in_time_is_no_volume_but_the_same_frames_in_space_are(tmp_path):
    """The frames of an ultrasound run follow one another in time (FrameIncrementPointer ->
    FrameTime): stacked they make no volume (pydicom-data's echocardiogram rendered as a
    face), so each is shown to the detector as an image; without that pointer the same
    frames are slices (the head stored as a secondary capture, tested above)."""
    vol = _colin()[:, :, ::2]
    cine = image_dataset("1.2.840.10008.5.1.4.1.1.3.1", _axial_display(vol), "US")
    cine.FrameIncrementPointer = 0x00181063
    cine.FrameTime = 33.3
    cine.save_as(tmp_path / "cine.dcm", enforce_file_format=True)
    s = screen.screen_files([tmp_path / "cine.dcm"])
    assert s.stacks == 0 and s.images >= 1 and s.where.startswith("image cine.dcm frame"), s.summary()
    assert screen.is_cine(cine)
    del cine.FrameIncrementPointer
    assert not screen.is_cine(cine)


def test_three_large_radiographs_are_screened_not_crashed_on(tmp_path):
    """Three same-sized radiographs without plane geometry stack into a slab far thinner than
    the surface's voxel (scaled to head size: 0.1 mm a slice); it is averaged into one voxel
    instead of an empty volume (pydicom-data's RG1 set made the screen fail: withheld)."""
    rng = np.random.default_rng(0)
    files = []
    for i in range(3):
        p = tmp_path / f"cr{i}.dcm"
        image_dataset("1.2.840.10008.5.1.4.1.1.1", rng.integers(0, 4000, (1, 1200, 1000)), "CR",
                      PixelSpacing=[0.15, 0.15]).save_as(p, enforce_file_format=True)
        files.append(p)
    s = screen.screen_files(files)
    assert not s.face and s.stacks == 1 and s.images == 3, s.summary()


@pytest.mark.slow
def test_18_sagittal_slices_with_geometry_show_a_face_and_the_brain_alone_does_not(tmp_path):
    vol = _colin()
    mid = vol.shape[0] // 2
    xs = list(range(mid - 45, mid + 45, 5))  # 18 sagittal slices of 5 mm through the middle

    def write(v, folder):
        folder.mkdir()
        for n, x in enumerate(xs):
            # sagittal display: rows superior to inferior, columns anterior to posterior
            img = v[x, ::-1, ::-1].T
            ds = image_dataset(MR, img[None], "MR", InstanceNumber=n + 1, PixelSpacing=[1.0, 1.0], SliceThickness=5.0,
                          ImageOrientationPatient=[0, 1, 0, 0, 0, -1],  # LPS: rows to P, columns to I
                          ImagePositionPatient=[float(90 - x), float(-(vol.shape[1] - 1 - 125)), float(vol.shape[2] - 1 - 71)])
            ds.save_as(folder / f"{n:03d}.dcm", enforce_file_format=True)
        return sorted(folder.glob("*.dcm"))

    s = screen.screen_files(write(vol, tmp_path / "head"))
    assert s.face and "as placed by its plane geometry" in s.where, s.summary()
    head = vol > np.percentile(vol[vol > 0], 20)
    core = ndi.binary_erosion(head & (vol > np.percentile(vol[head], 60)), iterations=8)
    lab, _ = ndi.label(core)
    brain = ndi.binary_dilation(lab == np.bincount(lab.ravel())[1:].argmax() + 1, iterations=8)
    s = screen.screen_files(write(np.where(brain, vol, 0), tmp_path / "brain"))
    assert not s.face and s.stacks == 1, s.summary()


def _render_screenshot(tmp_path) -> Path:
    """The best surface render of colin27 saved as an RGB secondary capture (a workstation's
    3-D view), at twice the render's size."""
    from neurodeid.deface import face

    vol = _colin()
    chk = face.check_volume(vol, np.diag([1.0, 1, 1, 1]), embeddings=False)
    r = max(zip(chk.renders, chk.detections), key=lambda x: x[1].score)[0]
    img = np.kron(r.image, np.ones((2, 2), np.uint8))
    p = tmp_path / "vr.dcm"
    image_dataset(SC, np.stack([img] * 3, -1)[None], "OT").save_as(p, enforce_file_format=True)
    return p


@pytest.mark.slow
def test_screenshot_of_a_render_shows_a_face_as_an_image(tmp_path):
    s = screen.screen_files([_render_screenshot(tmp_path)])
    assert s.face and s.stacks == 0 and "as it is" in s.where, s.summary()


def test_shared_images_without_a_face_pass():
    files = sorted((SHARED / "dicom" / "burned_in").glob("*.dcm"))
    files += sorted((SHARED / "dicom" / "dcm_qa_nih" / "In" / "20180918Si" / "mr_0003").glob("*.dcm"))
    if not files:
        pytest.skip("../shared/data/dicom not found")
    s = screen.screen_files(files)
    assert not s.face and not s.errors and s.images >= 3, s.summary()


@pytest.mark.slow
def test_text_stage_withholds_a_series_with_a_face(tmp_path):
    """Through the text stage (read mode, as the workflow runs it for a series released as
    DICOM without conversion): nothing is written, every row FAIL, the record says why."""
    pytest.importorskip("rapidocr_onnxruntime")
    from neurodeid.redact import RedactionConfig
    from neurodeid.redact.series import run_series
    from neurodeid.results import read_stage_result
    from neurodeid.review.verdicts import screened_face

    src = tmp_path / "in"
    src.mkdir()
    _render_screenshot(src)
    out, res = tmp_path / "out", tmp_path / "r.json"
    r = run_series(src, out, res, RedactionConfig(), [], mode="read", qc_dir=tmp_path / "qc", face_screen=True)
    assert r.status == Check.FAIL and list(out.iterdir()) == []
    assert all(f["status"] == Check.FAIL for f in r.files)
    back = read_stage_result(res, "redact")
    assert screened_face(back) and back.measures["face_screen"]["face"] is True
    # the same series without the screen (a converted series: its image's face check decides)
    r = run_series(src, tmp_path / "out2", tmp_path / "r2.json", RedactionConfig(), [], mode="read")
    assert "face_screen" not in r.measures and not screened_face(r)


@pytest.mark.slow
def test_text_stage_withholds_an_unreadable_file_alone(tmp_path):
    """A file whose pixels cannot be read is not screened: it is withheld with its own reason,
    and the readable, face-free file of the same series is released."""
    pytest.importorskip("rapidocr_onnxruntime")
    from neurodeid.redact import RedactionConfig
    from neurodeid.redact.series import run_series
    from neurodeid.review.verdicts import screened_face

    src = tmp_path / "in"
    src.mkdir()
    plain = np.zeros((1, 64, 64))
    plain[0, 16:48, 16:48] = 800
    image_dataset(SC, plain, "OT").save_as(src / "a.dcm", enforce_file_format=True)
    cut = src / "b.dcm"
    image_dataset(SC, plain, "OT").save_as(cut, enforce_file_format=True)
    cut.write_bytes(cut.read_bytes()[:-3000])  # Pixel Data cut short
    r = run_series(src, tmp_path / "out", tmp_path / "r.json", RedactionConfig(), [], mode="read",
                   face_screen=True)
    by = {f["file"]: f for f in r.files}
    assert by["a.dcm"]["status"] == Check.PASS, r.files
    assert by["b.dcm"]["status"] == Check.FAIL and "b.dcm" in " ".join(by["b.dcm"]["reasons"]), r.files
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.dcm"]
    assert r.measures["face_screen"]["face"] is False and r.measures["face_screen"]["errors"]
    assert not screened_face(r)


# ------------------------------------------------------------------ the workflow
@pytest.mark.e2e
@pytest.mark.slow
def test_workflow_withholds_a_secondary_capture_head_and_releases_a_plain_one(tmp_path):
    """The whole workflow on two secondary captures (modality OT: no face rule of the plan
    applies): the head volume is withheld with the screen's reason, the plain image is
    released, and the run ends with a passed audit."""
    import csv

    vol = _colin()[:, :, ::4]  # 4 mm slices
    raw = tmp_path / "raw"
    (raw / "a").mkdir(parents=True)
    (raw / "b").mkdir()
    image_dataset(SC, _axial_display(vol), "OT", ImageType=["DERIVED", "SECONDARY"], SeriesDescription="summary",
             StudyDate="20240102").save_as(raw / "a" / "head.dcm", enforce_file_format=True)
    y, x = np.mgrid[:128, :160]
    plain = image_dataset(SC, (x * 20 + y * 5)[None].astype(np.float32), "OT", PatientName="QUIXANO^VELTRA",
                     PatientID="SCREEN2", StudyDate="20240103")
    plain.save_as(raw / "b" / "plain.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    r = run_workflow(raw, out, "face-screen-test-key-0123456789abcdef")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "private" / "audit.ok").is_file()
    released = sorted((out / "release" / "sourcedata" / "dicom").rglob("*.dcm"))
    assert len(released) == 1 and pydicom.dcmread(released[0]).Rows == 128
    with open(out / "private" / "review.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    faces = [row for row in rows if row["reasons"].startswith("a face:")]
    assert len(faces) == 1 and faces[0]["verdict"] == "WITHHELD", rows
    assert "a face is detected in its pixels" in faces[0]["reasons"]
