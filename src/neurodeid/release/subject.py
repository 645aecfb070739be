"""One subject's release: name its images, apply the exclusions and the reviewer's
decisions, and put its BIDS sessions and DICOM series into the release folder.

The workflow runs this once per subject (one ``release_subject`` job) from a private
*subject plan* written when the workflow is parsed (:func:`neurodeid.plan.write_plan`):
for every session, the classification fields of its converted series and, for every
series, which stage's output is released. The stage outputs it reads are where
:class:`neurodeid.layout.Layout` puts them: the converted, defaced and morphometry
folders and the DICOM to release under ``work/``, the defacing and face-check results
under ``private/``.

Only pseudonymous labels and fixed text are handled here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import review
from ..layout import Layout
from ..plan import DICOM_STAGES
from ..results import StageStatus, read_stage_result
from .dataset import copy_dir_atomic, folder_files
from .session import name_session, release_session

@dataclass
class SubjectRelease:
    """What :func:`release_subject` did: released files, notes, names and decisions applied."""

    files: list[Path] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)  # {"series": "ses-T/<label>", "status", "reason"}
    names: dict = field(default_factory=dict)  # session -> name_session() output
    applied: list[dict] = field(default_factory=list)


def read_subject_plan(path: str | os.PathLike) -> dict:
    """A subject plan written by :func:`neurodeid.plan.write_plan` (private JSON)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _session_names(subject: str, session: str, ses_plan: dict, lay: Layout, rules: list[dict]) -> dict:
    rows = ses_plan.get("classification", [])
    conversions = {}
    for r in rows:
        result = Path(lay.convert_result(subject=subject, session=session, series=r["series_label"]))
        if result.is_file():
            conversions[r["series_label"]] = read_stage_result(result, "convert")
    if conversions and all(c.measures.get("source") == "bids" for c in conversions.values()):
        from ..convert.bids_import import session_names  # a BIDS input: the names are the input's own

        return session_names(subject, session, conversions)
    try:
        return name_session(subject, session, rows, conversions, rules)
    except ValueError as exc:  # e.g. two series named alike: the session is withheld, the run goes on
        return {r["series_label"]: {"failed": f"BIDS naming: {exc}; fix convert.heuristics"} for r in rows}


def release_subject(plan: dict, *, work_dir, private_dir, release_dir, tmp_dir, rules: list[dict],
                    decisions: dict[str, tuple[str, str]] | None = None, nrrd: bool = True) -> SubjectRelease:
    """Release every session and DICOM series of one subject.

    Parameters
    ----------
    plan : dict
        :func:`read_subject_plan` output: ``{"subject", "deface_enabled", "sessions":
        {session: {"classification": [...], "series": {label: {"convert", "deface",
        "dicom_stage"}}}}}``; ``dicom_stage`` is one of :data:`DICOM_STAGES`, or empty
        when the series' DICOM is withheld.
    work_dir, private_dir : path-like
        Where the stage outputs are (layout in the module docstring).
    release_dir, tmp_dir : path-like
        The release folder, and a folder outside it (same file system) where each
        session and series is built before it is renamed into place.
    rules : list of dict
        The BIDS heuristics (:func:`neurodeid.convert.load_heuristics`).
    decisions : dict, optional
        item -> (decision, note): the reviewer's decisions on this subject's items.
    nrrd : bool
        Also write NRRD copies of anat/ct images.

    Returns
    -------
    SubjectRelease
    """
    lay = Layout(private=os.fspath(private_dir), work=os.fspath(work_dir), release=os.fspath(release_dir))
    decisions = decisions or {}
    out = SubjectRelease()
    for session in sorted(plan["sessions"]):
        try:
            _release_session(plan, session, lay, tmp_dir, rules, decisions, nrrd, out)
        except Exception as exc:  # noqa: BLE001 - one session that cannot be released is withheld
            # with the reason; the subject's other sessions and the run go on
            out.notes.append({"series": f"ses-{session}", "status": StageStatus.FAILED,
                              "reason": f"release failed: {type(exc).__name__}: {' '.join(str(exc).split())}"})
    return out


