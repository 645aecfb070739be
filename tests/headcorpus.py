"""A head test corpus for the face check and the defacer (issue #18, item 5).

Sources (read where they are, never copied into the project):

- ``../shared/data/heads/``: colin27 (1 mm, nose tip clipped by the field of view),
  vrd_seg3D (a patient T1 with the upper face) and chris_t1 (0.88 mm, a full face; CC BY-NC,
  test use only);
- dcm_qa_deident's T1 (``../shared/data/dicom/dcm_qa_deident/In``, converted here with
  dcm2niix): not a head but a fruit scanned with a head protocol (PatientID ``FRUIT``; its
  slices show a seeded fruit, its renders an egg-shaped surface, no face) and put through
  mri_reface by its provider. Face-free, with every augmentation: no face is expected on
  it; the face detector finds one on most of them (a false face withholds, never
  releases), and no template fit of it is right (there is no brain to fit).

Augmentations, each built with numpy/scipy only and independently of the library:

- ``permuted``: voxel axes permuted and one flipped, the affine following (the same head in
  the world: a different storage order);
- ``rot{x,y,z}{+25,-25}``: the head turned 25 degrees about an axis through its centre
  (the affine turned: an oblique acquisition; the field of view turns with it);
- ``crop_chin``, ``crop_nose``, ``crop_forehead``: the field of view ending 45 mm below the
  nose tip (mouth kept), at the nose tip (eyes, brows and nose bridge kept) and 50 mm above
  it (no eyes: a face-cropped volume, no face expected);
- ``thick_{axial,coronal,sagittal}``: 3, 4 and 5 mm slices (block means along one axis);
- ``t2_like``, ``pd_like``: contrast remapped (inverted inside the head; square root);
- ``noise_bias``: a smooth multiplicative bias field (0.7 to 1.3 front to back) and noise
  at 3 % of the head's 99th percentile;
- ``ct_like``: Hounsfield units synthesised from the head and its brain (skin and soft
  tissue 40, brain 30, a 5 mm skull of 1,200 around the brain, air -1,000, noise 8 HU);
- negatives (no face expected): ``brain_only`` (skull-stripped with BET's algorithm,
  :func:`stripped_brain`), ``brain_only_wide`` (the same 4 mm wider: a looser strip) and
  ``crop_forehead``.

The nose tip is located from the image (the most anterior head-surface point within 25 mm of
the head's mid-sagittal plane); where the field of view clips the nose (colin27) it is the
cut's front, which is close enough to place the crops.

Conventions: arrays are voxel (i, j, k); affines voxel -> RAS+ mm (nibabel's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

SHARED = Path(os.environ.get("NEURODEID_SHARED_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))
HEAD_FILES = ("colin27_ch2", "vrd_seg3D_MR", "chris_t1")
DEIDENT_DICOM = SHARED / "dicom" / "dcm_qa_deident" / "In"


@dataclass
class Head:
    """One corpus item: a volume, where it comes from and whether a face is expected."""

    name: str
    data: np.ndarray
    affine: np.ndarray
    face_expected: bool
    note: str = ""


# --------------------------------------------------------------------------- sources
def load_sources() -> list[Head]:
    """The source heads found on this machine (empty without ``../shared/data``)."""
    import nibabel as nib

    out = []
    for name in HEAD_FILES:
        p = SHARED / "heads" / f"{name}.nii.gz"
        if p.is_file():
            img = nib.load(str(p))
            out.append(Head(name, np.asarray(img.dataobj, np.float32), img.affine, True,
                            "as acquired"))
    deident = _deident_head()
    if deident is not None:
        out.append(deident)
    return out


def _deident_head() -> Head | None:
    """dcm_qa_deident's T1 (a fruit, PatientID FRUIT: no face expected) converted with
    dcm2niix, or None when absent."""
    import nibabel as nib

    exe = shutil.which("dcm2niix")
    if not DEIDENT_DICOM.is_dir() or exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([exe, "-z", "y", "-b", "n", "-f", "t1", "-o", tmp, str(DEIDENT_DICOM)],
                       check=True, capture_output=True)
        files = sorted(Path(tmp).glob("t1*.nii.gz"))
        if not files:
            return None
        img = nib.load(str(files[0]))
        data = np.asarray(img.dataobj, np.float32)
    return Head("dcm_qa_deident", data, img.affine, False,
                "a fruit (PatientID FRUIT) put through mri_reface: no face")


# --------------------------------------------------------------------------- helpers
def head_mask(data: np.ndarray) -> np.ndarray:
    """Head: above 25 % of the way from the minimum to the 99th percentile, largest
    component, holes filled."""
    lo, hi = float(data.min()), float(np.percentile(data, 99))
    m = ndi.binary_opening(data > lo + 0.25 * (hi - lo))
    lab, n = ndi.label(m)
    if n:
        m = lab == (np.bincount(lab.ravel())[1:].argmax() + 1)
    return ndi.binary_fill_holes(m)


def _world(idx: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return idx @ affine[:3, :3].T + affine[:3, 3]


def nose_tip(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """RAS+ mm of the most anterior head-surface point within 25 mm of the head's
    mid-sagittal plane (its centre of mass in R)."""
    m = head_mask(data)
    pts = _world(np.argwhere(m & ~ndi.binary_erosion(m)).astype(float), affine)
    centre_r = _world(np.argwhere(m).mean(0)[None], affine)[0, 0]
    near = pts[np.abs(pts[:, 0] - centre_r) < 25]
    return near[np.argmax(near[:, 1])]


def _axis_of(affine: np.ndarray, ras: int) -> tuple[int, float]:
    """Voxel axis most aligned with RAS axis ``ras`` and the sign of that alignment."""
    col = np.asarray(affine, float)[ras, :3]
    ax = int(np.argmax(np.abs(col)))
    return ax, float(np.sign(col[ax]))


def crop_below(h: Head, s_mm: float, name: str, face: bool, note: str) -> Head:
    """The field of view ending at superior coordinate ``s_mm``: voxels whose S lies below
    are cut away (the array shrinks, as an acquisition with a smaller field of view)."""
    ax, _ = _axis_of(h.affine, 2)
    n = h.data.shape[ax]
    idx = np.tile((np.asarray(h.data.shape, float) - 1) / 2, (n, 1))
    idx[:, ax] = np.arange(n)
    s = _world(idx, h.affine)[:, 2]  # S of each slice's centre
    keep = np.nonzero(s >= s_mm)[0]
    lo, hi = int(keep.min()), int(keep.max()) + 1
    sl = [slice(None)] * 3
    sl[ax] = slice(lo, hi)
    aff = h.affine.copy()
    shift = np.zeros(3)
    shift[ax] = lo
    aff[:3, 3] = _world(shift[None], h.affine)[0]
    return Head(f"{h.name}/{name}", h.data[tuple(sl)].copy(), aff, face, note)


def permuted(h: Head) -> Head:
    """Voxel axes (i, j, k) stored as (k, i, j), the new first axis flipped; same world."""
    perm = (2, 0, 1)
    d = np.transpose(h.data, perm)[::-1].copy()
    aff = np.eye(4)
    aff[:3, :3] = h.affine[:3, :3][:, perm]
    aff[:3, 3] = h.affine[:3, 3]
    # flip the first stored axis: index i' = n - 1 - i
    n0 = d.shape[0]
    aff[:3, 3] = aff[:3, 3] + aff[:3, 0] * (n0 - 1)
    aff[:3, 0] = -aff[:3, 0]
    return Head(f"{h.name}/permuted", d, aff, h.face_expected, "axes (k, i, j), first flipped")


def rotated(h: Head, axis: int, degrees: float) -> Head:
    """The affine turned by ``degrees`` about RAS axis ``axis`` through the head's centre."""
    c = _world(np.argwhere(head_mask(h.data)).mean(0)[None], h.affine)[0]
    t = np.deg2rad(degrees)
    r = np.eye(3)
    a, b = [x for x in range(3) if x != axis]
    r[a, a] = r[b, b] = np.cos(t)
    r[a, b], r[b, a] = -np.sin(t), np.sin(t)
    rot = np.eye(4)
    rot[:3, :3] = r
    rot[:3, 3] = c - r @ c
    name = f"rot{'xyz'[axis]}{degrees:+.0f}"
    return Head(f"{h.name}/{name}", h.data, rot @ h.affine, h.face_expected,
                f"turned {degrees:+.0f} deg about {'RAS'[axis]}")


