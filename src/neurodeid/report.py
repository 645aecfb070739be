"""The review report's summary: what the run made of every series, and may the release be sent.

Reads the private files a run leaves under ``results/private/`` (the index, the
release plan, the BIDS names, the release listings, the redaction, defacing and
morphometry results, the quarantine list and the audit table) and writes

- ``summary.html``: the dataset summary page (counts, the send verdict, one row
  per subject and per series);
- ``summary_counts.rst``: the same counts and verdict in reStructuredText, included on
  the landing page of Snakemake's report (``workflow/report/workflow.rst``);
- ``quarantine.html``, ``withheld.html``, ``audit.html``: the tables a reviewer
  checks (the audit page names files and attributes, never an identifying value);
- ``subjects/sub-<label>.html``: one page per subject.

All of it is private: the quarantine page names raw file paths. Every other page
shows only pseudonyms, series labels, modalities and BIDS names; no series
description, date, UID or raw ID is copied into the summary.

Run as ``neurodeid report-summary PRIVATE_DIR --out-dir DIR`` (:mod:`neurodeid.cli.report`).
The module never imports snakemake.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .fileio import write_text_atomic
from . import records
from .layout import Layout, released_dicom_series
from .plan import DICOM_NONE
from .release.dataset import read_listing

#: The verdicts of the send check, worst first.
VERDICT_NO = "NO"
VERDICT_REVIEW = "REVIEW"
VERDICT_YES = "YES"

VERDICT_TEXT = {
    VERDICT_NO: "NO: do not send this release",
    VERDICT_REVIEW: "REVIEW FIRST: the audit found nothing, but some items need your eyes",
    VERDICT_YES: "YES, once you have looked at the QC pictures",
}

#: Text that the pages and the landing page start with (the browser test looks for it).
TITLE = "May I press send?"

#: Quarantine statuses that are routine (not an image: DICOMDIR, notes, ...).
ROUTINE_QUARANTINE = frozenset({"skipped"})


class ReportError(ValueError):
    """A private file the summary needs is missing or malformed."""


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@dataclass
class SeriesStatus:
    """What happened to one series (labels are pseudonyms: no raw value)."""

    subject: str  # without "sub-"
    session: str  # without "ses-"
    series: str
    modality: str = ""
    n_files: int = 0
    bids: str = ""  # planned BIDS target, or "unmatched: ..."/"skipped: ..."
    dicom: str = ""  # "released" | "withheld" | "partly released" | "none" (a BIDS input)
    dicom_reason: str = ""
    conversion: str = ""  # "" (not planned) | "ok" | "failed"
    images: list = field(default_factory=list)  # released BIDS paths (relative to release/)
    images_note: str = ""  # "withheld: ..." / "failed: ..."
    redaction: str = ""  # "" | "PASS" | "FAIL" (series-level; per image below)
    redaction_images: tuple = (0, 0)  # (PASS, total)
    deface: str = ""  # "" | "PASS" | "FAIL" | "pending"
    deface_note: str = ""
    morphometry: str = ""  # "" | "PASS" | "WARN" | "FAIL"
    morphometry_note: str = ""

    @property
    def n_images(self) -> int:
        """Released NIfTI images of this series (sidecars not counted)."""
        return sum(f.endswith((".nii.gz", ".nii")) for f in self.images)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subject, self.session, self.series)

    @property
    def verdicts(self) -> list[str]:
        """Every PASS/WARN/FAIL of this series' checks."""
        return [v for v in (self.redaction, self.deface, self.morphometry) if v in ("PASS", "WARN", "FAIL")]


@dataclass
class AuditSummary:
    """The release audit without identifying values."""

    ran: bool = False
    passed: bool = False  # the table exists and lists no hit
    files_scanned: int = 0
    needles: int = 0
    hits: int = 0
    # (file with identifiers masked, location, attribute) -> hits
    by_place: dict = field(default_factory=dict)
    # one row per (file, field, attribute, category, masked value, what to do): hits
    by_hit: dict = field(default_factory=dict)
    # the site allow-list entries used: value, reason, needles, sources
    allowed: list = field(default_factory=list)


