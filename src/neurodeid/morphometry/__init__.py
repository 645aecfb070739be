"""Morphometry checks: did defacing leave the brain alone?

:mod:`.measures` extracts the brain and segments tissue on the original and the defaced
image and compares them (units, orientation and the pipeline are documented there);
:mod:`.series` is one workflow job: every defaced image of a series measured and judged,
and the summary over all images.
"""

from . import measures
from .measures import (
    MEASURE_COLUMNS,
    TISSUES,
    HeadAnalysis,
    MorphometryError,
    MorphometryThresholds,
    analyse_head,
    compare_arrays,
    compare_images,
    independent_brain_check,
    plot_summary,
    read_tsv,
    summarize,
    verdict,
    write_image_tsv,
)
from .series import morphometry_series, morphometry_summary

__all__ = [*measures.__all__, "morphometry_series", "morphometry_summary"]
