"""Exceptions of :mod:`neurodeid.redact`."""


class RedactionError(Exception):
    """Base class: an image could not be redacted.

    Messages name the file (when known), what was wrong and what to do; they
    never contain identifying text read from the image.
    """


class RedactionConfigError(RedactionError, ValueError):
    """A redaction setting or region rule is invalid."""


class OCRUnavailableError(RedactionError):
    """Tesseract (Debian ``tesseract-ocr``) or ``pytesseract`` is missing."""


class UnsupportedImageError(RedactionError):
    """The pixel data cannot be decoded or written back losslessly."""