@dataclass
class DatasetSummary:
    """Counts for the summary page and the send verdict."""

    series: list[SeriesStatus]
    quarantine: list[dict]
    audit: AuditSummary
    demo_key: bool = False
    released_files: int = 0
    # neurodeid.review.report_tables: {"decisions": rows, "changelog": rows}
    review: dict = field(default_factory=dict)
    # neurodeid.kanon summary (private/quasi/k_anonymity.json); empty when not run
    quasi: dict = field(default_factory=dict)

    # -- counts ---------------------------------------------------------------
    @property
    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.series})

    @property
    def sessions(self) -> list[tuple[str, str]]:
        return sorted({(s.subject, s.session) for s in self.series})

    def count(self, **conditions) -> int:
        return sum(all(getattr(s, k) == v for k, v in conditions.items()) for s in self.series)

    @property
    def n_files(self) -> int:
        return sum(s.n_files for s in self.series)

    @property
    def planned_conversion(self) -> int:
        return sum(s.conversion != "" for s in self.series)

    @property
    def released_images(self) -> int:
        """Released BIDS images (NIfTI files; sidecars not counted)."""
        return sum(s.n_images for s in self.series)

    @property
    def unmatched(self) -> list[SeriesStatus]:
        return [s for s in self.series if s.bids.startswith("unmatched")]

    @property
    def skipped(self) -> list[SeriesStatus]:
        return [s for s in self.series if s.bids.startswith("skipped")]

    @property
    def withheld(self) -> list[SeriesStatus]:
        """Series some of whose data stays out of the release (DICOM or images)."""
        return [s for s in self.series if s.dicom not in ("released", "none") or s.images_note]

    @property
    def quarantined(self) -> list[dict]:
        return [r for r in self.quarantine if r.get("status") not in ROUTINE_QUARANTINE]

    @property
    def skipped_files(self) -> list[dict]:
        return [r for r in self.quarantine if r.get("status") in ROUTINE_QUARANTINE]

    def verdict_counts(self) -> dict[str, int]:
        out = {"PASS": 0, "WARN": 0, "FAIL": 0}
        for s in self.series:
            for v in s.verdicts:
                out[v] += 1
        return out

    # -- the answer -----------------------------------------------------------
    def verdict(self) -> tuple[str, list[str]]:
        """``(verdict, reasons)``: NO, REVIEW or YES, and why (no identifying value)."""
        no, review = [], []
        a = self.audit
        if not a.ran:
            no.append("the release audit has not run (private/audit.tsv is missing)")
        elif a.hits:
            no.append(f"the release audit found {a.hits} identifying value(s) in the release: see the audit table")
        if self.demo_key:
            no.append("the run used the public DEMO KEY: anyone can recompute the pseudonyms; "
                      "rerun with a secret NEURODEID_KEY")
        vc = self.verdict_counts()
        if vc["FAIL"]:
            review.append(f"{vc['FAIL']} check(s) FAILED (those images stay out of the release)")
        if vc["WARN"]:
            review.append(f"{vc['WARN']} check(s) gave a WARNING (released: look at them)")
        conv_failed = self.count(conversion="failed")
        if conv_failed:
            review.append(f"{conv_failed} series failed to convert")
        if self.quarantined:
            review.append(f"{len(self.quarantined)} file(s) quarantined or withheld by a stage")
        if self.withheld:
            review.append(f"{len(self.withheld)} series (partly) withheld from the release")
        if self.unmatched:
            review.append(f"{len(self.unmatched)} series matched no BIDS naming rule")
        below = self.quasi.get("below_k_min") or []
        if below:
            text = (f"{len(below)} subject(s) stand out by their quasi-identifiers (k < {self.quasi.get('k_min')}): "
                    "see the quasi-identifiers page")
            (no if self.quasi.get("status") == "FAIL" else review).append(text)
        if no:
            return VERDICT_NO, no + review
        if review:
            return VERDICT_REVIEW, review
        return VERDICT_YES, ["the audit found nothing and every check passed"]

    def count_rows(self) -> list[tuple[str, str]]:
        """The summary table: (what, how many), in the order a reviewer reads it."""
        vc = self.verdict_counts()
        conv_ok, conv_failed = self.count(conversion="ok"), self.count(conversion="failed")
        red = [s for s in self.series if s.redaction]
        red_img_pass = sum(s.redaction_images[0] for s in red)
        red_img_all = sum(s.redaction_images[1] for s in red)
        deface = [s for s in self.series if s.deface]
        morph = [s for s in self.series if s.morphometry]
        mc = {v: sum(s.morphometry == v for s in morph) for v in ("PASS", "WARN", "FAIL")}
        a = self.audit
        audit_text = (
            "not run" if not a.ran else
            f"{a.hits} hit(s) in {a.files_scanned} file(s) scanned for {a.needles} identifying value(s)"
        )
        return [
            ("Subjects", str(len(self.subjects))),
            ("Sessions", str(len(self.sessions))),
            ("Series indexed", f"{len(self.series)} ({self.n_files} file(s))"),
            ("Series converted to NIfTI", f"{conv_ok} of {self.planned_conversion} planned"
             + (f", {conv_failed} failed" if conv_failed else "")),
            ("BIDS images released", str(self.released_images)),
            ("Series defaced (PASS / FAIL / pending)",
             f"{sum(s.deface == 'PASS' for s in deface)} / {sum(s.deface == 'FAIL' for s in deface)}"
             f" / {sum(s.deface == 'pending' for s in deface)} of {len(deface)}"),
            ("Morphometry (PASS / WARN / FAIL)", f"{mc['PASS']} / {mc['WARN']} / {mc['FAIL']}"),
            ("Series redacted (burned-in text)", f"{sum(s.redaction == 'PASS' for s in red)} of {len(red)} PASS;"
             f" images {red_img_pass} of {red_img_all} PASS"),
            ("All checks (PASS / WARN / FAIL)", f"{vc['PASS']} / {vc['WARN']} / {vc['FAIL']}"),
            ("DICOM series released", f"{self.count(dicom='released')} of {len(self.series)}"),
            ("Series withheld (DICOM or images)", str(len(self.withheld))),
            ("Series unmatched by BIDS rules / skipped", f"{len(self.unmatched)} / {len(self.skipped)}"),
            ("Files quarantined", str(len(self.quarantined))),
            ("Files skipped (not images)", str(len(self.skipped_files))),
            ("Release audit", audit_text),
            ("k-anonymity (min k / subjects below k_min)",
             f"{self.quasi.get('min_k')} / {len(self.quasi.get('below_k_min') or [])} (k_min {self.quasi.get('k_min')})"
             if self.quasi else "not run"),
            ("Key", "DEMO KEY (not secret)" if self.demo_key else "secret key"),
        ]


