"""NRRD copies of NIfTI images (SimpleITK), in LPS space."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_nrrd"]


def write_nrrd(nifti_path: Path, nrrd_path: Path, *, compress: bool = True) -> Path:
    """Write a NIfTI image as NRRD with the same voxels and geometry.

    SimpleITK reads the NIfTI (qform/sform, RAS+) into its LPS physical space; the NRRD
    header says ``space: left-posterior-superior`` with ``space directions`` and
    ``space origin`` in LPS mm, so every voxel keeps its world position.

    Parameters
    ----------
    nifti_path : Path
        ``.nii`` or ``.nii.gz``.
    nrrd_path : Path
        Output ``.nrrd`` (parent folders are created).
    compress : bool
        gzip encoding of the voxel data.

    Returns
    -------
    Path
        ``nrrd_path``.
    """
    import SimpleITK as sitk

    nrrd_path = Path(nrrd_path)
    nrrd_path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.ReadImage(str(nifti_path))
    for key in list(img.GetMetaDataKeys()):
        img.EraseMetaData(key)  # NIfTI header text must not travel (already fixed text, but be explicit)
    sitk.WriteImage(img, str(nrrd_path), useCompression=compress)
    return nrrd_path
