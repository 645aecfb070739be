"""The ``neurodeid`` command: one subcommand per workflow step.

Each ``_cmd_*`` is an adapter: parsed arguments -> one library call -> what it did printed
-> exit code. What a job does (its loop over files, its result record, its release policy)
lives in the library, next to the stage (``run_series``/``*_series``/``*_job`` functions).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import __version__
from ..results import Check, StageStatus


def _cmd_path_needles(args: argparse.Namespace) -> int:
    from .. import audit

    lines = Path(args.paths).read_text(encoding="utf-8").splitlines()[1:]
    needles = audit.path_needles([ln.split("\t")[0] for ln in lines if ln], min_length=args.min_length)
    audit.save_needles(args.out, needles)
    print(f"path-needles: {len(needles)} needle(s) from {len(lines)} path(s)")
    return 0


def _cmd_quasi_report(args: argparse.Namespace) -> int:
    from ..deid.quasi import QuasiPolicy
    from ..fileio import write_text_atomic
    from ..kanon import IDENTIFIERS, analyse, render_html, write_outputs

    policy = QuasiPolicy.from_mapping(json.loads(args.quasi) if args.quasi else None)
    report = analyse(args.release_dir, args.listings, identifiers=args.identifiers or IDENTIFIERS, k_min=args.k_min,
                     applied=policy.applied(), gate=args.gate)
    write_outputs(report, args.out_tsv, args.out_json)
    write_text_atomic(args.out_html, render_html(report))
    print(f"quasi-report: {report.status}: {len(report.below)} of {len(report.k)} subject(s) with k < {args.k_min}; "
          f"distribution of k {report.distribution}")
    return 0


def _cmd_check_quasi(args: argparse.Namespace) -> int:
    from ..fileio import write_text_atomic
    from ..kanon import check

    ok, message = check(args.summary)
    print(message, file=sys.stdout if ok else sys.stderr)
    if ok:
        write_text_atomic(args.out, message + "\n")
    return 0 if ok else 1


def _cmd_release_skeleton(args: argparse.Namespace) -> int:
    from ..deid.profile import check_options, load_table
    from ..release.dataset import write_skeleton

    options = sorted(check_options(args.options))
    keep = None
    if args.listings is not None:
        from ..review import subjects_with_items

        keep = set(subjects_with_items(args.listings))
    for p in write_skeleton(args.release_dir, args.subjects, args.name, args.license, options, load_table().edition,
                            authors=args.authors, keep=keep, listings=args.listings):
        print(f"release-skeleton: wrote {p}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from .. import audit

    import json

    allow = json.loads(args.allow_json) if args.allow_json else []
    try:
        hits = audit.audit_release(args.release_dir, args.needles, args.out, min_length=args.min_length, allow=allow,
                                   workers=args.workers)
    except audit.AllowListError as exc:
        print(f"audit: STOPPED: {exc}", file=sys.stderr)
        return 2
    print(f"audit: {len(hits)} hit(s); {len(allow)} audit.allow entr(y/ies); table written to {args.out}")
    return 0


def _cmd_check_audit(args: argparse.Namespace) -> int:
    from .. import audit
    from ..fileio import write_text_atomic

    n = audit.check_audit(args.audit_tsv)
    write_text_atomic(args.out, f"release audit passed: {n} files scanned, 0 identifying values\n")
    print(f"check-audit: release audit passed ({n} files scanned, 0 identifying values)")
    return 0


def _cmd_deid(args: argparse.Namespace) -> int:
    from .. import keys
    from ..deid import DeidConfig
    from ..deid.quasi import QuasiPolicy
    from ..index import read_manifest
    from ..jobs import ConvertStage, TextStage, series_job

    key = keys.load_key(args.key_file or None, allow_demo=args.allow_demo_key)
    cfg = DeidConfig(
        key=key,
        subject_label=args.subject,
        session_label=args.session,
        date_shift_days=keys.date_shift_days(key, args.subject),
        options=frozenset(args.options),
        quasi=QuasiPolicy.from_mapping(json.loads(args.quasi) if args.quasi else None),
    )
    text = None
    if args.text_out_dir:  # the text stage on the de-identified files, in the same job
        if not (args.text_result and args.text_qc_dir and args.text_qc and args.needles_out):
            print("deid: --text-out-dir needs --text-result, --text-qc-dir, --text-qc and --needles-out",
                  file=sys.stderr)
            return 2
        text = TextStage(args.text_out_dir, args.text_result, args.text_qc_dir, args.text_qc,
                         _redaction_config(args.text_config_json), mode=args.text_mode,
                         face_screen=args.text_face_screen)
    convert = None
    if args.convert_out_dir:  # the conversion and face check of what is left, in the same job
        if not (args.convert_result and args.face_result):
            print("deid: --convert-out-dir needs --convert-result and --face-result", file=sys.stderr)
            return 2
        convert = ConvertStage(args.convert_out_dir, args.convert_result, args.face_result,
                               args.dcm2niix or None, planned=not args.not_converted,
                               face_check=not args.no_face_check, why_not=args.not_converted,
                               face_qc_dir=args.face_qc_dir or None)
    files = read_manifest(args.manifest)
    whole = series_job(files, args.out_dir, args.report, cfg, needles_out=args.needles_out,
                       min_length=args.min_length, text=text, convert=convert)
    out = whole.deid
    if args.needles_out:  # the audit's needles, from the same raw files, in the same job
        print(f"needles: {out.needles} needle(s) from {len(files)} file(s) ({out.unreadable} unreadable)")
    results = out.deid
    n_ok = sum(r["status"] == StageStatus.OK for r in results)
    print(f"deid: {n_ok} of {len(results)} file(s) de-identified into {args.out_dir}")
    for r in results:
        if r["status"] != StageStatus.OK:
            print(f"deid: quarantined {r['reason']}", file=sys.stderr)
    if out.text is not None:
        _print_text_result(out.text, args.text_mode)
    if whole.convert is not None:
        _print_convert_result(whole.convert, whole.n_converted_files, whole.face)
    return 0


def _cmd_quarantine(args: argparse.Namespace) -> int:
    from ..quarantine import gather, write_quarantine

    rows = gather(args.index_tsv, args.deid_reports, args.redact_results)
    write_quarantine(args.out, rows)
    print(f"quarantine: {len(rows)} file(s) listed in {args.out}")
    return 0


def _print_convert_result(result, n_files: int, face) -> None:
    print(f"convert: {len(result.images)} image(s) from {n_files} file(s); status {result.status}"
          + (f" ({result.reason})" if result.reason else ""))
    for r in face.images if face is not None else []:
        print(f"face check: {r['image']}: {r['status']} {r['reason']}")


def _cmd_convert(args: argparse.Namespace) -> int:
    from ..convert import convert_series_job

    result, n_files = convert_series_job(args.dicom_dir, args.out_dir, args.result, args.dcm2niix)
    _print_convert_result(result, n_files, None)
    return 0


def _cmd_import_bids(args: argparse.Namespace) -> int:
    """One image of a BIDS input: imported like a conversion (sanitised), needles collected."""
    from ..convert.bids_import import import_series
    from ..inputs.bids import write_bids_needles
    from ..index import read_manifest

    files = read_manifest(args.manifest)
    # the input labels come from the manifest's paths: never on a command line (logs keep those)
    n = write_bids_needles(args.needles_out, files, None, None, args.bids_dir, min_length=args.min_length)
    result = import_series(files, args.out_dir, args.result)
    print(f"import-bids: status {result.status}; {len(result.images)} image(s); {n} needle(s)")
    if result.status != StageStatus.OK:
        print(f"import-bids: {result.reason}", file=sys.stderr)
    return 0


def _cmd_release_subject(args: argparse.Namespace) -> int:
    from ..release.subject import release_subject_job

    plan, r = release_subject_job(args.plan, work_dir=args.work_dir, private_dir=args.private_dir,
                                  release_dir=args.release_dir, tmp_dir=args.tmp_dir, heuristics=args.heuristics,
                                  decisions_file=args.decisions, names_json=args.names, listing_tsv=args.listing,
                                  applied_json=args.applied, nrrd=args.nrrd)
    for a in r.applied:
        print(f"release-subject: {a['item']}: {a['record']}")
    for n in r.notes:
        print(f"release-subject: sub-{plan['subject']}/{n['series']}: {n['status']}: {n['reason']}", file=sys.stderr)
    print(f"release-subject: sub-{plan['subject']}: {len(r.files)} file(s) released; "
          f"{len(r.notes)} series or image(s) withheld or failed")
    return 0


def _redaction_config(text: str):
    import json

    from ..redact import RedactionConfig

    d = json.loads(text or "{}")
    d.pop("images", None)  # the list of plain images is the workflow's business
    return RedactionConfig.from_mapping(d)


def _print_text_result(res, mode: str) -> None:
    for r in res.files:
        if r["status"] != Check.PASS:
            print(f"redact: {r['file']} FAILED and stays out of the release: {'; '.join(r.get('reasons', []))}",
                  file=sys.stderr)
    if res.reason:
        print(f"redact: {res.reason}", file=sys.stderr)
    rows = res.files
    print(f"redact ({mode}): {sum(r['status'] == Check.PASS for r in rows)} of {len(rows)} image(s) PASS")


def _cmd_redact(args: argparse.Namespace) -> int:
    from .. import audit
    from ..redact.series import run_series

    cfg = _redaction_config(args.config_json)
    needles = [[n.text, n.source] for n in audit.load_needles(args.needles)]
    res = run_series(args.dicom_dir, args.out_dir, args.result, cfg, needles, mode=args.mode,
                     qc_dir=args.qc_dir, qc_png=args.qc, face_screen=args.face_screen)
    _print_text_result(res, args.mode)
    return 0


def _cmd_deface(args: argparse.Namespace) -> int:
    """``neurodeid deface IN OUT ...``: the same function the workflow's rule calls, on one image."""
    from .deface import add_deface_arguments, deface_main

    parser = add_deface_arguments(argparse.ArgumentParser(prog="neurodeid deface", description="Deface one NIfTI head."))
    return deface_main(parser.parse_args(args.args))


