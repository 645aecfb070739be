"""The release audit: what is identifying (:mod:`.needles`, collected from the raw data,
private) and the scan of every released file for it (:mod:`.scan`).

The names of both modules are available from the package (``audit.audit_release``,
``audit.load_needles``...).
"""

from . import needles, scan


def __getattr__(name: str):
    for module in (scan, needles):
        try:
            return getattr(module, name)
        except AttributeError:
            pass
    raise AttributeError(f"module 'neurodeid.audit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(dir(scan)) | set(dir(needles)))
