"""Hidden bits of native Pixel Data: what a viewer never shows but the bytes still carry.

Old scanners stored overlays (a name, a date, annotations) in the unused high
bits of Pixel Data: bit 15 of a 12-bit image, for example. Decoders (pydicom,
dcm2niix) mask those bits, so the NIfTI is clean, but a copied DICOM keeps
them, and anyone who reads the raw bytes reads the text. PS3.15 E.1.1 (Clean
Pixel Data) and the retired Overlay-in-Pixel-Data mechanism (PS3.5 8.1.2) are
the background; the overlay groups 60xx themselves are removed by the action
table (:mod:`neurodeid.deid.rules`).

:func:`clear_unused_bits` rewrites every stored value so that the bits above
HighBit carry nothing: zero for unsigned data, the sign extension of bit
HighBit for signed data. The stored values' meaning (what every decoder
returns) is unchanged.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian


def clear_unused_bits(ds: Dataset) -> int:
    """Clear the bits above HighBit of native (uncompressed) Pixel Data, in place.

    Parameters
    ----------
    ds : pydicom.Dataset
        Read with :func:`pydicom.dcmread`; ``PixelData`` is changed in place
        when some value carries a set bit above HighBit.

    Returns
    -------
    int
        How many stored values changed (0: nothing hidden, or nothing to do:
        no Pixel Data, encapsulated (compressed) data, 1-bit data,
        BitsStored = BitsAllocated, or HighBit other than BitsStored - 1,
        which no decoder here supports either).
    """
    if "PixelData" not in ds:
        return 0
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is not None and ts.is_encapsulated:
        return 0
    try:
        alloc = int(ds.BitsAllocated)
        stored = int(ds.BitsStored)
        high = int(ds.get("HighBit", stored - 1))
    except (AttributeError, TypeError, ValueError):
        return 0
    if alloc not in (8, 16, 32) or not 0 < stored < alloc or high != stored - 1:
        return 0
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    order = ">" if ts == ExplicitVRBigEndian else "<"
    raw = bytes(ds.PixelData)
    n = len(raw) // (alloc // 8)
    dt = np.dtype(f"{order}u{alloc // 8}")
    a = np.frombuffer(raw, dtype=dt, count=n)
    mask = np.array((1 << stored) - 1, dtype=dt)
    low = a & mask
    if signed:
        sign = (low >> (stored - 1)) & 1
        upper = np.array(((1 << alloc) - 1) ^ ((1 << stored) - 1), dtype=dt)
        clean = np.where(sign.astype(bool), low | upper, low).astype(dt)
    else:
        clean = low.astype(dt)
    changed = int(np.count_nonzero(clean != a))
    if changed:
        ds.PixelData = clean.tobytes() + raw[n * (alloc // 8):]
    return changed
