"""Burned-in text: find it, remove it, prove it is gone.

Pipeline for one image (DICOM or plain JPEG/PNG):

1. Which images: :func:`needs_redaction` (header rules, data in
   ``neurodeid/data/redact_selection.json``).
2. Region rules (:class:`RegionRule`, matched on Manufacturer,
   ManufacturerModelName, Rows, Columns) give rectangles; for ultrasound,
   everything outside SequenceOfUltrasoundRegions can be blanked.
3. OCR (Tesseract via pytesseract) reads every frame; words become boxes,
   padded by a margin. Multi-frame images use the UNION of the boxes of all
   frames on every frame.
4. Each box is removed with the rule's method: ``mask``, ``blur`` or ``crop``.
5. Verification: the redacted frames are read again; anything still read is
   redacted in a further pass (up to ``max_passes``); if the final read still
   shows a needle, a date-, time- or name-like token, the status is FAIL.

Entry points: :func:`redact_dicom_file`, :func:`redact_image_file`
(file edges) and :func:`redact_frames` / :func:`redact_dataset` (in memory).

Privacy notes: the QC picture's left panel shows the original pixels (keep it
with private outputs); pytesseract passes each rendering to ``tesseract``
through a short-lived PNG in the temporary directory (set ``TMPDIR`` to a
private disk); with ``ocr_threads > 1`` the process environment gets
``OMP_THREAD_LIMIT=1`` unless already set.
"""

from .config import RedactionConfig, RegionRule, load_rules
from .engine import Redaction, redact_frames
from .errors import OCRUnavailableError, RedactionConfigError, RedactionError, UnsupportedImageError
from .files import redact_dataset, redact_dicom_file, redact_image_file
from .ocr import Word, ocr_frames, tesseract_available
from .qc import qc_image
from .select import DEFAULT_MODALITIES, needs_redaction
from .verify import Finding, Verifier

__all__ = [
    "DEFAULT_MODALITIES", "Finding", "OCRUnavailableError", "Redaction", "RedactionConfig",
    "RedactionConfigError", "RedactionError", "RegionRule", "UnsupportedImageError", "Verifier", "Word",
    "load_rules", "needs_redaction", "ocr_frames", "qc_image", "redact_dataset", "redact_dicom_file",
    "redact_frames", "redact_image_file", "tesseract_available",
]
