"""``neurodeid deface IN OUT ...``: one head volume defaced by hand, with the function the
workflow's ``deface-series`` job calls for every image."""

from __future__ import annotations

import argparse
import json
import sys

from ..deface.api import deface_file
from ..deface.core import DefaceError
from ..deface.params import METHODS


def _param(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        val = json.loads(v)
    except json.JSONDecodeError:
        val = v
    return k.strip().replace("-", "_"), val


def add_deface_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``IN OUT [--method M] [--mask-out FILE] [--brain-mask-out FILE] [--qc-dir DIR]
    [--param KEY=VALUE ...] [--threads N]`` to ``parser``."""
    parser.add_argument("input", metavar="IN", help="input head volume (.nii/.nii.gz)")
    parser.add_argument("output", metavar="OUT", help="defaced output (.nii/.nii.gz)")
    parser.add_argument("--method", default="template", choices=METHODS,
                        help="defacing method (default: template)")
    parser.add_argument("--mask-out", metavar="FILE", help="write the removal mask here")
    parser.add_argument("--brain-mask-out", metavar="FILE",
                        help="write the protected brain region here")
    parser.add_argument("--qc-dir", metavar="DIR", help="write QC pictures (PNG) here")
    parser.add_argument("--param", metavar="KEY=VALUE", type=_param, action="append",
                        default=[], help="method parameter, e.g. brain_margin_mm=5 (repeatable)")
    parser.add_argument("--threads", type=int, default=None, help="registration threads")
    return parser


def deface_main(args: argparse.Namespace) -> int:
    """Run :func:`deface_file` from parsed arguments; print the JSON summary to stdout.

    Returns 0 on success, 2 on :class:`DefaceError` (message on stderr).
    """
    params = dict(args.param or [])
    if getattr(args, "threads", None):
        params["threads"] = args.threads
    try:
        summary = deface_file(args.input, args.output, method=args.method, params=params,
                              mask_out=args.mask_out, brain_mask_out=args.brain_mask_out,
                              qc_dir=args.qc_dir)
    except (DefaceError, ValueError) as e:
        print(f"neurodeid deface: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0
