"""One series of the defacing stage: every converted image defaced (or checked for a face),
one result per series, the QC pictures the report shows.

Each function is what one workflow job does (``neurodeid deface-series``,
``neurodeid face-check-series``); it never raises for one image: a failure is recorded with
its reason and the image is withheld by the release.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..failure import failure_reason
from ..fileio import write_placeholder_png
from ..results import StageResult, StageStatus, write_stage_result

#: The two QC pictures of a series the report shows (first image that has them).
#: The pictures of one image's defacing that go into the report, in the order the report
#: shows them: slices, the 3-D render before/after, and the face detector's renders
#: before/after with its boxes (:func:`neurodeid.deface.api.deface_file`).
REPORT_PICTURES = ("deface_triplanar.png", "deface_render.png", "deface_faces.png")


def _qc_names(qc_root: Path, stem: str) -> list[str]:
    """The QC pictures the defacing of one image left in ``qc_root/stem/``, as paths
    relative to ``qc_root`` (the report's pictures first, in :data:`REPORT_PICTURES` order)."""
    made = sorted(p.name for p in (qc_root / stem).glob("*.png"))
    ordered = [n for n in REPORT_PICTURES if n in made] + [n for n in made if n not in REPORT_PICTURES]
    return [f"{stem}/{n}" for n in ordered]


def _stem(name: str) -> str:
    return name[: -len(".nii.gz")]


def deface_series(convert_dir: str | os.PathLike, out_dir: str | os.PathLike, result: str | os.PathLike,
                  qc_dir: str | os.PathLike, triplanar: str | os.PathLike, render: str | os.PathLike,
                  method: str, params: dict | None = None, faces: str | os.PathLike | None = None) -> StageResult:
    """Deface every ``*.nii.gz`` of ``convert_dir`` into ``out_dir``.

    Next to each defaced image: ``<stem>_removal.nii.gz`` (the removal mask) and
    ``<stem>_protected.nii.gz`` (the protected brain), both private. QC pictures go to
    ``qc_dir/<stem>/``; the first image's triplanar, render and (with ``faces``) face
    detector renders are copied to ``triplanar``, ``render`` and ``faces`` (a black
    placeholder when no image has them).

    Returns (and writes to ``result``) the defacing result: ``{"method", "images": [{"image",
    "status": "ok" | "failed", "reason", "summary", "qc"}]}`` (``qc``: the image's pictures,
    relative to ``qc_dir``); a failed image leaves no partial file.
    """
    from . import DefaceError, deface_file

    out_dir, qc_root = Path(out_dir), Path(qc_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    qc_root.mkdir(parents=True, exist_ok=True)  # declared: exists even when every image fails
    rows = []
    for im in sorted(Path(convert_dir).glob("*.nii.gz")):
        stem = _stem(im.name)
        outputs = (out_dir / im.name, out_dir / f"{stem}_removal.nii.gz", out_dir / f"{stem}_protected.nii.gz")
        try:
            summary = deface_file(im, outputs[0], method=method, params=params or {},
                                  mask_out=outputs[1], brain_mask_out=outputs[2], qc_dir=qc_root / stem)
            rows.append({"image": im.name, "status": StageStatus.OK, "reason": "", "summary": summary})
        except Exception as exc:  # noqa: BLE001 - DefaceError or a crash: loud, the image is
            # withheld; the run goes on
            for partial in outputs:
                partial.unlink(missing_ok=True)
            reason = str(exc) if isinstance(exc, DefaceError) else failure_reason(exc, im.name)
            rows.append({"image": im.name, "status": StageStatus.FAILED, "reason": reason, "summary": {}})
            print(f"deface: FAILED {reason if reason.startswith(im.name) else im.name + ': ' + reason}",
                  file=sys.stderr)
        rows[-1]["qc"] = _qc_names(qc_root, stem)
    for declared, produced in zip((triplanar, render, faces), REPORT_PICTURES):
        if declared is None:
            continue
        first = next((qc_root / _stem(r["image"]) / produced for r in rows
                      if (qc_root / _stem(r["image"]) / produced).is_file()), None)
        if first is not None:
            shutil.copyfile(first, declared)
        else:
            write_placeholder_png(declared)
    record = StageResult("deface", images=rows, measures={"method": method})
    write_stage_result(result, record)
    return record


def face_check_series(convert_dir: str | os.PathLike, result: str | os.PathLike,
                      qc_dir: str | os.PathLike | None = None) -> StageResult:
    """Look for a face on the renders of every converted image of a series not planned for
    defacing (:func:`neurodeid.deface.face.check_folder`); writes and returns the record.
    With ``qc_dir`` (created, even empty): the detector's picture of each image with a face."""
    from .face import check_folder

    if qc_dir is not None:
        Path(qc_dir).mkdir(parents=True, exist_ok=True)
    record = StageResult.from_dict("face", check_folder(convert_dir, qc_dir))
    write_stage_result(result, record)
    return record


def face_check_skipped(convert_dir: str | os.PathLike, result: str | os.PathLike) -> StageResult:
    """The face record of a series planned for defacing: every converted image ``skipped``
    (its defacing job looks for the face and withholds it on failure); writes and returns it."""
    rows = [{"image": p.name, "status": StageStatus.SKIPPED, "summary": {},
             "reason": "planned for defacing: the defacing job looks for its face"}
            for p in sorted(Path(convert_dir).glob("*.nii.gz"))]
    record = StageResult.from_dict("face", {"images": rows})
    write_stage_result(result, record)
    return record
