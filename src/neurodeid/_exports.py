"""The public names of a package are the names of its modules, looked up on first use
(PEP 562): ``neurodeid.review.build_sheet`` is ``neurodeid.review.sheet.build_sheet``."""

from __future__ import annotations

from importlib import import_module


def module_getattr(package: str, modules: tuple[str, ...]):
    """A module-level ``__getattr__`` for ``package`` that finds a name in the first of its
    ``modules`` (in order) that defines it, imported only when first asked for."""

    def __getattr__(name: str):
        for module in modules:
            m = import_module(f"{package}.{module}")
            if name in vars(m):
                return vars(m)[name]
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
