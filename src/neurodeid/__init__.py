"""neurodeid: make neuroimaging DICOM datasets safe to share.

The importable library behind the neurodeid Snakemake workflow. One module per
concern; the library never imports snakemake.
"""

__version__ = "0.1.0"