def _release_session(plan: dict, session: str, lay: Layout, tmp_dir, rules: list[dict],
                     decisions: dict, nrrd: bool, out: SubjectRelease) -> None:
    """Release one session of :func:`release_subject` (its BIDS images and DICOM series) into ``out``."""
    subject = plan["subject"]
    release_dir = lay.release
    ses_plan = plan["sessions"][session]
    series = ses_plan.get("series", {})
    ses_decisions, dicom_decisions = {}, {}
    for item, d in decisions.items():
        sub, ses, dicom = review.item_session(item)
        if (sub, ses) == (subject, session):
            (dicom_decisions if dicom else ses_decisions)[item] = d
    # -- BIDS images -------------------------------------------------------
    if ses_plan.get("classification"):
        names = _session_names(subject, session, ses_plan, lay, rules)
        out.names[session] = names
        sources, converted, deface, morph, faces = {}, {}, {}, {}, {}
        for label, s in series.items():
            if not s.get("convert"):
                continue
            ids = {"subject": subject, "session": session, "series": label}
            converted[label] = Path(lay.work_dir("convert", **ids))
            if not s.get("deface"):
                sources[label] = converted[label]
                # not planned for defacing: released only where the face check saw no face
                faces[label] = Path(lay.result("face", **ids))
            elif plan.get("deface_enabled", True):
                sources[label] = Path(lay.work_dir("deface", **ids))
                deface[label] = Path(lay.result("deface", **ids))
                morph[label] = Path(lay.work_dir("morphometry", **ids))
        auto, extras, verdicts = review.session_exclusions(names, deface, morph, faces)
        excluded, applied = review.apply_decisions(names, auto, ses_decisions, verdicts)
        files, notes = release_session(names, sources, release_dir, tmp_dir, subject, session,
                                       converted=converted, nrrd=nrrd, excluded=excluded, extras=extras)
        out.files += files
        out.notes += [dict(n, series=f"ses-{session}/{n['series']}") for n in notes]
        out.applied += applied
    # -- DICOM series --------------------------------------------------------
    for label in sorted(series):
        stage = series[label].get("dicom_stage", "")
        if not stage:
            continue
        if stage not in DICOM_STAGES:
            raise ValueError(f"subject plan of sub-{subject}: series {label}: unknown dicom_stage {stage!r}")
        ids = {"subject": subject, "session": session, "series": label}
        src = Path(lay.work_dir(stage, **ids))
        item = review.dicom_series_item(subject, session, label)
        if stage == "deid" and not series[label].get("deface"):
            face = review.dicom_face_reason(Path(lay.result("face", **ids)))
            if face:  # the DICOM holds the same face as its converted image
                out.notes.append({"series": f"ses-{session}/{label}", "status": StageStatus.WITHHELD,
                                  "reason": f"DICOM withheld, a face: {face}"})
                continue
        keep, applied = review.apply_dicom_decisions(item, folder_files(src), dicom_decisions)
        if src.is_dir():
            out.files += copy_dir_atomic(src, Path(release_dir) / item, tmp_dir, only=keep)
        out.applied += applied


def release_subject_job(plan_json, *, work_dir, private_dir, release_dir, tmp_dir, heuristics, decisions_file,
                        names_json, listing_tsv, applied_json, nrrd: bool = True) -> tuple[dict, SubjectRelease]:
    """One release job: :func:`release_subject` for the subject plan in ``plan_json``, then
    its private records: the BIDS names (``names_json``), the listing of released files with
    the notes on what was withheld (``listing_tsv``) and the reviewer's decisions applied
    (``applied_json``). Returns the plan and the release."""
    from ..convert import load_heuristics
    from ..fileio import write_text_atomic
    from .dataset import write_listing

    plan = read_subject_plan(plan_json)
    r = release_subject(plan, work_dir=work_dir, private_dir=private_dir, release_dir=release_dir, tmp_dir=tmp_dir,
                        rules=load_heuristics(heuristics or None),
                        decisions=review.load_decisions_file(decisions_file), nrrd=nrrd)
    write_text_atomic(names_json, json.dumps(r.names, indent=1, sort_keys=True) + "\n")
    write_listing(listing_tsv, r.files, release_dir, r.notes)
    review.write_applied(applied_json, r.applied)
    return plan, r
