"""The two inputs a run can start from; each produces the same
:class:`neurodeid.index.DatasetIndex` (subjects, sessions and series with pseudonymous
labels), and every stage after the index is the same for both.

- DICOM: :func:`neurodeid.inputs.dicom.build_index` (header scan, grouping, labels);
- an existing BIDS dataset: :func:`neurodeid.inputs.bids.build_bids_index` (its images,
  their identifying values as audit needles); its conversion stage is
  :mod:`neurodeid.convert.bids_import`.
"""
