"""The ``neurodeid`` command: one subcommand per workflow step.

The Snakemake rules call these subcommands (``shell: "neurodeid ..."``) so that
every step runs in its own process, locally or on a cluster, with the same code
a user can run by hand. Errors a user can act on are printed as one message
(no traceback) and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__


def _cmd_needles(args: argparse.Namespace) -> int:
    from . import audit
    from .index import read_manifest
    from .profile import check_options

    options = check_options(args.options)
    needles: set = set()
    failed = 0
    for path in read_manifest(args.manifest):
        try:
            needles |= audit.read_file_needles(path, options, min_length=args.min_length)
        except Exception as exc:  # a file the index accepted but that cannot be parsed fully
            failed += 1
            print(f"needles: {path}: header cannot be read in full ({type(exc).__name__}: {exc})", file=sys.stderr)
    audit.save_needles(args.out, needles)
    print(f"needles: {len(needles)} needle(s) from {args.manifest} ({failed} file(s) unreadable)")
    return 0


def _cmd_path_needles(args: argparse.Namespace) -> int:
    from . import audit

    lines = Path(args.paths).read_text(encoding="utf-8").splitlines()[1:]
    needles = audit.path_needles([ln.split("\t")[0] for ln in lines if ln], min_length=args.min_length)
    audit.save_needles(args.out, needles)
    print(f"path-needles: {len(needles)} needle(s) from {len(lines)} path(s)")
    return 0


def _cmd_release_skeleton(args: argparse.Namespace) -> int:
    from .profile import check_options, load_table
    from .release import write_skeleton

    options = sorted(check_options(args.options))
    for p in write_skeleton(args.release_dir, args.subjects, args.name, args.license, options, load_table().edition):
        print(f"release-skeleton: wrote {p}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from . import audit

    hits = audit.audit_release(args.release_dir, args.needles, args.out)
    print(f"audit: {len(hits)} hit(s); table written to {args.out}")
    return 0


def _cmd_check_audit(args: argparse.Namespace) -> int:
    from . import audit
    from .fileio import write_text_atomic

    n = audit.check_audit(args.audit_tsv)
    write_text_atomic(args.out, f"release audit passed: {n} files scanned, 0 identifying values\n")
    print(f"check-audit: release audit passed ({n} files scanned, 0 identifying values)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurodeid", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"neurodeid {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("needles", help="collect the identifying values of one raw series (private)")
    s.add_argument("manifest", help="series manifest TSV written by the index")
    s.add_argument("--out", required=True)
    s.add_argument("--options", nargs="*", default=[])
    s.add_argument("--min-length", type=int, default=3)
    s.set_defaults(func=_cmd_needles)

    s = sub.add_parser("path-needles", help="collect the words of raw file and folder names (private)")
    s.add_argument("paths", help="paths TSV written by the index")
    s.add_argument("--out", required=True)
    s.add_argument("--min-length", type=int, default=3)
    s.set_defaults(func=_cmd_path_needles)

    s = sub.add_parser("release-skeleton", help="write dataset_description.json, participants.tsv, README")
    s.add_argument("subjects", help="subject list TSV written by the index")
    s.add_argument("--release-dir", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--license", default="")
    s.add_argument("--options", nargs="*", default=[])
    s.set_defaults(func=_cmd_release_skeleton)

    s = sub.add_parser("audit", help="scan a release for identifying values")
    s.add_argument("release_dir")
    s.add_argument("--needles", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_audit)

    s = sub.add_parser("check-audit", help="fail when the audit table lists any identifying value")
    s.add_argument("audit_tsv")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_check_audit)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"neurodeid {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
