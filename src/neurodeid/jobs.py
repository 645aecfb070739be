"""Jobs that run several stages on one series in one process (issue 21: the workflow's
fixed cost grows with its job count, about 2-4 ms per job at thousands of series).

Each function calls the stages' own job functions in sequence, with the arguments and
records they have as separate jobs; only the number of Snakemake jobs changes:

- :func:`deid_text_series_job`: de-identification, then the text stage on its output
  (when ``redact.enabled``);
- :func:`convert_face_check_job`: conversion, then the face check of its images (a series
  planned for defacing is checked by its defacing job);
- :func:`series_job`: both in turn, the series' one job before defacing (rule
  ``deid_series``). A series the plan does not convert gets an empty conversion folder and
  records that say so (:func:`conversion_not_planned`): a rule has one set of outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .results import StageResult, StageStatus, write_stage_result


@dataclass(frozen=True)
class TextStage:
    """Where and how the text stage reads a de-identified series (``neurodeid redact``'s arguments)."""

    out_dir: str | os.PathLike
    result: str | os.PathLike
    qc_dir: str | os.PathLike
    qc: str | os.PathLike
    config: object  # a neurodeid.redact.RedactionConfig
    mode: str = "read"
    face_screen: bool = False  # a series released as DICOM without conversion


@dataclass
class DeidTextOutcome:
    needles: int
    unreadable: int
    deid: list[dict]
    text: StageResult | None


def deid_text_series_job(files, out_dir, report_tsv, cfg, *, needles_out: str | os.PathLike = "",
                         min_length: int = 3, text: TextStage | None = None) -> DeidTextOutcome:
    """One series: its audit needles from the raw files (when ``needles_out``), its files
    de-identified (:func:`neurodeid.deid.series.deid_series_job`), then, with ``text``, the
    de-identified files read for burned-in text (:func:`neurodeid.redact.series.run_series`,
    with the needles just written)."""
    from .audit.needles import collect_series_needles, load_needles
    from .deid.series import deid_series_job
    from .redact.series import run_series

    n, unreadable = (collect_series_needles(files, cfg.options, min_length, needles_out)
                     if needles_out else (0, 0))
    results = deid_series_job(files, out_dir, report_tsv, cfg)
    text_result = None
    if text is not None:
        needles = [[x.text, x.source] for x in load_needles([needles_out])] if needles_out else []
        text_result = run_series(out_dir, text.out_dir, text.result, text.config, needles,
                                 mode=text.mode, qc_dir=text.qc_dir, qc_png=text.qc,
                                 face_screen=text.face_screen)
    return DeidTextOutcome(n, unreadable, results, text_result)


def convert_face_check_job(dicom_dir, out_dir, result_json, face_result, dcm2niix: str | None = None,
                           *, check: bool = True, qc_dir: str | os.PathLike | None = None
                           ) -> tuple[StageResult, int, StageResult]:
    """One series: converted (:func:`neurodeid.convert.convert_series_job`), then, with
    ``check`` (a series not planned for defacing), every converted image looked at for a face
    (:func:`neurodeid.deface.series.face_check_series`; a failed conversion leaves an empty
    folder, checked as before). Without ``check`` (a series planned for defacing: the
    defacing job looks for its face) the face record lists each image as ``skipped``, with
    the reason, so that the rule has one set of outputs whatever the plan says. ``qc_dir``:
    where the face check draws its pictures."""
    from .convert import convert_series_job
    from .deface.series import face_check_series, face_check_skipped

    result, n_files = convert_series_job(dicom_dir, out_dir, result_json, dcm2niix)
    face = face_check_series(out_dir, face_result, qc_dir) if check else face_check_skipped(out_dir, face_result)
    return result, n_files, face


@dataclass(frozen=True)
class ConvertStage:
    """Where the conversion of a series writes (``neurodeid convert``'s arguments).

    ``planned`` False: the plan does not convert the series (``why_not`` says why), and
    ``face_check`` False: a series planned for defacing (its defacing job looks for the face).
    ``face_qc_dir``: where the face check draws what it saw on an image with a face.
    """

    out_dir: str | os.PathLike
    result: str | os.PathLike
    face_result: str | os.PathLike
    dcm2niix: str | None = None
    planned: bool = True
    face_check: bool = True
    why_not: str = ""
    face_qc_dir: str | os.PathLike | None = None


@dataclass
class SeriesOutcome:
    deid: DeidTextOutcome
    convert: StageResult | None
    n_converted_files: int
    face: StageResult | None


def conversion_not_planned(stage: ConvertStage) -> tuple[StageResult, StageResult]:
    """The records of a series the plan does not convert: an empty folder, a ``skipped``
    conversion result with the plan's reason, a face record with no image."""
    Path(stage.out_dir).mkdir(parents=True, exist_ok=True)
    result = StageResult("convert", StageStatus.SKIPPED, stage.why_not or "not planned for conversion")
    write_stage_result(stage.result, result)
    face = StageResult.from_dict("face", {"images": []})
    write_stage_result(stage.face_result, face)
    return result, face


def series_job(files, out_dir, report_tsv, cfg, *, needles_out: str | os.PathLike = "",
               min_length: int = 3, text: TextStage | None = None,
               convert: ConvertStage | None = None) -> SeriesOutcome:
    """One series before defacing: :func:`deid_text_series_job`, then, with ``convert``,
    :func:`convert_face_check_job` on what the text stage let through (or on the
    de-identified files when there is no text stage), or :func:`conversion_not_planned`."""
    deid = deid_text_series_job(files, out_dir, report_tsv, cfg, needles_out=needles_out,
                                min_length=min_length, text=text)
    if convert is None:
        return SeriesOutcome(deid, None, 0, None)
    if convert.face_qc_dir is not None:  # a declared output of the job, whatever the plan says
        Path(convert.face_qc_dir).mkdir(parents=True, exist_ok=True)
    if not convert.planned:
        result, face = conversion_not_planned(convert)
        return SeriesOutcome(deid, result, 0, face)
    source = text.out_dir if text is not None else out_dir
    result, n, face = convert_face_check_job(source, convert.out_dir, convert.result, convert.face_result,
                                             convert.dcm2niix, check=convert.face_check,
                                             qc_dir=convert.face_qc_dir)
    return SeriesOutcome(deid, result, n, face)