def _cmd_face_check_series(args: argparse.Namespace) -> int:
    from ..deface.series import face_check_series

    for r in face_check_series(args.convert_dir, args.result, args.qc_dir or None).images:
        print(f"face check: {r['image']}: {r['status']} {r['reason']}")
    return 0


def _cmd_deface_series(args: argparse.Namespace) -> int:
    from ..deface.series import deface_series

    record = deface_series(args.convert_dir, args.out_dir, args.result, args.qc_dir, args.triplanar, args.render,
                           args.method, json.loads(args.params_json or "{}"), faces=args.faces)
    ok = sum(r["status"] == StageStatus.OK for r in record.images)
    print(f"deface: {ok} of {len(record.images)} image(s) defaced with {args.method}")
    return 0


def _cmd_morphometry_series(args: argparse.Namespace) -> int:
    from ..morphometry import MorphometryThresholds, morphometry_series

    thresholds = MorphometryThresholds.from_config(json.loads(args.thresholds_json or "{}"))
    for v in morphometry_series(args.convert_dir, args.deface_dir, args.deface_result, args.out_dir, args.out,
                                args.label, thresholds):
        print(f"morphometry: {v['image']}: {v['verdict']} {'; '.join(v['reasons'])}")
    return 0


def _cmd_morphometry_summary(args: argparse.Namespace) -> int:
    from ..morphometry import MorphometryThresholds, morphometry_summary

    thresholds = MorphometryThresholds.from_config(json.loads(args.thresholds_json or "{}"))
    counts = morphometry_summary(args.tables, args.out, args.plot, args.failed, thresholds)
    print(f"morphometry-summary: {sum(counts.values())} image(s): {counts}")
    return 0


