"""The release plan: for every indexed series, what the workflow makes of it and what is released.

One place decides, from the private index and the config, which series go into
``release/sourcedata/dicom`` and which are withheld (with the reason). The
workflow reads the plan to build its job list; the report lists the withheld
series. Privacy first: a series that may carry identifying pixels (burned-in
text, a face) is withheld until the stage that cleans those pixels has run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .fileio import write_text_if_changed
from .index import DatasetIndex, Series
from .layout import Layout
from .records import write_tsv

#: BIDS datatypes whose head images are defaced before release.
DEFACE_DATATYPES = ("anat", "ct")

#: The withheld reason of a series that has no DICOM at all (an image of a BIDS input):
#: the review sheet and the report list no DICOM item for it.
NO_DICOM_REASON = "input is BIDS: no DICOM"

#: Modalities whose volumes can show a face when rendered in 3D.
FACE_MODALITIES = ("MR", "CT", "PT", "NM")

#: Converted volumes with at least this many slices (files or frames) are planned for
#: defacing (anat, ct) or their DICOM withheld (other datatypes). 20 let an 18-slice
#: sagittal head T1 out undefaced (issue #18): 10 slices of 5 mm already span a face. A slice count only adds series to the
#: face rule; it exempts none: every converted image is face-checked by its renders, every
#: series released as DICOM without conversion by its pixels (:attr:`SeriesPlan.face_screen`).
FACE_MIN_SLICES = 10


@dataclass(frozen=True)
class SeriesPlan:
    """What the workflow does with one series.

    ``target`` is the BIDS classification (``{"datatype", "suffix", ...}``,
    ``{"skip": ...}`` or ``{"unmatched": ...}``; empty when conversion is off).
    """

    subject: str
    session: str
    series: str
    modality: str
    release_dicom: bool
    reason: str  # why the DICOM is withheld ('' when released)
    target: dict = field(default_factory=dict)
    deface: bool = False
    redact: bool = False  # pixels read for burned-in text (and cleaned) before anything is made of them
    defaced_dicom: bool = False  # the DICOM is released as rewritten with the defaced pixels
    text_mode: str = ""  # "read" (2D: every image and frame) or "screen" (volume slices); "" when not read
    has_dicom: bool = True  # False for an image of a BIDS input (there is no DICOM to release)

    @property
    def convert(self) -> bool:
        return "datatype" in self.target

    @property
    def face_screen(self) -> bool:
        """The text stage also looks for a face in the pixels: the DICOM is released and no
        converted image's face check (nor a defacing) judges it (a secondary capture, a
        localizer, an unmatched series; issue #18)."""
        return self.has_dicom and self.release_dicom and self.redact and not self.convert


def slice_count(s: Series) -> int:
    """Slices of a series: its files, or the frames of a single multi-frame file."""
    frames = 0
    for e in s.files:
        try:
            frames += max(1, int(e.fields.get("NumberOfFrames") or 1))
        except ValueError:
            frames += 1
    return frames


def face_risk_reason(s: Series) -> str:
    """Why a series may show a face (``''`` when it cannot): one rule for both inputs.

    Its modality is one of :data:`FACE_MODALITIES` and it spans at least
    :data:`FACE_MIN_SLICES` along every axis it has: the slices (files or frames) of a DICOM
    series, each axis of the voxel grid (``shape``) of a BIDS input image, so that a 3D
    rendering can show a surface.
    """
    modality = s.fields.get("Modality", "")
    shape = s.fields.get("shape")
    if shape is not None:  # an image of a BIDS input: its voxel grid (i, j, k)
        dims = (list(shape)[:3] + [1, 1, 1])[:3]
        extent, what = min(dims), f"{dims[0]}x{dims[1]}x{dims[2]} voxels"
    else:
        extent = slice_count(s)
        what = f"{extent} slices"
    if modality in FACE_MODALITIES and extent >= FACE_MIN_SLICES:
        return f"{modality} volume of {what} may show a face"
    return ""


