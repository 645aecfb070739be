"""The ``neurodeid`` command line: thin adapters over the library, one subcommand per
workflow step.

The Snakemake rules call these subcommands (``shell: "neurodeid ..."``) so that every step
runs in its own process, locally or on a cluster, with the same code a user can run by
hand. Errors a user can act on are printed as one message (no traceback) and exit with
status 1. :mod:`.commands` holds the adapters and the parser; :mod:`.deface` and
:mod:`.report` the two commands with their own argument sets.
"""

from .commands import build_parser, main

__all__ = ["build_parser", "main"]
