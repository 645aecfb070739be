"""k-anonymity of a release: which subjects stand out by what the release keeps about them.

After the release is assembled, every subject's values of the configured
quasi-identifiers are read from the **released files themselves** (what a
recipient sees, not what the raw data held):

=================  ==========================================================
identifier          read from
=================  ==========================================================
``age``             DICOM PatientAge; participants.tsv ``age``
``sex``             DICOM PatientSex; participants.tsv ``sex``
``height``          DICOM PatientSize (m); participants.tsv ``height``
``weight``          DICOM PatientWeight (kg); participants.tsv ``weight``
``ethnic_group``    DICOM EthnicGroup; participants.tsv ``ethnic_group``
``handedness``      participants.tsv ``handedness``
``scanner``         manufacturer + model + field strength (DICOM or sidecar)
``site``            DICOM InstitutionName (kept only under
                    ``retain_institution_identity``); sidecar InstitutionName
``acquisition_year``  year of the (shifted) acquisition / series / study date
=================  ==========================================================

A subject's value of an identifier is the set of distinct values found in its
files (``040Y|041Y`` for two sessions a year apart), ``""`` when the release
holds none. Subjects with the same values of every identifier form an
equivalence class; ``k`` is its size. A subject with ``k < k_min`` is listed with
the attributes that make it stand out: for each identifier, how many subjects
share its value, and what ``k`` would become without that identifier.

Everything written here is private (it shows the values that single a subject
out): ``results/private/quasi/``. The module never imports snakemake.
"""

from __future__ import annotations

import csv
import html
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pydicom.errors

from .fileio import write_text_atomic
from .records import write_tsv
from .release.dataset import read_listing
from .results import Check

#: The quasi-identifiers the report knows, in report order.
IDENTIFIERS = (
    "age",
    "sex",
    "height",
    "weight",
    "ethnic_group",
    "handedness",
    "scanner",
    "site",
    "acquisition_year",
)

#: DICOM keyword per identifier read directly from one attribute.
_DICOM_KEYWORDS = {
    "age": "PatientAge",
    "sex": "PatientSex",
    "height": "PatientSize",
    "weight": "PatientWeight",
    "ethnic_group": "EthnicGroup",
    "site": "InstitutionName",
}
_DATE_KEYWORDS = ("AcquisitionDateTime", "AcquisitionDate", "SeriesDate", "StudyDate", "ContentDate")
_SCANNER_KEYWORDS = ("Manufacturer", "ManufacturerModelName", "MagneticFieldStrength")
_HEADER_TAGS = list(_DICOM_KEYWORDS.values()) + list(_DATE_KEYWORDS) + list(_SCANNER_KEYWORDS)

#: participants.tsv columns per identifier (BIDS names).
_PARTICIPANT_COLUMNS = {
    "age": "age",
    "sex": "sex",
    "height": "height",
    "weight": "weight",
    "ethnic_group": "ethnic_group",
    "handedness": "handedness",
}

_MISSING = frozenset({"", "n/a", "none", "unknown"})


class KAnonymityError(ValueError):
    """A setting or an input of the k-anonymity report that cannot be used."""


def _norm_number(text: str) -> str:
    try:
        return f"{float(text):g}"
    except ValueError:
        return text.strip()


def _norm_scanner(manufacturer: str, model: str, field_t: str) -> str:
    """``"siemens prisma_fit 3T"``: the vendor's first word (``SIEMENS``, ``Siemens
    Healthineers`` and dcm2niix's ``Siemens`` are one vendor), the model, the field."""
    vendor = (manufacturer.split() or [""])[0].lower().rstrip(",")
    model = model.strip().lower().replace(" ", "_")
    field_s = ""
    if field_t.strip():
        try:
            field_s = f"{round(float(field_t), 1):g}T"
        except ValueError:
            field_s = field_t.strip()
    parts = [p for p in (vendor, model, field_s) if p]
    return " ".join(parts)


