"""The review loop: a reviewer's decisions change the release, incrementally and on record.

Automatic verdicts (defacing, morphometry, burned-in text redaction, the release
plan) are not the last word: a reviewer may *reject* an item that passed (a face
still visible, a series mapped to the wrong suffix) or *accept* one that warned
or failed a check that measures quality rather than privacy. This module

- writes the **review sheet** (:func:`write_review_sheet`, ``private/review.tsv``):
  one row per released or withheld *item* with its automatic verdict, the reasons
  and the QC pictures, and empty ``decision`` / ``note`` columns;
- reads the reviewer's edited copy (:func:`read_decisions`), checked against the
  JSON schema of a row and against the sheet (unknown subject or item, bad decision
  value, duplicated row, an ``accept`` that cannot be honoured: each stops the run
  with a message naming the line, the row and the column);
- splits the decisions into one small file per session and per DICOM series
  (:func:`split_decisions`), written only when their content changes, so that
  editing one decision reruns only the release job it concerns;
- applies them where the release is assembled (:func:`apply_decisions` for the BIDS
  images of a session, :func:`apply_dicom_decisions` for a ``sourcedata/dicom``
  series), as pure functions;
- keeps a changelog of the release (:func:`update_release_log`,
  ``private/release_log.tsv``): which items entered or left it at each run.

Items
-----
An item is named by its path in the release, without extension:

- a BIDS image: ``sub-X/ses-Y/anat/sub-X_ses-Y_run-1_T1w``;
- a series whose conversion failed or has not run: ``sub-X/ses-Y/s003``;
- a de-identified DICOM series: ``sourcedata/dicom/sub-X/ses-Y/s002``;
- one redacted 2D DICOM image: ``sourcedata/dicom/sub-X/ses-Y/s001/00001``.

Automatic verdicts
------------------
``PASS`` / ``WARN`` / ``FAIL`` come from a check (morphometry after defacing,
redaction's OCR verification, defacing itself, conversion); ``RELEASED`` means
released with no check that applies (a CT of a few slices, a DICOM series with no
face and no burned-in text); ``WITHHELD`` means the release plan keeps it out (a
face or burned-in text with no cleaned version, a config switch) or its stage has
not run yet.

What ``accept`` can and cannot do
---------------------------------
``accept`` brings back only an item whose *cleaned* version exists and whose
exclusion was about quality, not privacy (:data:`ACCEPT_RULES`). It can never
release an image whose defacing failed (no defaced image exists), an image whose
burned-in text redaction failed (no redacted image exists), a withheld series, or
anything the release audit flags: the audit runs after every decision and still
gates the whole run. ``reject`` always wins.

Privacy: every file written here holds pseudonyms, series labels, BIDS names,
fixed text and the reviewer's notes; all of it is private (``results/private``).
The module never imports snakemake.
"""

from .._exports import module_getattr

#: The modules of the package, in dependency order; their names are the package's.
_MODULES = ('verdicts', 'sheet', 'decisions', 'changelog')

__getattr__ = module_getattr(__name__, _MODULES)
