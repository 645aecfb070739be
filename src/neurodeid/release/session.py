"""BIDS layout of a release: name every converted image of a session and put it in place.

Conversion (:mod:`neurodeid.convert`) writes each series' images into a work folder
with a ``conversion.json`` result; this module names them per session (runs, echoes,
parts, from :func:`neurodeid.convert.assign_bids_names`) and copies the chosen version
of each image (defaced where the plan defaces, converted otherwise) into
``release/sub-<label>/ses-<label>/<datatype>/``, plus NRRD copies under
``release/derivatives/neurodeid/nrrd/``.

Everything here handles pseudonymous labels and fixed text only: the series
descriptions that drive the naming stay in the private index.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..results import StageResult, StageStatus

#: Files of one converted image that follow the NIfTI into the release.
SIDECAR_EXTENSIONS = (".json", ".bval", ".bvec")

#: Datatypes whose NIfTI also gets an NRRD copy (config ``convert.nrrd``).
NRRD_DATATYPES = ("anat", "ct")


def name_session(subject: str, session: str, series_rows: list[dict], conversions: dict[str, StageResult],
                 rules: list[dict]) -> dict:
    """BIDS names for every converted image of one session.

    Parameters
    ----------
    subject, session : str
        Labels without ``sub-`` / ``ses-``.
    series_rows : list of dict
        :func:`neurodeid.plan.classification_fields` of the session's converted series.
    conversions : dict
        series label -> conversion result (:func:`neurodeid.results.read_stage_result`).
    rules : list of dict
        BIDS heuristics.

    Returns
    -------
    dict
        series label -> list of ``{"image": file name in the series' folder,
        "bids": relative path without extension}``; series whose conversion failed
        map to ``{"failed": reason}``.
    """
    from ..convert import assign_bids_names, bids_name

    rows = []
    out: dict = {}
    for row in series_rows:
        conv = conversions.get(row["series_label"])
        if conv is None or conv.status != StageStatus.OK or not conv.images:
            out[row["series_label"]] = {"failed": conv.reason if conv else "not converted"}
            continue
        rows.append(dict(row, outputs=[im["suffix_hint"] for im in conv.images]))
    names = assign_bids_names(rows, rules)
    for row in rows:
        label = row["series_label"]
        images = conversions[label].images
        entries = []
        for im, name in zip(images, names[label]):
            if "datatype" not in name:
                continue
            entries.append({"image": Path(im["nifti"]).name, "bids": bids_name(subject, session, name),
                            "datatype": name["datatype"]})
        out[label] = entries
    return out


def _nifti_stem(name: str) -> str:
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name.rsplit(".", 1)[0]


def release_session(
    names: dict,
    sources: dict[str, str | os.PathLike],
    release_dir: str | os.PathLike,
    tmp_root: str | os.PathLike,
    subject: str,
    session: str,
    converted: dict[str, str | os.PathLike] | None = None,
    withheld: dict[str, str] | None = None,
    nrrd: bool = True,
    excluded: dict[str, dict[str, str]] | None = None,
    extras: dict[str, dict[str, str | os.PathLike]] | None = None,
) -> tuple[list[Path], list[dict]]:
    """Replace ``release/sub-S/ses-N/`` (and its NRRD copies) with this session's images.

    The session folder is built under ``tmp_root`` and swapped in with renames, so
    a killed run leaves the old folder or the new one, never a mix.

    Parameters
    ----------
    names : dict
        :func:`name_session` output.
    sources : dict
        series label -> folder whose images are released (the defaced folder for
        defaced series, the conversion folder otherwise).
    converted : dict, optional
        series label -> conversion folder, where sidecars (.json/.bval/.bvec) live
        when ``sources`` is a defacing folder.
    withheld : dict, optional
        series label -> reason: no image of the series is released.
    excluded : dict, optional
        series label -> {image file name -> reason}: single images kept out (a
        defacing that failed, a morphometry FAIL).
    extras : dict, optional
        series label -> {image file name -> file}: a per-image table released
        beside it as ``derivatives/neurodeid/morphometry/<bids name>_morphometry.tsv``.

    Returns
    -------
    (files, notes)
        Released files, and one note per withheld or failed series.
    """
    from ..convert import write_nrrd

    release_dir, tmp_root = Path(release_dir), Path(tmp_root)
    converted = converted or {}
    withheld = withheld or {}
    excluded = excluded or {}
    extras = extras or {}
    tmp_root.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"ses-{subject}-{session}-", dir=tmp_root))
    notes: list[dict] = []
    released: list[str] = []
    try:
        for label in sorted(names):
            entries = names[label]
            if isinstance(entries, dict):
                notes.append({"series": label, "status": StageStatus.FAILED, "reason": entries["failed"]})
                continue
            if label in withheld or label not in sources:
                why = withheld.get(label, "no releasable version of its images (e.g. defacing has not passed)")
                notes.append({"series": label, "status": StageStatus.WITHHELD, "reason": why})
                continue
            src = Path(sources[label])
            side = Path(converted.get(label, src))
            for e in entries:
                rel = e["bids"]
                if e["image"] in excluded.get(label, {}):
                    notes.append({"series": label, "status": StageStatus.WITHHELD,
                                  "reason": f"{e['image']}: {excluded[label][e['image']]}"})
                    continue
                extra = extras.get(label, {}).get(e["image"])
                if extra is not None:
                    mrel = f"derivatives/neurodeid/morphometry/{rel}_morphometry.tsv"
                    (build / mrel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(extra, build / mrel)
                    released.append(mrel)
                dst = build / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / e["image"], f"{dst}.nii.gz")
                released.append(f"{rel}.nii.gz")
                stem = _nifti_stem(e["image"])
                for ext in SIDECAR_EXTENSIONS:
                    if (side / f"{stem}{ext}").is_file():
                        shutil.copyfile(side / f"{stem}{ext}", f"{dst}{ext}")
                        released.append(f"{rel}{ext}")
                if _with_task_name(Path(f"{dst}.json"), rel) and f"{rel}.json" not in released:
                    released.append(f"{rel}.json")
                if rel.endswith("_phasediff") and (dst.parent / f"{dst.name}.json").is_file():
                    _with_echo_times(Path(f"{dst}.json"), rel, names, sources, converted)
                if nrrd and e["datatype"] in NRRD_DATATYPES:
                    nrrd_rel = f"derivatives/neurodeid/nrrd/{rel}.nrrd"
                    (build / nrrd_rel).parent.mkdir(parents=True, exist_ok=True)
                    write_nrrd(f"{dst}.nii.gz", build / nrrd_rel)
                    released.append(nrrd_rel)
        _swap_in(build, release_dir, [f"sub-{subject}/ses-{session}",
                                      f"derivatives/neurodeid/nrrd/sub-{subject}/ses-{session}",
                                      f"derivatives/neurodeid/morphometry/sub-{subject}/ses-{session}"], tmp_root)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return [release_dir / r for r in released], notes


def _run_of(rel: str) -> str:
    m = re.search(r"_run-([a-zA-Z0-9]+)_", Path(rel).name)
    return m.group(1) if m else ""


def _with_echo_times(sidecar: Path, rel: str, names: dict, sources: dict, converted: dict) -> None:
    """A phasediff sidecar without the REQUIRED ``EchoTime1``/``EchoTime2`` gets them from the
    ``EchoTime`` (s) of the session's fieldmap magnitudes of the same run: dcm2niix writes them
    only when it converts the magnitude and phase series together, and neurodeid converts one
    series at a time."""
    data = json.loads(sidecar.read_text(encoding="utf-8"))
    if "EchoTime1" in data and "EchoTime2" in data:
        return
    times = []
    for label, entries in names.items():
        if not isinstance(entries, list):
            continue
        folder = Path(converted.get(label, sources.get(label, "")))
        for e in entries:
            if re.search(r"_magnitude[12]$", e["bids"]) and _run_of(e["bids"]) == _run_of(rel):
                side = folder / f"{_nifti_stem(e['image'])}.json"
                if side.is_file():
                    t = json.loads(side.read_text(encoding="utf-8")).get("EchoTime")
                    if isinstance(t, (int, float)):
                        times.append(float(t))
    if len(set(times)) == 2:
        data["EchoTime1"], data["EchoTime2"] = sorted(set(times))
        sidecar.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _with_task_name(sidecar: Path, rel: str) -> bool:
    """Give the sidecar of an image with a ``task`` entity the REQUIRED ``TaskName`` (BIDS:
    the task label, ``unknown`` when the heuristics could not name the task); the sidecar is
    created when there is none. Returns whether a sidecar was written."""
    m = re.search(r"_task-([a-zA-Z0-9]+)_", Path(rel).name)
    if not m:
        return False
    data = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    if data.get("TaskName"):
        return sidecar.is_file()
    data["TaskName"] = m.group(1)
    sidecar.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return True


def _swap_in(build: Path, release_dir: Path, parts: list[str], tmp_root: Path) -> None:
    """Replace each ``release_dir/part`` by ``build/part`` (or remove it when absent)."""
    for part in parts:
        new, dst = build / part, release_dir / part
        old = None
        if dst.exists():
            old = Path(tempfile.mkdtemp(prefix="old-", dir=tmp_root)) / "x"
            os.replace(dst, old)
        if new.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(new, dst)
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)
        # drop empty parents left by a session that has nothing any more
        parent = dst.parent
        while parent != release_dir and parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