def thick(h: Head, ras: int, mm: float) -> Head:
    """Slices ``mm`` thick across RAS axis ``ras``: block means of whole voxels along the
    voxel axis most aligned with it (the affine scaled, centred on each block)."""
    ax, _ = _axis_of(h.affine, ras)
    z = float(np.linalg.norm(h.affine[:3, ax]))
    f = max(1, int(round(mm / z)))
    n = h.data.shape[ax] // f * f
    sl = [slice(None)] * 3
    sl[ax] = slice(0, n)
    d = h.data[tuple(sl)]
    shape = list(d.shape)
    shape[ax:ax + 1] = [n // f, f]
    d = d.reshape(shape).mean(ax + 1).astype(np.float32)
    aff = h.affine.copy()
    aff[:3, 3] = aff[:3, 3] + aff[:3, ax] * (f - 1) / 2
    aff[:3, ax] = aff[:3, ax] * f
    label = ("sagittal", "coronal", "axial")[ras]
    return Head(f"{h.name}/thick_{label}", d, aff, h.face_expected,
                f"{f * z:.1f} mm {label} slices ({d.shape[ax]})")


def t2_like(h: Head) -> Head:
    """Contrast inverted inside the head (bright becomes dark; background unchanged)."""
    m = head_mask(h.data)
    lo, hi = np.percentile(h.data[m], [2, 99])
    d = h.data.copy()
    d[m] = np.clip(hi + lo - h.data[m], lo, hi)
    return Head(f"{h.name}/t2_like", d, h.affine, h.face_expected, "inverted inside the head")


def pd_like(h: Head) -> Head:
    """Contrast compressed (square root of the intensities above the minimum)."""
    d = np.sqrt(np.clip(h.data - h.data.min(), 0, None)).astype(np.float32)
    return Head(f"{h.name}/pd_like", d, h.affine, h.face_expected, "square root")


def noise_bias(h: Head, seed: int = 0) -> Head:
    """A bias field from 0.7 (back) to 1.3 (front) and Gaussian noise at 3 % of the head's
    99th percentile."""
    rng = np.random.default_rng(seed)
    idx = np.indices(h.data.shape, dtype=np.float32).reshape(3, -1).T
    a = (idx @ h.affine[:3, :3].T.astype(np.float32) + h.affine[:3, 3].astype(np.float32))[:, 1]
    a = (a - a.min()) / max(float(np.ptp(a)), 1e-6)
    field = (0.7 + 0.6 * a).reshape(h.data.shape)
    sigma = 0.03 * float(np.percentile(h.data, 99))
    d = (h.data * field + rng.normal(0, sigma, h.data.shape)).astype(np.float32)
    return Head(f"{h.name}/noise_bias", d, h.affine, h.face_expected, "bias 0.7-1.3, noise 3 %")


def ct_like(h: Head, brain: np.ndarray, seed: int = 0) -> Head:
    """Hounsfield units from the head mask and a brain mask: soft tissue 40, brain 30, a
    5 mm skull (1,200) around the brain inside the head, air -1,000, noise 8 HU."""
    zooms = np.linalg.norm(h.affine[:3, :3], axis=0)
    m = head_mask(h.data)
    # air inside the head (sinuses, airways) stays air: the darkest 8 % of the head
    air = m & (h.data < np.percentile(h.data[m], 8)) & ~brain
    dist = ndi.distance_transform_edt(~brain, sampling=zooms)
    d = np.full(h.data.shape, -1000.0, np.float32)
    d[m] = 40.0
    d[m & (dist > 1.5) & (dist <= 6.5)] = 1200.0
    d[brain] = 30.0
    d[air] = -1000.0
    d += np.random.default_rng(seed).normal(0, 8, d.shape).astype(np.float32)
    return Head(f"{h.name}/ct_like", d, h.affine, h.face_expected, "synthetic HU")


def brain_only(h: Head, brain: np.ndarray, wide_mm: float = 0.0) -> Head:
    """The head with everything outside ``brain`` set to the minimum (skull-stripped);
    ``wide_mm`` > 0: ``brain`` grown by that much first (a looser strip that keeps the CSF
    and meninges around the brain, as other extractors do), named ``brain_only_wide``."""
    if wide_mm > 0:
        z = np.linalg.norm(h.affine[:3, :3], axis=0)
        brain = ndi.distance_transform_edt(~brain, sampling=z) <= wide_mm
    d = np.where(brain, h.data, h.data.min()).astype(np.float32)
    name, note = (("brain_only_wide", f"skull-stripped, {wide_mm:g} mm wider") if wide_mm > 0
                  else ("brain_only", "skull-stripped"))
    return Head(f"{h.name}/{name}", d, h.affine, False, note)


def stripped_brain(h: Head) -> np.ndarray:
    """The brain as a user strips a head (BET's algorithm: the library's independent
    extractor, :func:`neurodeid.deface.brainmask.extract_brain`): about 1,500-2,000 ml on
    the three real heads, 2 ml on the fruit. The skull-stripped negatives are made with it;
    :func:`simple_brain` keeps 0-6 ml of these heads, and its "brain only" volumes were
    nearly empty (a screen that finds no face there says nothing)."""
    from neurodeid.deface.brainmask import extract_brain

    return extract_brain(h.data, np.linalg.norm(h.affine[:3, :3], axis=0)).mask


def simple_brain(h: Head) -> np.ndarray:
    """A brain mask built here without the library: voxels above the 60th percentile of the
    head, eroded 8 mm, largest component, dilated back 8 mm inside the candidates, holes
    filled. Rough, and independent of the defacer and of its checks; on the real heads it
    keeps 0-6 ml (the 8 mm erosion leaves little), so the CT-like heads have a small
    "brain" of 30 HU: known, left (their defacing results are recorded with it)."""
    zooms = np.linalg.norm(h.affine[:3, :3], axis=0)
    m = head_mask(h.data)
    cand = m & (h.data > np.percentile(h.data[m], 60))
    r = np.maximum(1, np.round(8.0 / zooms)).astype(int)
    ball = np.ones(tuple(2 * r + 1), bool)
    core = ndi.binary_erosion(cand, ball)
    lab, n = ndi.label(core)
    if n == 0:
        return core
    big = lab == (np.bincount(lab.ravel())[1:].argmax() + 1)
    return ndi.binary_fill_holes(ndi.binary_dilation(big, ball) & cand)


# --------------------------------------------------------------------------- corpus
def augmentations(src: Head, quick: bool = False) -> list[Head]:
    """Every augmentation of one source head (``quick``: the source, permuted, one
    rotation, the three crops and the negatives)."""
    tip = nose_tip(src.data, src.affine)
    brain = simple_brain(src)
    out = [src, permuted(src), rotated(src, 0, 25)]
    if not quick:
        out += [rotated(src, 0, -25), rotated(src, 1, 25), rotated(src, 1, -25),
                rotated(src, 2, 25), rotated(src, 2, -25)]
    out += [crop_below(src, tip[2] - 45, "crop_chin", src.face_expected, "FOV ends at the chin"),
            crop_below(src, tip[2], "crop_nose", src.face_expected,
                       "FOV ends at the nose tip (eyes, brows, bridge)"),
            crop_below(src, tip[2] + 50, "crop_forehead", False, "FOV ends above the brows")]
    if not quick:
        out += [thick(src, 2, 3.0), thick(src, 1, 4.0), thick(src, 0, 5.0),
                t2_like(src), pd_like(src), noise_bias(src), ct_like(src, brain)]
    stripped = stripped_brain(src)
    out.append(brain_only(src, stripped))
    if not quick:
        out.append(brain_only(src, stripped, wide_mm=4.0))
    return out


def corpus(quick: bool = False) -> list[Head]:
    """All sources and their augmentations (generated on the fly; nothing written)."""
    return [h for src in load_sources() for h in augmentations(src, quick)]
