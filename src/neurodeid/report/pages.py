"""The report's pages: HTML and reStructuredText rendered from a
:class:`~neurodeid.report.summary.DatasetSummary` (pure), and written next to each other."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from ..fileio import write_text_atomic
from ..results import Check, StageStatus
from .summary import TITLE, VERDICT_TEXT, DatasetSummary, SeriesStatus


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
    return f'<span class="{_e(v)}">{_e(v)}</span>' if v in tuple(Check) else _e(v)


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
        vc = {v: sum(v in s.verdicts for s in ss) for v in Check}
        subj_rows.append([
            f"sub-{_e(sub)}", _e(len({s.session for s in ss})), _e(len(ss)),
            _e(sum(s.n_images for s in ss)), _e(sum(s.dicom == "released" for s in ss)),
            _e(sum(s in summary.withheld for s in ss)),
            f"{vc[Check.PASS]} / {vc[Check.WARN]} / {vc[Check.FAIL]}",
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
        cls = Check.PASS if a.passed else Check.FAIL
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
    from ..review import CHANGELOG_HEADER, DECISION_HEADER

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
        f"{summary.count(conversion=StageStatus.OK)} series converted, {summary.released_images} BIDS image(s) released, "
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
    from .. import keys

    return bool(fp) and fp == keys.fingerprint(keys.DEMO_KEY)
