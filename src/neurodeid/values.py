"""Small predicates over attribute values, shared by the audit's needles
(:mod:`neurodeid.audit.needles`) and the quasi-identifier rules (:mod:`neurodeid.deid.quasi`),
so that both agree on what a value is."""

from __future__ import annotations


def is_number(text: str) -> bool:
    """True when ``text`` parses as a Python float (``"12"``, ``"-3.5e2"``, ``"nan"``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True
