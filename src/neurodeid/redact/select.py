"""Which DICOM images need pixel cleaning: header rules only.

The criteria and the reason for each live in
``neurodeid/data/redact_selection.json``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

from .config import load_data_json

DEFAULT_MODALITIES = ("US", "SC", "OT", "XC", "ES", "GM", "DX", "CR")


@lru_cache(maxsize=1)
def selection_table() -> dict:
    """The packaged selection criteria (``redact_selection.json``)."""
    return load_data_json("redact_selection.json")


def _values(ds, keyword: str) -> list[str]:
    v = ds.get(keyword)
    if v is None:
        return []
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return [str(x).strip().upper() for x in v]
    return [str(v).strip().upper()]


def needs_redaction(
    ds,
    modalities: Iterable[str] = DEFAULT_MODALITIES,
    *,
    sop_classes: Iterable[str] | None = None,
    image_type_values: Iterable[str] | None = None,
) -> tuple[bool, str]:
    """Decide from the header whether an image may carry burned-in text.

    Parameters
    ----------
    ds : pydicom.Dataset
        The (de-identified) dataset; pixel data need not be loaded.
    modalities : iterable of str
        Modalities always cleaned.
    sop_classes, image_type_values : iterable of str, optional
        SOP Class UIDs and ImageType values that select an image; default:
        the packaged table.

    Returns
    -------
    (bool, str)
        Whether to clean and the reason (header facts only: never a patient
        value).
    """
    table = selection_table()
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return False, "no pixel data"
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return True, "BurnedInAnnotation is YES"
    modality = str(ds.get("Modality", "")).strip().upper()
    if modality and modality in {m.upper() for m in modalities}:
        return True, f"modality {modality} is listed for pixel cleaning"
    sops = set(table["sop_classes"]) if sop_classes is None else set(sop_classes)
    sop = str(ds.get("SOPClassUID", "")).strip()
    if sop in sops:
        return True, f"SOP class {sop} is listed for pixel cleaning"
    if "ConversionType" in ds:
        return True, "ConversionType is present (secondary capture)"
    types = set(table["image_type_values"]) if image_type_values is None else set(image_type_values)
    types = {t.upper() for t in types}
    for value in _values(ds, "ImageType"):
        if value in types:
            return True, f"ImageType contains {value}"
    return False, "no header criterion for burned-in text"
