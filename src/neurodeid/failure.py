"""One line naming a failed item: used wherever one item fails and the run goes on."""

from __future__ import annotations


def failure_reason(exc: BaseException, name: str = "") -> str:
    """One line for a failed item: the error type and message, naming ``name`` once."""
    msg = " ".join(str(exc).split()) or "no message"
    if name and not msg.startswith(name):
        msg = f"{name}: {msg}"
    return f"{type(exc).__name__}: {msg}"
