"""``neurodeid report-summary``: the review report's summary and table pages (private)."""

from __future__ import annotations

import argparse
import sys

from ..report import ReportError, collect, is_demo_fingerprint, write_report_pages


def add_summary_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``neurodeid report-summary``."""
    p.add_argument("private_dir", help="results/private of a run")
    p.add_argument("--out-dir", required=True, help="where summary.html, summary_counts.rst and the tables go")
    p.add_argument("--subjects-dir", default=None, help="where sub-<label>.html go (default: OUT_DIR/subjects)")
    p.add_argument("--key-fingerprint", default="", help="the run's key fingerprint (flags the demo key)")
    return p


def summary_main(args: argparse.Namespace) -> int:
    """Run the summary for parsed arguments; 0 on success, 1 with one message on stderr."""
    try:
        summary = collect(args.private_dir, demo_key=is_demo_fingerprint(args.key_fingerprint))
        write_report_pages(summary, args.out_dir, args.subjects_dir)
    except (ReportError, OSError) as exc:
        print(f"report-summary: {exc}", file=sys.stderr)
        return 1
    verdict, reasons = summary.verdict()
    print(f"report-summary: {len(summary.series)} series of {len(summary.subjects)} subject(s); "
          f"may I press send? {verdict} ({'; '.join(reasons)})")
    return 0