def _cmd_deface_dicom(args: argparse.Namespace) -> int:
    from .. import keys
    from ..deface.dicom import deface_dicom_series

    key = keys.load_key(args.key_file or None, allow_demo=args.allow_demo_key)
    result = deface_dicom_series(args.deid_dir, args.convert_dir, args.deface_dir, args.morphometry_dir,
                                 args.out_dir, args.result, key)
    if result.status != StageStatus.OK:
        print(f"deface-dicom: withheld: {result.reason}", file=sys.stderr)
    print(f"deface-dicom: {result.status}")
    return 0


def _cmd_redact_image(args: argparse.Namespace) -> int:
    """A plain 2D image (JPEG/PNG) listed in config: redact, verify by OCR, release only on PASS."""
    from .. import audit
    from ..redact.files import redact_listed_image

    cfg = _redaction_config(args.config_json)
    needles = [[n.text, n.source] for n in audit.load_needles(args.needles)] if args.needles else []
    r = redact_listed_image(args.image, args.release_out, args.result, args.qc, cfg, needles)
    if r.status != Check.PASS:
        print(f"redact-image: {args.image} FAILED and stays out of the release: "
              f"{'; '.join(r.measures.get('reasons') or [])}", file=sys.stderr)
    print(f"redact-image: {r.status}")
    return 0


