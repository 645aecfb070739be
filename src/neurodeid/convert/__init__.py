"""De-identified DICOM series -> NIfTI + sanitised BIDS sidecar (+ NRRD), with an independent geometry check.

dcm2niix is the conversion engine; this package runs it on one series at a time, checks
every output affine against the DICOM ImagePositionPatient / ImageOrientationPatient,
resamples gantry-tilted or unevenly spaced stacks, splits stacks with gaps, rebuilds
sidecars from an allow-list (``neurodeid/data/sidecar_allowlist.tsv``) and blanks NIfTI
header text. :func:`classify_series` and :func:`assign_bids_names` map series to BIDS
names with the rules of ``neurodeid/data/bids_heuristics.yaml``.
"""

from .core import DCM2NIIX_ARGS, convert_series, convert_series_job, find_dcm2niix
from .errors import ConversionError, GeometryError
from .naming import assign_bids_names, bids_name, classify_series, load_heuristics
from .nrrd import write_nrrd
from .sanitise import load_allowlist, sanitise_nifti_header, sanitise_sidecar

__all__ = [
    "convert_series",
    "convert_series_job",
    "find_dcm2niix",
    "DCM2NIIX_ARGS",
    "ConversionError",
    "GeometryError",
    "classify_series",
    "assign_bids_names",
    "bids_name",
    "load_heuristics",
    "write_nrrd",
    "load_allowlist",
    "sanitise_sidecar",
    "sanitise_nifti_header",
]
