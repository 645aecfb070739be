"""DICOM de-identification: PS3.15 Table E.1-1 applied at every sequence depth.

>>> from neurodeid.deid import DeidConfig, deidentify_dataset, deidentify_series
>>> cfg = DeidConfig(key=key, subject_label="ab12cd34", date_shift_days=-123)  # doctest: +SKIP
>>> report = deidentify_dataset(ds, cfg)  # doctest: +SKIP

:mod:`neurodeid.deid.profile` holds PS3.15 Table E.1-1, :mod:`.rules` the data-driven
decisions, :mod:`.engine` the walk over a dataset, :mod:`.series` the file I/O.

The names below are imported on first use (PEP 562): the profile table is also read by
the audit's needles (:mod:`neurodeid.audit.needles`), which the de-identification itself uses,
so importing :mod:`neurodeid.deid.profile` must not pull in the engine.
"""

import importlib

#: Public name -> the module of this package that defines it.
_EXPORTS = {
    "DeidConfig": "engine",
    "DeidError": "engine",
    "DeidReport": "engine",
    "deidentify_dataset": "engine",
    "is_well_known_uid": "engine",
    "pixel_review_reason": "engine",
    "shift_date": "engine",
    "shift_datetime": "engine",
    "plan_for_tag": "rules",
    "resolve_action": "rules",
    "NotAnInstanceError": "series",
    "deidentify_file": "series",
    "deidentify_series": "series",
    "forget_series_memos": "series",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'neurodeid.deid' has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"neurodeid.deid.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
