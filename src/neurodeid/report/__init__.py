"""The review report's summary: what the run made of every series, and may the release be sent.

Reads the private files a run leaves under ``results/private/`` (the index, the
release plan, the BIDS names, the release listings, the redaction, defacing and
morphometry results, the quarantine list and the audit table) and writes

- ``summary.html``: the dataset summary page (counts, the send verdict, one row
  per subject and per series);
- ``summary_counts.rst``: the same counts and verdict in reStructuredText, included on
  the landing page of Snakemake's report (``workflow/report/workflow.rst``);
- ``quarantine.html``, ``withheld.html``, ``audit.html``: the tables a reviewer
  checks (the audit page names files and attributes, never an identifying value);
- ``subjects/sub-<label>.html``: one page per subject.

All of it is private: the quarantine page names raw file paths. Every other page
shows only pseudonyms, series labels, modalities and BIDS names; no series
description, date, UID or raw ID is copied into the summary.

Run as ``neurodeid report-summary PRIVATE_DIR --out-dir DIR`` (:mod:`neurodeid.cli.report`).
The module never imports snakemake.
"""

from .._exports import module_getattr

#: The modules of the package, in dependency order; their names are the package's.
_MODULES = ('summary', 'pages')

__getattr__ = module_getattr(__name__, _MODULES)