def _value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def dicom_values(path: str | os.PathLike) -> dict[str, str]:
    """The quasi-identifier values of one released DICOM file (top level, header only)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=_HEADER_TAGS)
    out = {}
    for ident, kw in _DICOM_KEYWORDS.items():
        v = _value(ds.get(kw))
        if v.lower() not in _MISSING:
            out[ident] = _norm_number(v) if ident in ("height", "weight") else v
    for kw in _DATE_KEYWORDS:
        v = _value(ds.get(kw))
        if len(v) >= 4 and v[:4].isdigit():
            out["acquisition_year"] = v[:4]
            break
    scanner = _norm_scanner(*(_value(ds.get(k)) for k in _SCANNER_KEYWORDS))
    if scanner:
        out["scanner"] = scanner
    return out


def sidecar_values(path: str | os.PathLike) -> dict[str, str]:
    """The quasi-identifier values of one released BIDS sidecar."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out = {}
    scanner = _norm_scanner(
        str(data.get("Manufacturer", "")),
        str(data.get("ManufacturersModelName", "")),
        str(data.get("MagneticFieldStrength", "")),
    )
    if scanner:
        out["scanner"] = scanner
    if str(data.get("InstitutionName", "")).strip():
        out["site"] = str(data["InstitutionName"]).strip()
    for key in ("AcquisitionDateTime", "AcquisitionDate"):
        v = str(data.get(key, ""))
        if len(v) >= 4 and v[:4].isdigit():
            out["acquisition_year"] = v[:4]
            break
    for ident, kw in _DICOM_KEYWORDS.items():
        if ident not in out and str(data.get(kw, "")).strip():
            out[ident] = _norm_number(str(data[kw])) if ident in ("height", "weight") else str(data[kw]).strip()
    return out


def participant_values(participants_tsv: str | os.PathLike) -> dict[str, dict[str, str]]:
    """``{participant_id: {identifier: value}}`` from a released participants.tsv."""
    out: dict[str, dict[str, str]] = {}
    path = Path(participants_tsv)
    if not path.is_file():
        return out
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            pid = (row.get("participant_id") or "").strip()
            if not pid:
                continue
            vals = {}
            for ident, col in _PARTICIPANT_COLUMNS.items():
                v = (row.get(col) or "").strip()
                if v.lower() not in _MISSING:
                    vals[ident] = _norm_number(v) if ident in ("height", "weight") else v
            out[pid] = vals
    return out


def subject_attributes(release_dir: str | os.PathLike, files: list[str], participant: dict[str, str] | None = None,
                       identifiers=IDENTIFIERS) -> dict[str, str]:
    """One subject's value of every identifier, from its released files.

    Parameters
    ----------
    release_dir : path-like
        The release folder.
    files : list of str
        The subject's released files, relative to ``release_dir`` (its listing).
    participant : dict, optional
        The subject's participants.tsv values (:func:`participant_values`).
    identifiers : sequence of str

    Returns
    -------
    dict
        ``{identifier: value}``; several distinct values are joined with ``|``
        (sorted), ``""`` when the release holds none.
    """
    found: dict[str, set[str]] = {i: set() for i in identifiers}
    root = Path(release_dir)
    for rel in files:
        p = root / rel
        try:
            if rel.endswith(".dcm"):
                vals = dicom_values(p)
            elif rel.endswith(".json"):
                vals = sidecar_values(p)
            else:
                continue
        except (OSError, ValueError, pydicom.errors.InvalidDicomError) as exc:
            raise KAnonymityError(
                f"{p}: a released file cannot be read for the k-anonymity report ({exc}); "
                "the release is incomplete or was changed by hand: rerun the release"
            ) from None
        for ident, v in vals.items():
            if ident in found:
                found[ident].add(v)
    for ident, v in (participant or {}).items():
        if ident in found:
            found[ident].add(v)
    return {i: "|".join(sorted(found[i])) for i in identifiers}


def k_per_subject(attributes: dict[str, dict[str, str]], identifiers) -> dict[str, int]:
    """``{subject: k}``: the size of the subject's equivalence class over ``identifiers``."""
    keys = {s: tuple(a.get(i, "") for i in identifiers) for s, a in attributes.items()}
    sizes = Counter(keys.values())
    return {s: sizes[k] for s, k in keys.items()}


@dataclass
class StandOut:
    """Why one subject has a small k.

    Attributes
    ----------
    shared : dict
        ``{identifier: number of subjects with the same value of it alone}``.
    k_without : dict
        ``{identifier: k of the subject when that identifier is left out}``.
    rare : list of str
        Identifiers whose value alone is shared by fewer than ``k_min`` subjects
        (and not by every subject), rarest first; when none is rare by itself, the identifier whose removal
        raises k the most (the combination is what stands out).
    """

    shared: dict = field(default_factory=dict)
    k_without: dict = field(default_factory=dict)
    rare: list = field(default_factory=list)


