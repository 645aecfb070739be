"""Sanitising converter outputs by construction: sidecar allow-list and fixed NIfTI header text.

The allow-list is data (``neurodeid/data/sidecar_allowlist.tsv``: field, type, reason);
a field that is not listed, or whose value does not have the listed type, is dropped.
"""

from __future__ import annotations

import re
import struct
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["load_allowlist", "sanitise_sidecar", "sanitise_nifti_header", "NIFTI_DESCRIP"]

#: fixed text written into NIfTI ``descrip`` (80 bytes max)
NIFTI_DESCRIP = b"neurodeid"

_DATE_OR_TIME = re.compile(
    r"(19|20)\d\d[-/.]?(0[1-9]|1[0-2])[-/.]?(0[1-9]|[12]\d|3[01])"  # dates
    r"|\b([01]\d|2[0-3]):?[0-5]\d:?[0-5]\d(\.\d+)?\b"  # times
)
_MAX_STRING = 64


@lru_cache(maxsize=4)
def load_allowlist(path: str | None = None) -> dict[str, str]:
    """Field -> type of the sidecar allow-list.

    Parameters
    ----------
    path : str, optional
        A TSV with columns field, type, reason; default the packaged list.
    """
    if path is None:
        text = resources.files("neurodeid").joinpath("data/sidecar_allowlist.tsv").read_text()
    else:
        text = Path(path).read_text()
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("field\t"):
            continue
        parts = line.split("\t")
        if len(parts) < 3 or not parts[2].strip():
            raise ValueError(
                f"sidecar allow-list {path or 'data/sidecar_allowlist.tsv'}: line {line!r} needs field, type and reason"
            )
        out[parts[0].strip()] = parts[1].strip()
    return out


def _ok_string(s) -> bool:
    return isinstance(s, str) and len(s) <= _MAX_STRING and not _DATE_OR_TIME.search(s)


def _ok_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


def _typed(value, kind: str) -> bool:
    if kind == "number":
        return _ok_number(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "string":
        return _ok_string(value)
    if kind == "number_list":
        return isinstance(value, list) and all(_ok_number(v) for v in value)
    if kind == "string_list":
        return isinstance(value, list) and all(_ok_string(v) for v in value)
    return False


def sanitise_sidecar(sidecar: dict, allowlist: dict[str, str] | None = None) -> tuple[dict, list[str]]:
    """Rebuild a sidecar from the allow-list.

    Parameters
    ----------
    sidecar : dict
        The converter's JSON sidecar.
    allowlist : dict, optional
        field -> type; default :func:`load_allowlist`.

    Returns
    -------
    (clean, dropped)
        ``clean`` holds only allow-listed fields whose value has the listed type (strings
        at most 64 characters and never shaped like a date or a time); ``dropped`` names
        the fields left out (names only, never values).
    """
    allow = load_allowlist() if allowlist is None else allowlist
    clean, dropped = {}, []
    for key, value in sidecar.items():
        kind = allow.get(key)
        if kind is not None and _typed(value, kind):
            clean[key] = value
        else:
            dropped.append(key)
    return clean, dropped


def sanitise_nifti_header(path: Path) -> None:
    """Set NIfTI-1 text fields to fixed values and remove header extensions, in place.

    ``descrip`` becomes ``neurodeid``; ``aux_file``, ``intent_name``, ``db_name`` and
    ``data_type`` become empty. An uncompressed file without extensions is patched in its
    first 352 bytes; otherwise the image is rewritten without extensions (voxel data and
    affine unchanged).

    Parameters
    ----------
    path : Path
        A ``.nii`` or ``.nii.gz`` NIfTI-1 file.
    """
    import nibabel as nib

    path = Path(path)
    if path.suffix == ".nii":
        with open(path, "r+b") as fp:
            raw = bytearray(fp.read(352))
            le = struct.unpack("<i", raw[:4])[0] == 348
            endian = "<" if le else ">"
            vox_offset = struct.unpack(endian + "f", raw[108:112])[0]
            if len(raw) == 352 and raw[348] == 0 and vox_offset <= 352:
                raw[4:14] = b"\0" * 10  # data_type
                raw[14:32] = b"\0" * 18  # db_name
                raw[148:228] = NIFTI_DESCRIP.ljust(80, b"\0")  # descrip
                raw[228:252] = b"\0" * 24  # aux_file
                raw[328:344] = b"\0" * 16  # intent_name
                fp.seek(0)
                fp.write(raw)
                return
    img = nib.load(str(path))
    hdr = img.header.copy()
    hdr.extensions.clear()
    hdr["descrip"] = NIFTI_DESCRIP
    for key in ("aux_file", "intent_name", "db_name", "data_type"):
        hdr[key] = b""
    data = np.array(img.dataobj.get_unscaled()) if hasattr(img.dataobj, "get_unscaled") else img.get_fdata()
    new = nib.Nifti1Image(data, img.affine, hdr)
    new.header.set_slope_inter(*img.header.get_slope_inter())
    nib.save(new, str(path))