# ---------------------------------------------------------------------------
# Reading the private files (thin I/O)
# ---------------------------------------------------------------------------


def read_tsv(path: str | os.PathLike) -> list[dict]:
    """Rows of a TSV with a header (:func:`neurodeid.records.read_tsv`)."""
    return records.read_tsv(path, ReportError)


def _strip(prefix: str, value: str) -> str:
    return value[len(prefix):] if value.startswith(prefix) else value


def read_audit(audit_tsv: str | os.PathLike) -> AuditSummary:
    """The audit table summarised: counts per (file, location, attribute), values masked.

    An identifying value that appears in a file name is replaced by ``[...]`` in
    the summary, so the summary can be shown to people who may not see it.
    """
    p = Path(audit_tsv)
    if not p.is_file():
        return AuditSummary()
    first = p.read_text(encoding="utf-8").split("\n", 1)[0]
    m = re.search(r"(\d+) files scanned, (\d+) needles", first)
    rows = read_tsv(p)
    by_place: dict[tuple[str, str, str], int] = {}
    by_hit: dict[tuple, int] = {}
    for r in rows:
        file = mask_value(r.get("file", ""), r.get("identifier", ""))
        place = (file, r.get("location", ""), r.get("attribute", ""))
        by_place[place] = by_place.get(place, 0) + 1
        hit = (file, r.get("field", ""), r.get("attribute", ""), r.get("category", ""), r.get("masked", ""),
               r.get("todo", ""))
        by_hit[hit] = by_hit.get(hit, 0) + 1
    from .audit import read_allowed

    return AuditSummary(ran=True, passed=not rows, files_scanned=int(m.group(1)) if m else 0,
                        needles=int(m.group(2)) if m else 0, hits=len(rows), by_place=by_place, by_hit=by_hit,
                        allowed=read_allowed(p))