def explain_all(attributes: dict[str, dict[str, str]], identifiers, k_min: int, subjects=None) -> dict[str, StandOut]:
    """The attributes that make each of ``subjects`` (default: those with k < k_min)
    stand out (see :class:`StandOut`); one pass per identifier, not per subject."""
    identifiers = list(identifiers)
    if subjects is None:
        k = k_per_subject(attributes, identifiers)
        subjects = [s for s, v in k.items() if v < k_min]
    counts = {i: Counter(a.get(i, "") for a in attributes.values()) for i in identifiers}
    k_without = {}
    for i in identifiers:
        rest = [j for j in identifiers if j != i]
        k_without[i] = k_per_subject(attributes, rest) if rest else {s: len(attributes) for s in attributes}
    out = {}
    for s in subjects:
        o = StandOut()
        for i in identifiers:
            o.shared[i] = counts[i][attributes[s].get(i, "")]
            o.k_without[i] = k_without[i][s]
        # a value every subject shares singles nobody out, however small the release
        rare = sorted((i for i in identifiers if o.shared[i] < k_min and o.shared[i] < len(attributes)),
                      key=lambda i: (o.shared[i], identifiers.index(i)))
        if not rare and identifiers:
            rare = [max(identifiers, key=lambda i: (o.k_without[i], -identifiers.index(i)))]
        o.rare = rare
        out[s] = o
    return out


@dataclass
class KReport:
    """The k-anonymity of one release."""

    identifiers: list
    k_min: int
    attributes: dict  # {subject: {identifier: value}}
    k: dict  # {subject: k}
    stand_out: dict  # {subject: StandOut} for subjects with k < k_min
    applied: list = field(default_factory=list)  # generalisation sentences
    gate: bool = False

    @property
    def distribution(self) -> dict[int, int]:
        """``{k: number of subjects}``."""
        return dict(sorted(Counter(self.k.values()).items()))

    @property
    def below(self) -> list[str]:
        return sorted(s for s, k in self.k.items() if k < self.k_min)

    @property
    def status(self) -> Check:
        """PASS, WARN (k < k_min, not gated) or FAIL (gated)."""
        if not self.below:
            return Check.PASS
        return Check.FAIL if self.gate else Check.WARN

    def to_dict(self) -> dict:
        return {
            "identifiers": self.identifiers,
            "k_min": self.k_min,
            "gate": self.gate,
            "status": self.status,
            "n_subjects": len(self.k),
            "min_k": min(self.k.values()) if self.k else None,
            "distribution": {str(k): n for k, n in self.distribution.items()},
            "below_k_min": self.below,
            "generalisation_applied": self.applied,
            "stand_out": {s: vars(o) for s, o in sorted(self.stand_out.items())},
        }


def analyse(release_dir: str | os.PathLike, listings: list[str | os.PathLike], identifiers=IDENTIFIERS,
            k_min: int = 5, applied=(), gate: bool = False) -> KReport:
    """Read the released files of every subject and compute k.

    Parameters
    ----------
    release_dir : path-like
        The release folder (participants.tsv is read from it).
    listings : list of path-like
        The private listings of released files, one per subject
        (``private/released/sub-<label>.tsv``); a subject whose listing is
        empty released nothing and is not counted.
    identifiers : sequence of str
        A subset of :data:`IDENTIFIERS`.
    k_min : int
    applied : sequence of str
        The generalisations in force (:meth:`neurodeid.deid.quasi.QuasiPolicy.applied`).
    gate : bool
    """
    identifiers = list(identifiers)
    unknown = sorted(set(identifiers) - set(IDENTIFIERS))
    if unknown:
        raise KAnonymityError(f"quasi.identifiers: unknown {unknown}; known: {list(IDENTIFIERS)}")
    if not isinstance(k_min, int) or k_min < 1:
        raise KAnonymityError(f"quasi.k_min must be a whole number >= 1, got {k_min!r}")
    participants = participant_values(Path(release_dir) / "participants.tsv")
    attributes = {}
    for listing in listings:
        name = Path(listing).name
        if not name.startswith("sub-") or not name.endswith(".tsv"):
            raise KAnonymityError(f"{listing}: not a release listing (expected sub-<label>.tsv)")
        subject = name[: -len(".tsv")]
        files, _ = read_listing(listing)
        if not files:
            continue
        attributes[subject] = subject_attributes(release_dir, [f for f, _ in files], participants.get(subject),
                                                 identifiers)
    k = k_per_subject(attributes, identifiers)
    stand_out = explain_all(attributes, identifiers, k_min, [s for s, v in k.items() if v < k_min])
    return KReport(identifiers, k_min, attributes, k, stand_out, list(applied), gate)


