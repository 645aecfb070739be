"""The geometry fields of a DICOM file straight from its bytes (see
:mod:`neurodeid.dicomfast`); None when unsure, and the caller uses pydicom instead.
Tested against pydicom on every suite file.
"""

from __future__ import annotations

import struct

from ..dicomfast import raw_elements

__all__ = ["fast_geometry_fields"]

_WANTED = {
    0x00080008: "ImageType",
    0x00180050: "SliceThickness",
    0x00180086: "EchoNumbers",
    0x00180088: "SpacingBetweenSlices",
    0x00181120: "GantryDetectorTilt",
    0x00200013: "InstanceNumber",
    0x00200032: "ImagePositionPatient",
    0x00200037: "ImageOrientationPatient",
    0x00280008: "NumberOfFrames",
    0x00280010: "Rows",
    0x00280011: "Columns",
    0x00280030: "PixelSpacing",
}
_STOP = 0x00280031
_US = {0x00280010, 0x00280011}


def fast_geometry_fields(path) -> dict | None:
    """Geometry fields of a DICOM file as ``{keyword: value}``; None when unsure.

    Values: text fields as a list of strings (backslash-split), Rows/Columns as int.
    """
    head = raw_elements(path, _WANTED, _STOP)
    if head is None:
        return None
    out: dict = {}
    for tag, raw in head.values.items():
        key = _WANTED[tag]
        if tag in _US:
            if len(raw) != 2:
                return None
            out[key] = struct.unpack("<H" if head.little else ">H", raw)[0]
        else:
            try:
                out[key] = [s.strip() for s in raw.rstrip(b"\0 ").decode("latin-1").split("\\")]
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
                return None
    return out
