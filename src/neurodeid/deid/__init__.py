"""DICOM de-identification: PS3.15 Table E.1-1 applied at every sequence depth.

>>> from neurodeid.deid import DeidConfig, deidentify_dataset, deidentify_series
>>> cfg = DeidConfig(key=key, subject_label="ab12cd34", date_shift_days=-123)  # doctest: +SKIP
>>> report = deidentify_dataset(ds, cfg)  # doctest: +SKIP

:mod:`neurodeid.deid.rules` holds the data-driven decisions, :mod:`.engine`
the walk over a dataset, :mod:`.series` the file I/O.
"""

from neurodeid.deid.engine import (
    DeidConfig,
    DeidError,
    DeidReport,
    deidentify_dataset,
    is_well_known_uid,
    pixel_review_reason,
    shift_date,
    shift_datetime,
)
from neurodeid.deid.rules import plan_for_tag, resolve_action
from neurodeid.deid.series import NotAnInstanceError, deidentify_file, deidentify_series

__all__ = [
    "DeidConfig",
    "DeidError",
    "DeidReport",
    "NotAnInstanceError",
    "deidentify_dataset",
    "deidentify_file",
    "deidentify_series",
    "is_well_known_uid",
    "pixel_review_reason",
    "plan_for_tag",
    "resolve_action",
    "shift_date",
    "shift_datetime",
]
