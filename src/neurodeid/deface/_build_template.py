"""Build the vendored defacing template (maintainer tool; not used at run time).

Reads the MIT-licensed whole-head template and face mask shipped in the ``pydeface``
wheel (``pydeface/data/mean_reg2mean.nii.gz``, ``facemask.nii.gz``), derives a brain
mask from the template by intensity (independently of the face mask), and writes three
downsampled (3 voxel blocks, about 3 x 2.9 x 2.9 mm) files into ``neurodeid/data/``:

``deface_template_3mm.nii.gz``
    head template, int16, block mean.
``deface_facemask_3mm.nii.gz``
    uint8, 0-255 = fraction of each block inside the pydeface *face* region (note: the
    pydeface file marks the face with 0; we store the face as 255).
``deface_brainmask_3mm.nii.gz``
    uint8, 0-255 = fraction of each block inside the template brain mask.

All three share one RAS+ affine (voxel (i, j, k) -> RAS+ mm), taken from pydeface's file
with the voxel size multiplied by 3.

Run: ``python -m neurodeid.deface._build_template`` (needs ``pip install pydeface``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
FACTOR = 3


def _ball(r: int) -> np.ndarray:
    g = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    return (g**2).sum(0) <= r * r


def _block_mean(a: np.ndarray, f: int = FACTOR) -> np.ndarray:
    s = [n // f * f for n in a.shape]
    a = a[: s[0], : s[1], : s[2]].astype(np.float64)
    return a.reshape(s[0] // f, f, s[1] // f, f, s[2] // f, f).mean(axis=(1, 3, 5))


def template_brain_mask(t: np.ndarray) -> np.ndarray:
    """Brain mask of the pydeface mean head by intensity (threshold 207 = midpoint of the
    two Otsu levels, 5-voxel erosion, largest component, re-dilation, closing, hole
    filling per slice and in 3D, then 2 voxels of dilation). Checked by eye."""
    from scipy import ndimage as ndi

    b = t > 207
    e = ndi.binary_erosion(b, _ball(5))
    lab, n = ndi.label(e)
    sz = ndi.sum(e, lab, range(1, n + 1))
    br = lab == (int(np.argmax(sz)) + 1)
    br = ndi.binary_dilation(br, _ball(6)) & (t > 190)
    br = ndi.binary_closing(br, _ball(8))
    for ax in range(3):
        for i in range(br.shape[ax]):
            sl = [slice(None)] * 3
            sl[ax] = i
            br[tuple(sl)] = ndi.binary_fill_holes(br[tuple(sl)])
    br = ndi.binary_fill_holes(br)
    return ndi.binary_dilation(br, _ball(2))


def main() -> None:
    import nibabel as nib
    import pydeface

    src = Path(pydeface.__file__).parent / "data"
    timg = nib.load(src / "mean_reg2mean.nii.gz")
    t = np.asanyarray(timg.dataobj).astype(np.float64)
    keep = np.asanyarray(nib.load(src / "facemask.nii.gz").dataobj) > 0.5
    brain = template_brain_mask(t)
    aff = timg.affine.copy()
    aff[:3, :3] *= FACTOR
    # voxel centre of block (0,0,0) is at voxel (1,1,1) of the 1 mm grid
    aff[:3, 3] = timg.affine[:3, :3] @ np.full(3, (FACTOR - 1) / 2) + timg.affine[:3, 3]
    outs = {
        "deface_template_3mm.nii.gz": np.round(_block_mean(t)).astype(np.int16),
        "deface_facemask_3mm.nii.gz": np.round(_block_mean(~keep) * 255).astype(np.uint8),
        "deface_brainmask_3mm.nii.gz": np.round(_block_mean(brain) * 255).astype(np.uint8),
    }
    for name, arr in outs.items():
        img = nib.Nifti1Image(arr, aff)
        img.header.set_xyzt_units("mm")
        img.header.set_sform(aff, code=2)
        img.header.set_qform(aff, code=2)
        nib.save(img, DATA / name)
        print(name, arr.shape, os.path.getsize(DATA / name), "bytes")
    print("brain ml", brain.sum() * np.prod(timg.header.get_zooms()[:3]) / 1000)


if __name__ == "__main__":
    main()
