"""The release: the dataset files (:mod:`.dataset`: description, participants, README,
listings of released files, atomic copies), one session's BIDS images (:mod:`.session`)
and one subject's release job (:mod:`.subject`, which applies the exclusions and the
reviewer's decisions).

The names of the three modules are available from the package.
"""

from importlib import import_module

_MODULES = ("dataset", "session", "subject")


def __getattr__(name: str):
    for module in _MODULES:
        m = import_module(f"{__name__}.{module}")
        if hasattr(m, name):
            return getattr(m, name)
    raise AttributeError(f"module 'neurodeid.release' has no attribute {name!r}")
