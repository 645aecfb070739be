"""One job of the morphometry stage: every defaced image of a series measured against its
original and judged, or the summary over every image of the run.

Neither function raises for one image: an image that cannot be measured is a FAIL with the
reason (no measure, no release).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..failure import failure_reason
from ..fileio import write_text_atomic
from ..records import write_tsv
from ..results import Check, StageStatus, read_stage_result
from .measures import MorphometryThresholds, compare_images, plot_summary, read_tsv, summarize, verdict, write_image_tsv

#: The defacing margin (mm) used when a defacing result does not record its own.
DEFAULT_MARGIN_MM = 6.0


def morphometry_series(convert_dir: str | os.PathLike, deface_dir: str | os.PathLike,
                       deface_result: str | os.PathLike, out_dir: str | os.PathLike, out_tsv: str | os.PathLike,
                       label: str, thresholds: MorphometryThresholds | None = None) -> list[dict]:
    """Measure and judge every image the defacing result lists as ``ok``.

    One TSV per image in ``out_dir`` (``<stem>.tsv``, the image named ``<label>/<file>``,
    with the face check's columns beside the brain's), and their table in ``out_tsv``
    (a header only when nothing was defaced). The independent brain check keeps the
    defacing's own ``brain_margin_mm``.

    Returns
    -------
    list of dict
        ``{"image", "verdict", "reasons"}`` per measured image.
    """
    from ..deface.face import table_columns as face_columns

    thresholds = thresholds or MorphometryThresholds()
    deface = read_stage_result(deface_result, "deface")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tsvs, verdicts = [], []
    for im in deface.images:
        if im["status"] != StageStatus.OK:
            continue  # not defaced: not released either
        name = im["image"]
        stem = name[: -len(".nii.gz")]
        try:
            margin = (im.get("summary") or {}).get("params", {}).get("brain_margin_mm", DEFAULT_MARGIN_MM)
            m = compare_images(Path(convert_dir) / name, Path(deface_dir) / name,
                               Path(deface_dir) / f"{stem}_removal.nii.gz", brain_margin_mm=float(margin))
            v = verdict(m, thresholds)
        except Exception as exc:  # noqa: BLE001 - no measure, no release: FAIL with the reason
            m, v = {}, {"verdict": Check.FAIL, "reasons": [f"morphometry could not run: {failure_reason(exc, name)}"]}
        m = {**m, **face_columns(im.get("summary") or {})}  # the face check beside the brain's
        tsvs.append(write_image_tsv(out_dir / f"{stem}.tsv", m, v, image=f"{label}/{name}"))
        verdicts.append({"image": name, **v})
    if tsvs:
        summarize(tsvs, out_tsv)
    else:
        Path(out_tsv).write_text("image\tverdict\n", encoding="utf-8")
    return verdicts


def morphometry_summary(tables, out_tsv: str | os.PathLike, plot_png: str | os.PathLike,
                        failed_tsv: str | os.PathLike,
                        thresholds: MorphometryThresholds | None = None) -> dict[str, int]:
    """One table (``out_tsv``) and one plot (``plot_png``) over every image's table, and the
    FAIL rows alone (``failed_tsv``); returns the count of each verdict."""
    tsvs = [p for p in tables if len(read_tsv(p))]
    if tsvs:
        summarize(tsvs, out_tsv)
        rows = read_tsv(out_tsv)
    else:
        write_text_atomic(out_tsv, "image\tverdict\n")
        rows = []
    plot_summary(out_tsv if rows else [], plot_png, thresholds or MorphometryThresholds())
    failed = [r for r in rows if r.get("verdict") == Check.FAIL]
    write_tsv(failed_tsv, list(rows[0]) if rows else ["image", "verdict"], failed)
    return {k.value: sum(r.get("verdict") == k for r in rows) for k in Check}
