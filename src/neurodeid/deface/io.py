"""Thin file I/O for defacing: read a NIfTI head, write the defaced copy and masks.

The defaced file keeps the input's header byte for byte (dtype, scaling, affine, qform/sform,
extensions): only the stored values of removed voxels change, to the stored (unscaled)
value that represents the background.
"""

from __future__ import annotations

import numpy as np


def load_head(path):
    """Return ``(img, data, affine)``: the nibabel image, the scaled float32 data of the
    first 3-D volume (voxel (i, j, k)) and the voxel -> RAS+ mm affine."""
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj, dtype=np.float32) if img.ndim == 3 else \
        np.asarray(img.dataobj[..., 0], dtype=np.float32)
    while data.ndim > 3:
        data = data[..., 0]
    return img, data, img.affine


def stored_background(img, value: float):
    """Stored (unscaled) value representing the scaled ``value``, clipped to the dtype."""
    slope = float(getattr(img.dataobj, "slope", 1.0))
    inter = float(getattr(img.dataobj, "inter", 0.0))
    slope = 1.0 if not np.isfinite(slope) or slope == 0 else slope
    inter = 0.0 if not np.isfinite(inter) else inter
    raw = (value - inter) / slope
    dt = img.header.get_data_dtype()
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        raw = np.clip(np.round(raw), info.min, info.max)
    return np.array(raw).astype(dt)


def read_header_bytes(in_path, img) -> bytes:
    """The input file's bytes before the voxel data (header, extensions, padding), as stored
    (decompressed). nibabel resets scaling and offset in a loaded image's header object,
    so the file's own bytes are the only faithful copy."""
    from nibabel.openers import ImageOpener

    with ImageOpener(str(in_path), "rb") as f:
        return f.read(int(img.dataobj.offset))


def write_defaced(in_path, img, removal: np.ndarray, background: float, out_path) -> None:
    """Write ``img`` with voxels in ``removal`` (voxel (i, j, k), broadcast over volumes)
    set to ``background`` (scaled units), keeping the header byte-identical.

    Only single-file NIfTI-1/NIfTI-2 (``.nii`` / ``.nii.gz``) is supported.
    """
    import nibabel as nib
    from nibabel.openers import ImageOpener
    from nibabel.volumeutils import array_to_file

    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)) or \
            img.header.get("magic", b"") not in (b"n+1", b"n+2"):
        raise ValueError("only single-file NIfTI (.nii/.nii.gz) can be written")
    raw = np.array(img.dataobj.get_unscaled(), copy=True)
    raw[removal] = stored_background(img, background)  # broadcasts over a 4th axis
    head = read_header_bytes(in_path, img)
    with ImageOpener(str(out_path), "wb") as f:
        f.write(head)
        array_to_file(raw, f, img.header.get_data_dtype(), offset=len(head), order="F")


def write_mask(img, mask: np.ndarray, out_path) -> None:
    """Write a uint8 mask on the input grid (same affine, qform/sform codes)."""
    import nibabel as nib

    m = nib.Nifti1Image(mask.astype(np.uint8), img.affine)
    q, qc = img.header.get_qform(coded=True)
    s, sc = img.header.get_sform(coded=True)
    if q is not None:
        m.header.set_qform(q, int(qc))
    if s is not None:
        m.header.set_sform(s, int(sc))
    m.header.set_xyzt_units(*img.header.get_xyzt_units())
    nib.save(m, str(out_path))