def classification_fields(s: Series) -> dict:
    """The index fields the BIDS heuristics match on (private: descriptions may identify)."""
    f = s.fields
    return {
        "SeriesDescription": f.get("SeriesDescription", ""),
        "ProtocolName": f.get("ProtocolName", ""),
        "ImageType": f.get("ImageType", ""),
        "Modality": f.get("Modality", ""),
        "SeriesNumber": f.get("SeriesNumber", ""),
        "n_images": slice_count(s),
        "series_label": s.series,
    }


def text_mode(s: Series, target: dict) -> str:
    """How the text stage reads a series: ``"screen"`` for a volume that is converted, else ``"read"``.

    Every series is read (issue 19): descriptions, modalities and slice counts
    only choose how, never whether. A converted volume's slices are screened
    by the detector and read carefully at the first, middle, last and
    DERIVED/SECONDARY slices; everything else (localizers, scouts, screen
    saves, secondary captures, ultrasound, unmatched or skipped series of any
    modality) is read image by image and frame by frame.
    """
    return "screen" if "datatype" in target and not s.pixel_cleaning else "read"


def plan_series(s: Series, release_dicom: bool = True, rules: list[dict] | None = None,
                redact: bool = True, deface_enabled: bool = True) -> SeriesPlan:
    """Plan one series; ``rules`` are the BIDS heuristics (None: no conversion).

    With ``redact``, every series goes through the text stage (:func:`text_mode`)
    and its DICOM is released from there (image by image when read, as a whole
    when screened) or, for a head volume, rewritten defaced from there; without,
    no pixels are read and every series' DICOM is withheld."""
    from .convert import classify_series

    target: dict = {}
    if rules is not None and not s.pixel_cleaning:
        target = classify_series(classification_fields(s), rules)
    face = face_risk_reason(s)
    deface = bool(face) and target.get("datatype") in DEFACE_DATATYPES
    mode = text_mode(s, target)
    reason = ""
    if not release_dicom:
        reason = "deid.release_dicom is off"
    elif not redact:
        why = f" ({s.pixel_cleaning})" if s.pixel_cleaning else ""
        reason = f"pixels may carry burned-in text{why}: withheld (redaction is off, nothing was read)"
    elif face and "datatype" in target and not (deface and deface_enabled):
        reason = f"{face}: withheld until defaced DICOM exists"
    # a volume that is not converted (unmatched, skipped) is judged by its pixels instead:
    # the text stage's face screen withholds it when its render shows a face (face_screen)
    return SeriesPlan(s.subject, s.session, s.series, s.fields.get("Modality", ""), not reason, reason, target,
                      deface, redact=redact,
                      defaced_dicom=bool(release_dicom and deface and deface_enabled),
                      text_mode=mode if redact else "")


def make_plan(index: DatasetIndex, release_dicom: bool = True, rules: list[dict] | None = None,
              redact: bool = True, deface_enabled: bool = True) -> list[SeriesPlan]:
    return [plan_series(s, release_dicom, rules, redact, deface_enabled) for s in index.series]


def plan_bids(index: DatasetIndex) -> list[SeriesPlan]:
    """The release plan of a BIDS input (:func:`neurodeid.inputs.bids.build_bids_index`):
    every indexed image keeps its BIDS name.

    ``target`` is ``{"datatype", "suffix", "entities"}`` from the input name (entities
    other than sub/ses, in BIDS order); there is no DICOM (``has_dicom`` False, withheld
    with :data:`NO_DICOM_REASON`); ``deface`` is True for images of
    :data:`DEFACE_DATATYPES` that may show a face (:func:`face_risk_reason`, the rule of
    DICOM input). A ``defacemask`` image is skipped (neurodeid makes its own defacing; the
    input's mask is not released).
    """
    out = []
    for s in index.series:
        f = s.fields
        if f.get("BidsSuffix") == "defacemask":
            target: dict = {"skip": "input defacemask: neurodeid defaces the images itself"}
        else:
            target = {"datatype": f["BidsDatatype"], "suffix": f["BidsSuffix"], "entities": dict(f["BidsEntities"])}
        deface = target.get("datatype") in DEFACE_DATATYPES and bool(face_risk_reason(s))
        out.append(SeriesPlan(s.subject, s.session, s.series, f.get("Modality", ""), False,
                              NO_DICOM_REASON, target, deface, redact=False, defaced_dicom=False,
                              has_dicom=False))
    return out