def _cmd_review_sheet(args: argparse.Namespace) -> int:
    from ..review import VERDICTS, write_review_sheet

    rows = write_review_sheet(args.private_dir, args.out)
    counts = {str(v): sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    print(f"review-sheet: {len(rows)} item(s): {counts}")
    return 0


def _cmd_release_log(args: argparse.Namespace) -> int:
    from .. import review
    from ..fileio import write_text_atomic

    verdicts = {r["item"]: r["verdict"] for r in review.read_sheet(args.sheet)}
    now = review.released_items(args.listings, verdicts)
    decisions = {a["item"]: (a["decision"], a["note"]) for a in review.read_applied(args.applied)}
    run_id = review.release_run_id(args.listings)
    rows = review.update_release_log(args.log, run_id, None, now, decisions, verdicts)
    lines = ["item\tverdict\tdecision\tnote"] + [
        f"{i}\t{verdicts.get(i, '')}\t{decisions.get(i, ('default', ''))[0]}\t{decisions.get(i, ('', ''))[1]}"
        for i in sorted(now)]
    write_text_atomic(args.state, "\n".join(lines) + "\n")
    print(f"release-log: run {run_id}: {sum(r['change'] == 'entered' for r in rows)} item(s) entered, "
          f"{sum(r['change'] == 'left' for r in rows)} left; {len(now)} released")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurodeid", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"neurodeid {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("path-needles", help="collect the words of raw file and folder names (private)")
    s.add_argument("paths", help="paths TSV written by the index")
    s.add_argument("--out", required=True)
    s.add_argument("--min-length", type=int, default=3)
    s.set_defaults(func=_cmd_path_needles)

    s = sub.add_parser("deid", help="de-identify one series (DICOM PS3.15 Annex E)")
    s.add_argument("manifest", help="series manifest TSV written by the index")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--report", required=True, help="per-file TSV (private: names input paths)")
    s.add_argument("--subject", required=True, help="subject label without 'sub-'")
    s.add_argument("--session", required=True, help="session label without 'ses-'")
    s.add_argument("--options", nargs="*", default=[])
    s.add_argument("--key-file", default="")
    s.add_argument("--allow-demo-key", action="store_true")
    s.add_argument("--needles-out", default="", help="also write the raw series' audit needles here (private)")
    s.add_argument("--min-length", type=int, default=3, help="shortest needle (characters)")
    s.add_argument("--quasi", default="", help="config section quasi as JSON (age cap, generalisation); default: cap 090Y")
    s.add_argument("--text-out-dir", default="",
                   help="also read the de-identified files for burned-in text (as `neurodeid redact --out-dir`)")
    s.add_argument("--text-result", default="", help="the text stage's result (as `neurodeid redact --result`)")
    s.add_argument("--text-qc-dir", default="", help="as `neurodeid redact --qc-dir`")
    s.add_argument("--text-qc", default="", help="as `neurodeid redact --qc`")
    s.add_argument("--text-mode", choices=("read", "screen"), default="read", help="as `neurodeid redact --mode`")
    s.add_argument("--text-config-json", default="{}", help="as `neurodeid redact --config-json`")
    s.add_argument("--text-face-screen", action="store_true", help="as `neurodeid redact --face-screen`")
    s.add_argument("--convert-out-dir", default="",
                   help="then convert what is left (as `neurodeid convert --out-dir`)")
    s.add_argument("--convert-result", default="", help="as `neurodeid convert --result`")
    s.add_argument("--face-result", default="",
                   help="the face check of the converted images (as `neurodeid face-check-series --result`)")
    s.add_argument("--dcm2niix", default="", help="as `neurodeid convert --dcm2niix`")
    s.add_argument("--face-qc-dir", default="",
                   help="the face check's pictures of images with a face (private; as `face-check-series --qc-dir`)")
    s.add_argument("--no-face-check", action="store_true",
                   help="a series planned for defacing: its images are listed as skipped in the face record")
    s.add_argument("--not-converted", default="", metavar="REASON",
                   help="the plan does not convert the series: empty folder, records say REASON")
    s.set_defaults(func=_cmd_deid)

    s = sub.add_parser("quarantine", help="gather every skipped or quarantined file with its reason")
    s.add_argument("index_tsv")
    s.add_argument("--deid-reports", nargs="*", default=[])
    s.add_argument("--redact-results", nargs="*", default=[])
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_quarantine)

    s = sub.add_parser("convert", help="convert one de-identified series to NIfTI + sanitised sidecar")
    s.add_argument("dicom_dir")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--result", required=True, help="conversion.json (status, images, notes)")
    s.add_argument("--dcm2niix", default="", help="a dcm2niix binary (default: the one on PATH / the pip wheel)")
    s.set_defaults(func=_cmd_convert)

    s = sub.add_parser("import-bids", help="import one image of a BIDS input (sanitised) and collect its needles")
    s.add_argument("manifest", help="the image's manifest (private: names input paths)")
    s.add_argument("--bids-dir", required=True, help="the input BIDS dataset")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--result", required=True, help="conversion-shaped result JSON")
    s.add_argument("--needles-out", required=True)
    s.add_argument("--min-length", type=int, default=2)
    s.set_defaults(func=_cmd_import_bids)

    s = sub.add_parser("release-subject", help="put one subject's images and DICOM series into the release")
    s.add_argument("plan", help="the subject's plan (private JSON written when the workflow is parsed)")
    s.add_argument("--work-dir", required=True, help="where the stage outputs are (convert/, deface/, ...)")
    s.add_argument("--private-dir", required=True, help="where the defacing results are (deface/)")
    s.add_argument("--release-dir", required=True)
    s.add_argument("--tmp-dir", required=True, help="where each folder is built before it is renamed into place")
    s.add_argument("--heuristics", default="", help="BIDS naming heuristics (YAML; default: the bundled ones)")
    s.add_argument("--decisions", default="", help="the subject's review decisions (JSON from split_decisions)")
    s.add_argument("--names", required=True, help="private JSON: the BIDS names of every converted image")
    s.add_argument("--listing", required=True, help="private TSV of the released files and their sha256")
    s.add_argument("--applied", required=True, help="private JSON of the decisions applied")
    s.add_argument("--nrrd", action=argparse.BooleanOptionalAction, default=True)
    s.set_defaults(func=_cmd_release_subject)

    s = sub.add_parser("redact", help="remove burned-in text from one de-identified series (OCR-verified)")
    s.add_argument("dicom_dir")
    s.add_argument("--out-dir", required=True, help="redacted files (only those that PASS)")
    s.add_argument("--mode", choices=("read", "screen"), default="read",
                   help="read: every image and frame read and redacted (2D series); screen: a volume's slices "
                        "screened, read and redacted only when text is found (default: read)")
    s.add_argument("--result", required=True)
    s.add_argument("--needles", nargs="+", required=True, help="the series' private needle lists")
    s.add_argument("--qc-dir", required=True, help="before/after pictures (private: they show the text)")
    s.add_argument("--qc", required=True, help="the series' QC picture for the report (private)")
    s.add_argument("--config-json", default="{}")
    s.add_argument("--face-screen", action="store_true",
                   help="read mode: also look for a face in the pixels (a series released as DICOM, not converted); "
                        "a face withholds the whole series")
    s.set_defaults(func=_cmd_redact)

    s = sub.add_parser("deface-series", help="deface every converted image of one series")
    s.add_argument("convert_dir")
    s.add_argument("--out-dir", required=True, help="defaced images + removal and protected masks (private)")
    s.add_argument("--result", required=True)
    s.add_argument("--qc-dir", required=True)
    s.add_argument("--triplanar", required=True, help="QC picture for the report (private: shows the face)")
    s.add_argument("--render", required=True, help="QC surface render for the report (private)")
    s.add_argument("--faces", help="QC face detector renders before/after, with boxes, for the report (private)")
    s.add_argument("--method", default="template")
    s.add_argument("--params-json", default="{}")
    s.set_defaults(func=_cmd_deface_series)

    s = sub.add_parser("face-check-series",
                       help="look for a face on renders of every converted image of a series not defaced")
    s.add_argument("convert_dir")
    s.add_argument("--result", required=True, help="per-image face decisions (JSON, private)")
    s.add_argument("--qc-dir", default="", help="pictures of what the detector saw on images with a face (private)")
    s.set_defaults(func=_cmd_face_check_series)

    s = sub.add_parser("deface", add_help=False, help="deface one NIfTI head (prints a JSON summary)",
                       usage="neurodeid deface IN OUT [--method M] [--mask-out FILE] [--qc-dir DIR] ...")
    s.add_argument("args", nargs=argparse.REMAINDER)
    s.set_defaults(func=_cmd_deface)

    s = sub.add_parser("morphometry-series", help="brain and tissue measures, original vs defaced, per image")
    s.add_argument("convert_dir")
    s.add_argument("deface_dir")
    s.add_argument("--deface-result", required=True)
    s.add_argument("--label", required=True, help="series label written into the tables (no identifiers)")
    s.add_argument("--out-dir", required=True, help="one TSV per image")
    s.add_argument("--out", required=True, help="the series' TSV (all images, with verdicts)")
    s.add_argument("--thresholds-json", default="{}")
    s.set_defaults(func=_cmd_morphometry_series)

    s = sub.add_parser("morphometry-summary", help="one table and one plot over all images")
    s.add_argument("tables", nargs="*")
    s.add_argument("--out", required=True)
    s.add_argument("--plot", required=True)
    s.add_argument("--failed", required=True, help="private list of FAIL images with their numbers")
    s.add_argument("--thresholds-json", default="{}")
    s.set_defaults(func=_cmd_morphometry_summary)

    s = sub.add_parser("report-summary", help="the review report's summary page and tables (private)")
    from .report import add_summary_arguments, summary_main

    add_summary_arguments(s)
    s.set_defaults(func=summary_main)

    s = sub.add_parser("deface-dicom", help="write a de-identified DICOM series again with the defaced pixels")
    s.add_argument("deid_dir")
    s.add_argument("convert_dir")
    s.add_argument("deface_dir")
    s.add_argument("--morphometry-dir", required=True, help="per-image morphometry TSVs: a FAIL withholds the series")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--result", required=True)
    s.add_argument("--key-file", default="")
    s.add_argument("--allow-demo-key", action="store_true")
    s.set_defaults(func=_cmd_deface_dicom)

    s = sub.add_parser("redact-image", help="remove burned-in text from a plain JPEG/PNG listed in config")
    s.add_argument("image")
    s.add_argument("--release-out", required=True, help="where the redacted image goes in the release (PASS only)")
    s.add_argument("--result", required=True)
    s.add_argument("--qc", required=True, help="before/after picture (private)")
    s.add_argument("--needles", nargs="*", default=[])
    s.add_argument("--config-json", default="{}")
    s.set_defaults(func=_cmd_redact_image)

    s = sub.add_parser("review-sheet", help="write the review sheet: one row per released or withheld item")
    s.add_argument("private_dir")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_review_sheet)

    s = sub.add_parser("release-log", help="log the items that entered or left the release at this run")
    s.add_argument("--listings", nargs="*", default=[], help="private listings of released files")
    s.add_argument("--applied", nargs="*", default=[], help="decisions applied by the release jobs")
    s.add_argument("--sheet", required=True, help="the review sheet (automatic verdicts)")
    s.add_argument("--log", required=True, help="release_log.tsv (append-only)")
    s.add_argument("--state", required=True, help="the items released now (TSV)")
    s.set_defaults(func=_cmd_release_log)

    s = sub.add_parser("quasi-report", help="k-anonymity of the release over the quasi-identifiers (private)")
    s.add_argument("release_dir")
    s.add_argument("--listings", nargs="*", default=[], help="private listings of released files, one per subject")
    s.add_argument("--identifiers", nargs="*", default=None, help="quasi-identifiers (default: all known)")
    s.add_argument("--k-min", type=int, default=5)
    s.add_argument("--quasi", default="", help="config section quasi as JSON (for the generalisation applied)")
    s.add_argument("--gate", action="store_true", help="k < k-min is a FAIL (checked by check-quasi)")
    s.add_argument("--out-tsv", required=True)
    s.add_argument("--out-json", required=True)
    s.add_argument("--out-html", required=True)
    s.set_defaults(func=_cmd_quasi_report)

    s = sub.add_parser("check-quasi", help="fail when a subject's k is below k_min (quasi.gate)")
    s.add_argument("summary", help="JSON summary written by quasi-report")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_check_quasi)

    s = sub.add_parser("release-skeleton", help="write dataset_description.json, participants.tsv, README")
    s.add_argument("subjects", help="subject list TSV written by the index")
    s.add_argument("--release-dir", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--license", default="")
    s.add_argument("--authors", nargs="*", default=[])
    s.add_argument("--options", nargs="*", default=[])
    s.add_argument("--listings", nargs="*", default=None,
                   help="private listings of released files: participants.tsv keeps only subjects with a file")
    s.set_defaults(func=_cmd_release_skeleton)

    s = sub.add_parser("audit", help="scan a release for identifying values")
    s.add_argument("release_dir")
    s.add_argument("--needles", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--min-length", type=int, default=None, help="shortest needle looked for (characters)")
    s.add_argument("--allow-json", default="",
                   help="the site allow-list as JSON: [{value, reason}, ...] (config audit.allow)")
    s.add_argument("--workers", type=int, default=1, help="processes scanning file contents (same result)")
    s.set_defaults(func=_cmd_audit)

    s = sub.add_parser("check-audit", help="fail when the audit table lists any identifying value")
    s.add_argument("audit_tsv")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_check_audit)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["deface"]:  # its own parser (imports SimpleITK only when used)
        return _cmd_deface(argparse.Namespace(args=argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"neurodeid {args.command}: {exc}", file=sys.stderr)
        return 1
