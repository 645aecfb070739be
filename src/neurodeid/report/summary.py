"""The report's records: what happened to every series of a run, gathered from the private
records (:class:`neurodeid.records.RunRecords`), and the send verdict."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import records
from ..layout import released_dicom_series, series_ids
from ..plan import DICOM_NONE
from ..release.dataset import read_listing
from ..results import Check, StageResult, StageStatus, passed

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
ROUTINE_QUARANTINE = frozenset({StageStatus.SKIPPED})


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
    conversion: str = ""  # "" (not planned) | StageStatus.OK | StageStatus.FAILED
    images: list = field(default_factory=list)  # released BIDS paths (relative to release/)
    images_note: str = ""  # "withheld: ..." / "failed: ..."
    redaction: str = ""  # "" | Check.PASS | Check.FAIL (series-level; per image below)
    redaction_images: tuple = (0, 0)  # (PASS, total)
    deface: str = ""  # "" | Check.PASS | Check.FAIL | "pending"
    deface_note: str = ""
    morphometry: str = ""  # "" | a Check
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
        return [v for v in (self.redaction, self.deface, self.morphometry) if v in tuple(Check)]


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
        out = dict.fromkeys(Check, 0)
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
        if vc[Check.FAIL]:
            review.append(f"{vc[Check.FAIL]} check(s) FAILED (those images stay out of the release)")
        if vc[Check.WARN]:
            review.append(f"{vc[Check.WARN]} check(s) gave a WARNING (released: look at them)")
        conv_failed = self.count(conversion=StageStatus.FAILED)
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
            (no if self.quasi.get("status") == Check.FAIL else review).append(text)
        if no:
            return VERDICT_NO, no + review
        if review:
            return VERDICT_REVIEW, review
        return VERDICT_YES, ["the audit found nothing and every check passed"]

    def count_rows(self) -> list[tuple[str, str]]:
        """The summary table: (what, how many), in the order a reviewer reads it."""
        vc = self.verdict_counts()
        conv_ok, conv_failed = self.count(conversion=StageStatus.OK), self.count(conversion=StageStatus.FAILED)
        red = [s for s in self.series if s.redaction]
        red_img_pass = sum(s.redaction_images[0] for s in red)
        red_img_all = sum(s.redaction_images[1] for s in red)
        deface = [s for s in self.series if s.deface]
        morph = [s for s in self.series if s.morphometry]
        mc = {v: sum(s.morphometry == v for s in morph) for v in Check}
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
             f"{sum(s.deface == Check.PASS for s in deface)} / {sum(s.deface == Check.FAIL for s in deface)}"
             f" / {sum(s.deface == 'pending' for s in deface)} of {len(deface)}"),
            ("Morphometry (PASS / WARN / FAIL)", f"{mc[Check.PASS]} / {mc[Check.WARN]} / {mc[Check.FAIL]}"),
            ("Series redacted (burned-in text)", f"{sum(s.redaction == Check.PASS for s in red)} of {len(red)} PASS;"
             f" images {red_img_pass} of {red_img_all} PASS"),
            ("All checks (PASS / WARN / FAIL)", f"{vc[Check.PASS]} / {vc[Check.WARN]} / {vc[Check.FAIL]}"),
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
    from ..audit import read_allowed

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


def _verdict_column(row: dict) -> Check | str:
    for k in ("verdict", "status", "result"):
        v = (row.get(k) or "").strip().upper()
        if v in tuple(Check):
            return Check(v)
    return ""


def deface_status(result: StageResult | None) -> tuple[Check | str, int, int, str]:
    """``(status, images defaced, images, reasons)`` of one series' defacing result.

    The result (``neurodeid deface-series``) lists ``images`` with ``status`` ``ok`` or
    ``failed`` and a ``reason``; the series is PASS when every image was defaced.
    No result is ``pending`` (defacing has not run).
    """
    if result is None:
        return "pending", 0, 0, ""
    images = result.images
    ok = sum(passed(i.get("status")) for i in images)
    reasons = "; ".join(f"{i.get('image', '')}: {i.get('reason', '')}" for i in images
                        if not passed(i.get("status")))
    status = Check.PASS if images and ok == len(images) else Check.FAIL
    return status, ok, len(images), reasons


_WORST = {"": 0, Check.PASS: 1, Check.WARN: 2, Check.FAIL: 3}


def collect(private_dir: str | os.PathLike, *, demo_key: bool = False) -> DatasetSummary:
    """Gather the summary from the private records of a run (each series'
    :class:`neurodeid.records.SeriesRecords`, which the review sheet renders too).

    Parameters
    ----------
    private_dir : path-like
        ``results/private`` of a run (``index.tsv``, ``release_plan.tsv``, ...). A series
        planned for defacing (with defacing enabled) without a defacing result counts as
        pending; its images' morphometry verdicts come from the series' morphometry table.
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
    planned = {sr.key: sr for sr in rec.series()}

    series: list[SeriesStatus] = []
    listing_cache: dict[str, tuple[list[str], dict[str, str]]] = {}
    for r in index:
        s = SeriesStatus(r["subject"], r["session"], r["series"], r.get("modality", ""),
                         int(r.get("n_files") or 0))
        sr = planned.get(s.key)
        p = sr.plan if sr else None
        ids = series_ids(s)
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
        entry = sr.names if sr else None
        if isinstance(entry, list):
            s.conversion = StageStatus.OK
        elif isinstance(entry, dict) and "failed" in entry:
            s.conversion = StageStatus.FAILED
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
        data = sr.text if sr else None
        if data is not None:
            s.redaction = Check.PASS if data.status == Check.PASS else Check.FAIL
            s.redaction_images = (sum(f.get("status") == Check.PASS for f in data.files), len(data.files))
        if sr and sr.defacing:
            s.deface, ok, n, why = deface_status(sr.deface)
            if s.deface != "pending" and why:
                s.deface_note = why
            elif n:
                s.deface_note = f"{ok} of {n} image(s)"
        # morphometry: one row per BIDS image of the series; the worst verdict counts
        morph = sr.morphometry if sr else {}
        for e in (entry if isinstance(entry, list) else []):
            name = Path(e.get("bids", "")).name
            row = morph.get(e.get("image", ""))
            if row is None:
                continue
            v, why = _verdict_column(row), row.get("reasons") or row.get("reason") or ""
            if _WORST[v] >= _WORST[s.morphometry]:
                s.morphometry = v
            if why:
                s.morphometry_note = "; ".join(x for x in (s.morphometry_note, f"{name}: {why}") if x)
        series.append(s)

    quarantine = rec.tsv("quarantine.tsv", missing_ok=True)
    audit = read_audit(rec.path("audit.tsv"))
    n_released = sum(len(v[0]) for v in listing_cache.values())
    from ..review import report_tables

    quasi_path = rec.path("quasi/k_anonymity.json")
    quasi = _read_json(quasi_path) if quasi_path.is_file() else {}
    return DatasetSummary(series=series, quarantine=quarantine, audit=audit, demo_key=demo_key,
                          released_files=n_released, review=report_tables(private_dir), quasi=quasi or {})
