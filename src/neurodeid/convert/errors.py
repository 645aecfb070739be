"""Exceptions raised by :mod:`neurodeid.convert`."""

from __future__ import annotations


class ConversionError(RuntimeError):
    """A series could not be converted (engine missing or failed, no output, bad input).

    The message names the series (first file), what went wrong and what to do.
    """


class GeometryError(ConversionError):
    """An output image's voxel-to-world mapping disagrees with the DICOM geometry.

    Raised when an output affine is more than the tolerance (default 0.1 mm) away
    from the positions given by ImagePositionPatient / ImageOrientationPatient of
    the first and last slice, when the voxel data are not where the affine says,
    or when a series has no usable geometry at all.
    """