def target_text(p: SeriesPlan) -> str:
    t = p.target
    if "datatype" in t:
        ent = "".join(f"_{k}-{v}" for k, v in sorted(t.get("entities", {}).items()))
        return f"{t['datatype']}/{t['suffix']}{ent}" + (" (defaced; DICOM rewritten defaced)" if p.defaced_dicom
                                                          else " (defaced)" if p.deface else "")
    if "skip" in t:
        return f"skipped: {t['skip']}"
    if "unmatched" in t:
        return f"unmatched: {t['unmatched']}"
    return "not converted (2D: burned-in text redaction)" if p.text_mode == "read" else "not converted"


#: Columns of ``release_plan.tsv``: the first seven for the reader (``bids`` is
#: :func:`target_text`), the last three the flags other stages decide on (never the prose).
PLAN_COLUMNS = ("subject", "session", "series", "modality", "release_dicom", "withheld_reason", "bids",
                "convert", "deface", "dicom")

#: Values of the ``dicom`` column besides a stage of :data:`DICOM_STAGES`.
DICOM_WITHHELD, DICOM_NONE = "withheld", "none"


def subject_plan_path(private_dir, subject: str) -> Path:
    """Where one subject's plan is kept (private: it holds series descriptions)."""
    return Path(Layout(os.fspath(private_dir)).subject_file("plan", subject))


#: Stages whose DICOM output may be released (:func:`dicom_stage`).
DICOM_STAGES = ("deid", "redact", "deface_dicom")


def dicom_stage(p: SeriesPlan) -> str:
    """The stage whose DICOM output is released (``''``: the DICOM is withheld)."""
    if not p.release_dicom:
        return ""
    return "deface_dicom" if p.defaced_dicom else "redact" if p.redact else "deid"


def dicom_column(p: SeriesPlan) -> str:
    """The plan's ``dicom`` flag: the stage released from, ``withheld`` or ``none`` (no DICOM)."""
    if not p.has_dicom:
        return DICOM_NONE
    return dicom_stage(p) or DICOM_WITHHELD


def subject_plans(plan: list[SeriesPlan], index: DatasetIndex, deface_enabled: bool = True) -> dict[str, dict]:
    """One plan per subject, for its release job (:func:`neurodeid.release.subject.release_subject`).

    ``{"subject", "deface_enabled", "sessions": {session: {"classification": [the
    classification fields of its converted series], "series": {label: {"convert",
    "deface", "dicom_stage"}}}}}``.
    """
    by_label = {(s.subject, s.session, s.series): s for s in index.series}
    out: dict[str, dict] = {}
    for p in plan:
        subj = out.setdefault(p.subject, {"subject": p.subject, "deface_enabled": bool(deface_enabled),
                                          "sessions": {}})
        ses = subj["sessions"].setdefault(p.session, {"classification": [], "series": {}})
        if p.convert:
            ses["classification"].append(classification_fields(by_label[(p.subject, p.session, p.series)]))
        ses["series"][p.series] = {"convert": p.convert, "deface": p.deface, "dicom_stage": dicom_stage(p)}
    return out


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def write_plan(plan: list[SeriesPlan], private_dir: str | os.PathLike, index: DatasetIndex | None = None,
               deface_enabled: bool = True) -> Path:
    """Write ``private/release_plan.tsv`` and, with ``index``, one JSON per subject
    (:func:`subject_plans`), each only when it changed."""
    import json

    if index is not None:
        for sub, content in subject_plans(plan, index, deface_enabled).items():
            write_text_if_changed(subject_plan_path(private_dir, sub), json.dumps(content, indent=1) + "\n")
    path = Path(Layout(os.fspath(private_dir)).private_file("release_plan.tsv"))
    rows = [[f"sub-{p.subject}", f"ses-{p.session}", p.series, p.modality, _yes(p.release_dicom), p.reason,
             target_text(p), _yes(p.convert), _yes(p.deface), dicom_column(p)] for p in plan]
    return write_tsv(path, PLAN_COLUMNS, rows, if_changed=True)
