"""The BIDS skeleton of a release: dataset_description.json, participants.tsv, README.

Only pseudonyms and fixed text enter these files; they are built from the
private subject list and the config, never from raw headers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import __version__
from ..fileio import write_text_atomic

BIDS_VERSION = "1.10.0"

README_HEAD = """\
{name}
{underline}

This dataset was de-identified and prepared for sharing by neurodeid {version}
(https://github.com/neurodeid/neurodeid), a Snakemake workflow. What this run did:

- DICOM attributes were handled by the DICOM PS3.15 Annex E confidentiality profile
  (Table E.1-1, {edition}) with the options: {options}.
- Subjects carry keyed pseudonyms; sessions are numbered in study order.
"""

README_AUDIT = """
Release audit: before release, neurodeid scans every file and file name in
it for the identifying values of the original data. This README is written before that
scan and cannot state its result: share the folder only if the run that made it reports
"release audit passed" (a run whose audit found anything stops with an error).
"""


def release_counts(listings) -> dict:
    """What the subjects' release listings (:func:`write_listing`) hold: counts of BIDS images,
    defaced images (released with their morphometry table), NRRD copies, DICOM series and
    DICOM files, and of withheld or failed items."""
    counts = dict.fromkeys(("subjects", "images", "defaced", "nrrd", "dicom_series", "dicom_files", "withheld"), 0)
    series = set()
    for path in listings or []:
        files, notes = read_listing(path)
        counts["subjects"] += bool(files)
        counts["withheld"] += len(notes)
        for f, _ in files:
            if f.startswith("sourcedata/dicom/"):
                counts["dicom_files"] += 1
                series.add(f.rsplit("/", 1)[0])
            elif f.startswith("derivatives/neurodeid/morphometry/"):
                counts["defaced"] += 1
            elif f.startswith("derivatives/neurodeid/nrrd/"):
                counts["nrrd"] += 1
            elif f.startswith("sub-") and f.endswith((".nii.gz", ".nii")):
                counts["images"] += 1
    counts["dicom_series"] = len(series)
    return counts


def readme_text(name: str, edition: str, options: list[str], counts: dict | None) -> str:
    """The release README, from what the run did (``counts``: :func:`release_counts`; None
    when the listings were not given, and then no count is claimed)."""
    text = README_HEAD.format(name=name, underline="=" * len(name), version=__version__, edition=edition,
                              options=", ".join(options) if options else "none (Basic Profile)")
    contents = ["- participants.tsv: one row per subject, pseudonym only."]
    if counts is not None:
        c = counts
        if c["images"]:
            text += (f"- {c['images']} image(s) converted to NIfTI (dcm2niix; sidecars from an allow-list); "
                     f"head images are released only defaced.\n")
        if c["defaced"]:
            text += (f"- {c['defaced']} head image(s) defaced (the face removed, the brain kept with a margin) "
                     "and checked by morphometry (original vs defaced).\n")
        if c["dicom_series"]:
            text += (f"- {c['dicom_series']} DICOM series ({c['dicom_files']} file(s)) released de-identified; "
                     "series whose pixels could show a face or text only after cleaning.\n")
        text += (f"- {c['withheld']} series or image(s) withheld after a stage failed or a check did not "
                 "pass (not in this folder).\n" if c["withheld"] else
                 "- No series or image was withheld after a failed stage or check.\n")
        if c["images"]:
            contents.append("- sub-*/: images in BIDS layout (NIfTI + JSON sidecars).")
        if c["dicom_series"]:
            contents.append("- sourcedata/dicom/: de-identified DICOM, one folder per series.")
        if c["defaced"] or c["nrrd"]:
            parts = (["morphometry/: per-image tables of the defacing check"] if c["defaced"] else []) + (
                ["nrrd/: NRRD (LPS) copies of anatomical and CT images"] if c["nrrd"] else [])
            contents.append(f"- derivatives/neurodeid/: {'; '.join(parts)}.")
    return text + README_AUDIT + "\nContents:\n" + "\n".join(contents) + "\n"


#: CT follows the proposed BIDS extension for CT (BEP024), which the BIDS validator does
#: not know yet; the specification says to list such data in .bidsignore.
BIDSIGNORE_TEXT = (
    "# neurodeid: CT follows the proposed BIDS extension for CT (BEP024), not yet in the BIDS specification\n"
    "sub-*/ses-*/ct/\n"
    "sub-*/ct/\n"
)


def dataset_description(name: str, license_: str = "", authors: list[str] | None = None) -> dict:
    """The content of ``dataset_description.json`` (BIDS raw dataset)."""
    desc = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "GeneratedBy": [
            {
                "Name": "neurodeid",
                "Version": __version__,
                "Description": "De-identification (DICOM PS3.15 Annex E), conversion, defacing and release audit",
                "CodeURL": "https://github.com/neurodeid/neurodeid",
            }
        ],
    }
    if license_:
        desc["License"] = license_
    if authors:
        desc["Authors"] = list(authors)
    return desc


def fixed_text() -> str:
    """Every fixed word neurodeid writes into a release's skeleton (README with every count
    line, dataset_description.json, .bidsignore), with no dataset name and no option: text
    that is the same whatever the input, so a word of it found in the release came from
    neurodeid, never from a raw file name (the release audit does not look for such words,
    :func:`neurodeid.audit.needles.path_needles`)."""
    none = release_counts([])
    every = dict.fromkeys(none, 1)
    return "\n".join([
        readme_text("", "", [], every), readme_text("", "", [], none),
        json.dumps(dataset_description("")), BIDSIGNORE_TEXT,
    ])


def write_skeleton(
    release_dir: str | os.PathLike,
    subjects_tsv: str | os.PathLike,
    name: str,
    license_: str,
    options: list[str],
    edition: str,
    authors: list[str] | None = None,
    keep: set[str] | None = None,
    listings=None,
) -> list[Path]:
    """Write the skeleton files (dataset_description.json, participants.tsv, README,
    .bidsignore) into ``release_dir``; return their paths.

    ``subjects_tsv`` is the private index's subject list (column
    ``participant_id``: pseudonyms only); ``listings`` the subjects' release listings, from
    which the README counts what was released and withheld.
    """
    release_dir = Path(release_dir)
    lines = Path(subjects_tsv).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t")[0] != "participant_id":
        raise ValueError(f"{subjects_tsv}: expected a header 'participant_id'")
    participants = sorted({ln.split("\t")[0] for ln in lines[1:] if ln.strip()})
    if keep is not None:  # only subjects with something released (see neurodeid.review.subjects_with_items)
        participants = [p for p in participants if p in keep]
    for p in participants:
        if not (p.startswith("sub-") and p[4:].isalnum()):
            raise ValueError(f"{subjects_tsv}: {p!r} is not a BIDS participant label")
    out = {
        "dataset_description.json": json.dumps(dataset_description(name, license_, authors), indent=2) + "\n",
        "participants.tsv": "participant_id\n" + "".join(f"{p}\n" for p in participants),
        ".bidsignore": BIDSIGNORE_TEXT,
        "README": readme_text(name, edition, options, release_counts(listings) if listings is not None else None),
    }
    paths = []
    for fname, text in out.items():
        write_text_atomic(release_dir / fname, text)
        paths.append(release_dir / fname)
    return paths



def folder_files(folder: str | os.PathLike) -> list[str]:
    """Names of the files of ``folder`` that a release copies: regular, not hidden, sorted
    (``[]`` when the folder does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def copy_dir_atomic(src: str | os.PathLike, dst: str | os.PathLike, tmp_root: str | os.PathLike,
                    only: list[str] | None = None) -> list[Path]:
    """Copy the files of folder ``src`` into a new folder ``dst``, atomically.

    The copy is built in a temporary folder under ``tmp_root`` (outside the
    release, on the same file system) and renamed into place, so a run killed at
    any moment never leaves a partial folder or a stray temporary file in the
    release. Returns the copied files (under ``dst``).
    """
    import shutil
    import tempfile

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder to release")
    dst.parent.mkdir(parents=True, exist_ok=True)
    Path(tmp_root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="copy-", dir=tmp_root))
    try:
        names = [n for n in folder_files(src) if only is None or n in only]
        for n in names:
            shutil.copyfile(src / n, tmp / n)
        os.chmod(tmp, 0o755)
        if dst.exists():
            shutil.rmtree(dst)
        if names:
            os.replace(tmp, dst)
        else:  # nothing to release: no empty folder in the release
            tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [dst / n for n in names]


def write_listing(path: str | os.PathLike, files: list[Path], root: str | os.PathLike, notes=()) -> None:
    """A private listing of released files: path relative to ``root`` and sha256, then
    one ``#`` comment line per note (``{"series", "status", "reason"}``)."""
    import hashlib

    lines = ["file\tsha256"]
    for f in files:
        lines.append(f"{Path(f).relative_to(root).as_posix()}\t{hashlib.sha256(Path(f).read_bytes()).hexdigest()}")
    for n in notes:
        lines.append(f"# {n['series']}\t{n['status']}: {n['reason']}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_listing(path: str | os.PathLike) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """A listing written by :func:`write_listing`: ``([(file, sha256)], {series: "status: reason"})``."""
    files, notes = [], {}
    for line in Path(path).read_text(encoding="utf-8").splitlines()[1:]:
        if line.startswith("#"):
            label, _, note = line[1:].lstrip(" ").partition("\t")
            notes[label] = note
        elif line.strip():
            f, _, sha = line.partition("\t")
            files.append((f, sha))
    return files, notes