def mask_value(text: str, value: str, mask: str = "[...]") -> str:
    """``text`` with every case-insensitive occurrence of ``value`` replaced by ``mask``."""
    if not value:
        return text
    return re.sub(re.escape(value), mask, text, flags=re.IGNORECASE)


def _read_json(path: Path):
    return records.read_json(path, ReportError)


def _verdict_column(row: dict) -> str:
    for k in ("verdict", "status", "result"):
        v = (row.get(k) or "").strip().upper()
        if v in ("PASS", "WARN", "FAIL"):
            return v
    return ""


def read_morphometry(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """{BIDS image name: (verdict, reasons)} from the morphometry summary TSV.

    The TSV (``neurodeid.morphometry.summarize``) has one row per image with the
    columns ``image`` (the BIDS name, e.g. ``sub-x_ses-1_run-1_T1w``), ``verdict``
    (PASS/WARN/FAIL) and ``reasons``.
    """
    out: dict[str, tuple[str, str]] = {}
    for r in read_tsv(path):
        name = r.get("image", "")
        for suffix in (".nii.gz", ".nii", "_morphometry"):
            name = name.removesuffix(suffix)
        out[name] = (_verdict_column(r), r.get("reasons") or r.get("reason") or "")
    return out


def read_deface_result(path: str | os.PathLike) -> tuple[str, int, int, str]:
    """``(status, images defaced, images, reasons)`` of one series' defacing result JSON.

    The JSON (``neurodeid deface-series``) lists ``images`` with ``status`` ``ok`` or
    ``failed`` and a ``reason``; the series is PASS when every image was defaced.
    A missing file is ``pending`` (defacing has not run).
    """
    p = Path(path)
    if not p.is_file():
        return "pending", 0, 0, ""
    data = _read_json(p)
    images = data.get("images", [])
    ok = sum(str(i.get("status", "")).lower() in ("ok", "pass") for i in images)
    reasons = "; ".join(f"{i.get('image', '')}: {i.get('reason', '')}" for i in images
                        if str(i.get("status", "")).lower() not in ("ok", "pass"))
    status = "PASS" if images and ok == len(images) else "FAIL"
    return status, ok, len(images), reasons


_WORST = {"": 0, "PASS": 1, "WARN": 2, "FAIL": 3}


def collect(private_dir: str | os.PathLike, *, morphometry: str | os.PathLike | None = None,
            deface_results=(), demo_key: bool = False) -> DatasetSummary:
    """Gather the summary from the private files of a run.

    Parameters
    ----------
    private_dir : path-like
        ``results/private`` of a run (``index.tsv``, ``release_plan.tsv``, ...).
    morphometry : path-like, optional
        The morphometry summary TSV (see :func:`read_morphometry`).
    deface_results : iterable of path-like
        One JSON per series planned for defacing, at
        ``<private>/deface/sub-S/ses-T/<series>.json`` (see :func:`read_deface_result`);
        a missing one counts as pending.
    demo_key : bool
        The run used the public demo key.

    Returns
    -------
    DatasetSummary
        Only the series of the current index are read (files of older runs are ignored).
    """
    rec = records.RunRecords(private_dir, ReportError)
    lay = rec.layout
    index = rec.tsv("index.tsv")
    plan = {p.key: p for p in rec.plan()}
    deface_given = {Path(p) for p in deface_results}
    morph = read_morphometry(morphometry) if morphometry and Path(morphometry).is_file() else {}

    series: list[SeriesStatus] = []
    listing_cache: dict[str, tuple[list[str], dict[str, str]]] = {}
    for r in index:
        s = SeriesStatus(r["subject"], r["session"], r["series"], r.get("modality", ""),
                         int(r.get("n_files") or 0))
        p = plan.get(s.key)
        ids = {"subject": s.subject, "session": s.session, "series": s.series}
        s.bids = p.bids if p else ""
        # the subject's release listing: every released file, and notes on what was withheld
        listing = Path(lay.subject_file("released", s.subject))
        if s.subject not in listing_cache:
            listed, listed_notes = read_listing(listing) if listing.is_file() else ([], {})
            listing_cache[s.subject] = ([f for f, _ in listed], listed_notes)
        files, notes = listing_cache[s.subject]
        # DICOM: released when the subject's release job listed it
        if p and p.release_dicom and listing.is_file():
            prefix = released_dicom_series(**ids) + "/"
            n_rel = sum(f.startswith(prefix) for f in files)
            s.dicom = "released" if n_rel >= s.n_files else ("partly released" if n_rel else "withheld")
            if n_rel < s.n_files:
                note = notes.get(f"ses-{s.session}/{s.series}", "")
                s.dicom_reason = (f"{n_rel} of {s.n_files} file(s) released" if n_rel
                                  else note or "no file of the series was released")
        elif p and p.dicom == DICOM_NONE:  # an image of a BIDS input
            s.dicom = "none"
        else:
            s.dicom = "withheld"
            s.dicom_reason = (p.withheld_reason if p else "") or ("not released yet" if p and p.release_dicom else "")
        # conversion and BIDS names
        entry = (rec.names(s.subject) or {}).get(s.session, {}).get(s.series)
        if isinstance(entry, list):
            s.conversion = "ok"
        elif isinstance(entry, dict) and "failed" in entry:
            s.conversion = "failed"
            s.images_note = f"failed: {entry['failed']}"
        if isinstance(entry, list):
            stems = [e["bids"] for e in entry if "bids" in e]
            s.images = [f for f in files if any(f.startswith(st + ".") for st in stems)]
            note = notes.get(f"ses-{s.session}/{s.series}")
            if note:
                s.images_note = note
            elif not s.images:
                s.images_note = "withheld: not released yet"
        # burned-in text
        data = rec.result("redact", ids)
        if data is not None:
            imgs = data.get("files", [])
            s.redaction = "PASS" if data.get("status") == "PASS" else "FAIL"
            s.redaction_images = (sum(f.get("status") == "PASS" for f in imgs), len(imgs))
        deface_path = Path(lay.result("deface", **ids))
        if deface_path in deface_given:
            s.deface, ok, n, why = read_deface_result(deface_path)
            if s.deface != "pending" and why:
                s.deface_note = why
            elif n:
                s.deface_note = f"{ok} of {n} image(s)"
        # morphometry: one row per BIDS image of the series; the worst verdict counts
        for e in (entry if isinstance(entry, list) else []):
            name = Path(e.get("bids", "")).name
            # the table names an image by its work label (morphometry-series --label) and file
            work_name = f"{Layout.job(**ids)}/{e.get('image', '')}"
            key = next((k for k in (name, work_name.removesuffix(".nii.gz").removesuffix(".nii")) if k in morph), None)
            if key is None:
                continue
            v, why = morph[key]
            if _WORST[v] >= _WORST[s.morphometry]:
                s.morphometry = v
            if why:
                s.morphometry_note = "; ".join(x for x in (s.morphometry_note, f"{name}: {why}") if x)
        series.append(s)

    quarantine = rec.tsv("quarantine.tsv", missing_ok=True)
    audit = read_audit(rec.path("audit.tsv"))
    n_released = sum(len(v[0]) for v in listing_cache.values())
    from .review import report_tables

    quasi_path = rec.path("quasi/k_anonymity.json")
    quasi = _read_json(quasi_path) if quasi_path.is_file() else {}
    return DatasetSummary(series=series, quarantine=quarantine, audit=audit, demo_key=demo_key,
                          released_files=n_released, review=report_tables(private_dir), quasi=quasi or {})


# ---------------------------------------------------------------------------
# Rendering (pure: text in, text out)
# ---------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#222;max-width:70em}
h1{font-size:1.5em;margin:0 0 .4em}h2{font-size:1.15em;margin:1.4em 0 .4em}
table{border-collapse:collapse;margin:.4em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.verdict{padding:.7em 1em;border-radius:6px;font-weight:600;font-size:1.1em;margin:.5em 0}
.v-NO{background:#fde2e1;border:2px solid #c62828}.v-REVIEW{background:#fff4d6;border:2px solid #c98a00}
.v-YES{background:#dff3e2;border:2px solid #2e7d32}
.PASS{color:#2e7d32;font-weight:600}.WARN{color:#c98a00;font-weight:600}.FAIL{color:#c62828;font-weight:600}
.private{color:#c62828;font-size:.9em}
"""


def _e(v) -> str:
    return html.escape(str(v), quote=True)


def _badge(v: str) -> str:
    return f'<span class="{_e(v)}">{_e(v)}</span>' if v in ("PASS", "WARN", "FAIL") else _e(v)


def _table(header: list[str], rows: list[list[str]], raw: bool = False, empty: str = "none") -> str:
    """An HTML table; cells are escaped unless ``raw`` (then they are HTML already)."""
    if not rows:
        return f"<p><em>{_e(empty)}</em></p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: str, page_id: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body id=\"{_e(page_id)}\">{body}"
        "<p class=\"private\">Private: this page belongs to results/private/ and is never part of the release.</p>"
        "</body></html>\n"
    )


def _series_row(s: SeriesStatus) -> list[str]:
    red = ""
    if s.redaction:
        red = f"{_badge(s.redaction)} ({s.redaction_images[0]}/{s.redaction_images[1]} images)"
    morph = _badge(s.morphometry) + (f" {_e(s.morphometry_note)}" if s.morphometry_note else "")
    deface = _badge(s.deface) + (f" ({_e(s.deface_note)})" if s.deface_note else "")
    images = "<br>".join(_e(f) for f in s.images) or ""
    if s.images_note:
        images += ("<br>" if images else "") + f"<em>{_e(s.images_note)}</em>"
    dicom = _e(s.dicom) + (f": <em>{_e(s.dicom_reason)}</em>" if s.dicom_reason else "")
    return [f"sub-{_e(s.subject)}", f"ses-{_e(s.session)}", _e(s.series), _e(s.modality), _e(s.n_files),
            _e(s.bids), dicom, images, red, deface, morph]


SERIES_HEADER = ["subject", "session", "series", "modality", "files", "BIDS target", "DICOM", "images released",
                 "burned-in text", "defacing", "morphometry"]


def render_summary_html(summary: DatasetSummary) -> str:
    """The summary page: verdict, counts, subjects, series."""
    verdict, reasons = summary.verdict()
    subj_rows = []
    for sub in summary.subjects:
        ss = [s for s in summary.series if s.subject == sub]
        vc = {v: sum(v in s.verdicts for s in ss) for v in ("PASS", "WARN", "FAIL")}
        subj_rows.append([
            f"sub-{_e(sub)}", _e(len({s.session for s in ss})), _e(len(ss)),
            _e(sum(s.n_images for s in ss)), _e(sum(s.dicom == "released" for s in ss)),
            _e(sum(s in summary.withheld for s in ss)),
            f"{vc['PASS']} / {vc['WARN']} / {vc['FAIL']}",
        ])
    body = (
        f"<h1 id=\"neurodeid-summary\">{_e(TITLE)}</h1>"
        f"<div class=\"verdict v-{verdict}\" id=\"verdict\">{_e(VERDICT_TEXT[verdict])}</div>"
        "<ul>" + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>"
        "<h2>Dataset summary</h2>"
        + _table(["what", "count"], [list(r) for r in summary.count_rows()])
        + "<h2>Subjects</h2>"
        + _table(["subject", "sessions", "series", "BIDS images released", "DICOM series released",
                  "series withheld", "checks PASS / WARN / FAIL"], subj_rows, raw=True)
        + "<h2>Series</h2>"
        + _table(SERIES_HEADER, [_series_row(s) for s in summary.series], raw=True)
        + "<p>Pictures and tables per subject: the categories of this report, subcategory = subject. "
          "The QC pictures show original (identifying) pixels: they are private.</p>"
    )
    return _page(TITLE, body, "neurodeid-summary-page")


def render_subject_html(summary: DatasetSummary, subject: str) -> str:
    """One subject's page: its series and what happened to each."""
    ss = [s for s in summary.series if s.subject == subject]
    q = [r for r in summary.quarantine if f"sub-{subject}/" in r.get("file", "")]
    body = (
        f"<h1>sub-{_e(subject)}</h1>"
        + _table(SERIES_HEADER, [_series_row(s) for s in ss], raw=True)
        + "<h2>Files of this subject withheld by a stage</h2>"
        + _table(["file", "status", "stage", "reason"], [[r.get(c, "") for c in ("file", "status", "stage", "reason")]
                                                         for r in q])
    )
    return _page(f"sub-{subject}", body, "neurodeid-subject-page")


def render_quarantine_html(summary: DatasetSummary) -> str:
    rows = [[r.get(c, "") for c in ("file", "status", "stage", "reason")] for r in summary.quarantine]
    body = ("<h1>Quarantine: input files that did not make it</h1>"
            "<p class=\"private\">Names raw file paths (which may identify): private.</p>"
            + _table(["file", "status", "stage", "reason"], rows, empty="no file was skipped or quarantined"))
    return _page("Quarantine", body, "neurodeid-quarantine-page")


def render_withheld_html(summary: DatasetSummary) -> str:
    withheld = [[f"sub-{s.subject}", f"ses-{s.session}", s.series, s.modality,
                 s.dicom + (f": {s.dicom_reason}" if s.dicom_reason else ""), s.images_note]
                for s in summary.withheld]
    unmatched = [[f"sub-{s.subject}", f"ses-{s.session}", s.series, s.modality, s.bids]
                 for s in summary.unmatched + summary.skipped]
    body = ("<h1>Withheld and unmatched series</h1>"
            "<h2>Withheld from the release (DICOM or images)</h2>"
            + _table(["subject", "session", "series", "modality", "DICOM", "images"], withheld,
                     empty="no series was withheld")
            + "<h2>Not converted: unmatched by the BIDS rules, or skipped by a rule</h2>"
            + _table(["subject", "session", "series", "modality", "why"], unmatched,
                     empty="every series matched a BIDS rule"))
    return _page("Withheld and unmatched series", body, "neurodeid-withheld-page")


def render_audit_html(summary: DatasetSummary) -> str:
    a = summary.audit
    if not a.ran:
        head = "<p class=\"FAIL\">The release audit has not run.</p>"
    else:
        cls = "PASS" if a.passed else "FAIL"
        head = (f"<p class=\"{cls}\">{a.hits} identifying value(s) found; {a.files_scanned} file(s) scanned "
                f"for {a.needles} identifying value(s) of the raw headers and file names.</p>")
    rows = [[f, fld, attr, cat, masked, todo, str(n)]
            for (f, fld, attr, cat, masked, todo), n in sorted(a.by_hit.items())]
    allowed = [[u["value"], u["reason"], u["needles"], u["sources"]] for u in a.allowed]
    body = ("<h1>Release audit</h1>" + head
            + "<p>Per hit: the released file, the field in it, the attribute of the raw data the value came from, "
              "its category and the value masked (first character and length); the values themselves are only "
              "in the private file private/audit.tsv (a value that occurs in a file name is shown as [...]).</p>"
            + _table(["released file", "field", "attribute of the raw data", "category", "value (masked)",
                      "what to do", "hits"], rows, empty="no identifying value in the release")
            + "<h2>Site allow-list (audit.allow) used</h2>"
            + _table(["value", "reason", "needles", "attributes"], allowed, empty="no audit.allow entry"))
    return _page("Release audit", body, "neurodeid-audit-page")


def render_review_html(summary: DatasetSummary) -> str:
    """Every reviewer's decision beside the automatic verdict, and the release changelog."""
    from .review import CHANGELOG_HEADER, DECISION_HEADER

    t = summary.review or {}
    dec = [[_e(r[0]), _badge(r[1]), _e(r[2]), _e(r[3]), _e(r[4]), _e(r[5])] for r in t.get("decisions", [])]
    log = [[_e(r[0]), _e(r[1]), _e(r[2]), _badge(r[3]), _e(r[4]), _e(r[5])] for r in t.get("changelog", [])]
    body = ("<h1>Review decisions and release changelog</h1>"
            "<p>Decisions come from the file named by config <code>review.decisions</code> (an edited copy of "
            "private/review.tsv); no reviewer is named. <em>refused</em>: an accept that cannot release the item "
            "(no defaced or redacted image exists); the release audit still gates everything.</p>"
            "<h2>Decisions</h2>"
            + _table(list(DECISION_HEADER), dec, raw=True, empty="no decision: the automatic verdicts decide")
            + "<h2>Changelog: items that entered or left the release, newest run first</h2>"
            + _table(list(CHANGELOG_HEADER), log, raw=True, empty="the release log is empty"))
    return _page("Review decisions", body, "neurodeid-review-page")


def _rst_escape(text: str) -> str:
    return re.sub(r"([\\`*_|])", r"\\\1", str(text))


def headline_counts(summary: DatasetSummary) -> list[str]:
    """The few counts the landing page shows (the full table is on the summary page)."""
    vc = summary.verdict_counts()
    a = summary.audit
    return [
        f"{len(summary.subjects)} subject(s), {len(summary.sessions)} session(s), "
        f"{len(summary.series)} series ({summary.n_files} file(s))",
        f"{summary.count(conversion='ok')} series converted, {summary.released_images} BIDS image(s) released, "
        f"{sum(s.deface == 'PASS' for s in summary.series)} series defaced, "
        f"{sum(s.redaction == 'PASS' for s in summary.series)} redacted",
        f"checks: {vc['PASS']} PASS, {vc['WARN']} WARN, {vc['FAIL']} FAIL",
        f"{len(summary.withheld)} series withheld, {len(summary.quarantined)} file(s) quarantined",
        "release audit: " + ("not run" if not a.ran else f"{a.hits} hit(s) in {a.files_scanned} file(s)"),
    ]


def render_summary_rst(summary: DatasetSummary) -> str:
    """The verdict and the headline counts as reStructuredText, short enough for the
    report's landing page (which includes it); the full table is in ``summary.html``."""
    verdict, reasons = summary.verdict()
    lines = [f"**{_rst_escape(TITLE)}** **{_rst_escape(VERDICT_TEXT[verdict])}**", ""]
    lines += [f"- {_rst_escape(r)}" for r in reasons] + [""]
    lines += ["*" + _rst_escape("; ".join(headline_counts(summary))) + ".*", ""]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Writing (thin I/O) and the command line
# ---------------------------------------------------------------------------


def write_report_pages(summary: DatasetSummary, out_dir: str | os.PathLike,
                       subjects_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write the summary, table and subject pages into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    pages = {
        "summary.html": render_summary_html(summary),
        "summary_counts.rst": render_summary_rst(summary),
        "quarantine.html": render_quarantine_html(summary),
        "withheld.html": render_withheld_html(summary),
        "audit.html": render_audit_html(summary),
        "review.html": render_review_html(summary),
    }
    written = []
    for name, text in pages.items():
        write_text_atomic(out / name, text)
        written.append(out / name)
    sdir = Path(subjects_dir) if subjects_dir is not None else out / "subjects"
    sdir.mkdir(parents=True, exist_ok=True)
    for sub in summary.subjects:
        write_text_atomic(sdir / f"sub-{sub}.html", render_subject_html(summary, sub))
        written.append(sdir / f"sub-{sub}.html")
    return written


def is_demo_fingerprint(fp: str) -> bool:
    """Whether a key fingerprint is the public demo key's."""
    from . import keys

    return bool(fp) and fp == keys.fingerprint(keys.DEMO_KEY)