def write_outputs(report: KReport, tsv: str | os.PathLike, summary_json: str | os.PathLike) -> None:
    """Write the per-subject table (subject, k, status, one column per identifier,
    stands_out) and the JSON summary; both private."""
    rows = []
    for s in sorted(report.k):
        st = "ok" if report.k[s] >= report.k_min else "below_k_min"
        why = ",".join(report.stand_out[s].rare) if s in report.stand_out else ""
        vals = [report.attributes[s].get(i, "") or "n/a" for i in report.identifiers]
        rows.append([s, report.k[s], st, *vals, why])
    write_tsv(tsv, ["participant_id", "k", "status", *report.identifiers, "stands_out"], rows)
    write_text_atomic(summary_json, json.dumps(report.to_dict(), indent=1, sort_keys=True) + "\n")


def check(summary_json: str | os.PathLike) -> tuple[bool, str]:
    """The gate: ``(ok, message)`` from a JSON summary written by :func:`write_outputs`."""
    data = json.loads(Path(summary_json).read_text(encoding="utf-8"))
    below = data.get("below_k_min", [])
    if not below:
        return True, f"k-anonymity: every subject has k >= {data['k_min']} (min k {data['min_k']})"
    return False, (
        f"k-anonymity: {len(below)} subject(s) have k < {data['k_min']} over {', '.join(data['identifiers'])}: "
        f"{', '.join(below[:10])}{' ...' if len(below) > 10 else ''}. See the report's quasi-identifier page or "
        f"{Path(summary_json).with_suffix('.tsv')}; generalise (quasi.age_band_years, quasi.remove, ...) or set "
        "quasi.gate: false to only warn"
    )


# --------------------------------------------------------------------------- the report page


def _e(v) -> str:
    return html.escape(str(v))


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}"
    ".WARN{background:#ffe9a8}.FAIL{background:#ffc4c4}.PASS{background:#c9f2c9}.rare{background:#ffd6d6}"
    ".bar{display:inline-block;height:.9em;background:#4a7bd0}.private{color:#a00;font-size:.9em}"
)


def render_html(report: KReport) -> str:
    """The report's quasi-identifier page: status, generalisations applied, the
    distribution of k, and each subject with k < k_min with what makes it stand out."""
    dist = report.distribution
    n = len(report.k)
    most = max(dist.values()) if dist else 1
    body = [f"<h1>Quasi-identifiers: k-anonymity of the release</h1>",
            f"<p id=\"kanon-status\"><span class=\"{_e(report.status)}\">{_e(report.status)}</span> "
            f"{len(report.below)} of {n} subject(s) have k &lt; k_min = {report.k_min} "
            f"({'the run fails: quasi.gate is on' if report.gate else 'a warning: quasi.gate is off'}).</p>",
            "<p>k is the number of released subjects that share a subject's values of every quasi-identifier "
            f"({_e(', '.join(report.identifiers))}); values are read from the released files "
            "(DICOM headers, sidecars, participants.tsv). A subject with a small k can be singled out by someone "
            "who knows these facts about a person.</p>",
            "<h2>Generalisation applied</h2><ul id=\"kanon-applied\">"
            + "".join(f"<li>{_e(a)}</li>" for a in report.applied) + "</ul>",
            "<h2>Distribution of k</h2><table id=\"kanon-distribution\"><tr><th>k</th><th>subjects</th><th></th></tr>"]
    for k, count in dist.items():
        cls = " class=\"rare\"" if k < report.k_min else ""
        body.append(f"<tr{cls}><td>{k}</td><td>{count}</td>"
                    f"<td><span class=\"bar\" style=\"width:{int(200 * count / most)}px\"></span></td></tr>")
    body.append("</table>")
    body.append(f"<h2>Subjects with k &lt; {report.k_min}</h2>")
    if not report.below:
        body.append("<p>none</p>")
    else:
        head = "".join(f"<th>{_e(i)}</th>" for i in report.identifiers)
        body.append(f"<table id=\"kanon-below\"><tr><th>subject</th><th>k</th>{head}<th>stands out by</th></tr>")
        for s in sorted(report.below, key=lambda s: (report.k[s], s)):
            o = report.stand_out[s]
            cells = []
            for i in report.identifiers:
                v = report.attributes[s].get(i, "") or "n/a"
                cls = " class=\"rare\"" if i in o.rare else ""
                cells.append(f"<td{cls}>{_e(v)}<br><small>shared by {o.shared[i]}; "
                             f"k without it: {o.k_without[i]}</small></td>")
            body.append(f"<tr><td>{_e(s)}</td><td>{report.k[s]}</td>{''.join(cells)}"
                        f"<td>{_e(', '.join(o.rare))}</td></tr>")
        body.append("</table>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Quasi-identifiers</title><style>{_CSS}</style></head><body id=\"quasi\">"
            + "\n".join(body)
            + "<p class=\"private\">Private: this page shows the values that single subjects out; it belongs to "
              "results/private/ and is never part of the release.</p></body></html>\n")
