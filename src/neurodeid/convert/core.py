"""Convert one de-identified DICOM series with dcm2niix, sanitise and check every output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..results import StageResult, StageStatus, write_stage_result
from ._gzip import gzip_file
from .errors import ConversionError, GeometryError
from .geometry import Stack, check_affine, check_resampled, check_voxels, group_stacks, resample_stack
from .headers import SliceHeader, read_slice_headers
from .sanitise import sanitise_nifti_header, sanitise_sidecar

__all__ = ["find_dcm2niix", "convert_series", "DCM2NIIX_ARGS"]

#: dcm2niix options (besides -o, -f and the input folder). BIDS sidecar with dates and
#: names stripped (we rebuild it anyway), uncompressed output (we patch the header then
#: compress), keep original integers, no cropping, merge 2D slices by default rules.
DCM2NIIX_ARGS = ("-b", "y", "-ba", "y", "-z", "n", "-l", "o", "-x", "n", "-i", "n", "-w", "2", "-v", "0", "-d", "0")

#: dcm2niix output postfixes that mark its own derived copies; neurodeid makes its own
_DERIVED_POSTFIXES = ("_Eq_", "_Tilt_")


def find_dcm2niix(dcm2niix: str | None = None) -> str:
    """Path of the dcm2niix executable.

    Parameters
    ----------
    dcm2niix : str, optional
        A user-installed binary; default: ``dcm2niix`` on PATH, then the binary shipped
        by the ``dcm2niix`` PyPI wheel (``<venv>/bin/dcm2niix``).

    Raises
    ------
    ConversionError
        When no executable is found.
    """
    if dcm2niix:
        found = shutil.which(dcm2niix) or (dcm2niix if os.access(dcm2niix, os.X_OK) else None)
        if not found:
            raise ConversionError(f"dcm2niix executable {dcm2niix!r} not found or not executable; give a valid path")
        return found
    found = shutil.which("dcm2niix")
    if found:
        return found
    cand = Path(sys.executable).parent / "dcm2niix"
    if cand.exists():
        return str(cand)
    try:
        import dcm2niix as _pkg  # the PyPI wheel

        for p in Path(_pkg.__file__).parent.rglob("dcm2niix*"):
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    except ImportError:
        pass
    raise ConversionError("dcm2niix not found: `pip install dcm2niix` or pass dcm2niix='/path/to/dcm2niix'")


_IGNORABLE_SUFFIXES = {".txt", ".md", ".json", ".csv", ".tsv", ".xml", ".html", ".pdf", ".log", ".ini"}


def _is_dicom_candidate(p: Path) -> bool:
    """Could dcm2niix take ``p`` for a DICOM file? (cheap: name and preamble)"""
    if p.suffix.lower() in _IGNORABLE_SUFFIXES or p.name.upper().startswith("README") or p.name.startswith("."):
        return False
    return True


def _input_folder(files: list[Path], tmp: Path, tag: str) -> Path:
    """A folder holding exactly the series' files for dcm2niix.

    When the files are all the DICOM candidates of one folder, that folder is used as is
    (no staging). Otherwise they are hard-linked (same file system) or symlinked into a
    private folder. (Removing symlinks that dcm2niix has read is slow on ext4, hard links
    are not.)
    """
    parents = {f.parent for f in files}
    if len(parents) == 1:
        parent = parents.pop()
        given = {f.name for f in files}
        try:
            others = [p for p in parent.iterdir() if p.name not in given and p.is_file() and _is_dicom_candidate(p)]
            subdirs = [p for p in parent.iterdir() if p.is_dir()]
        except OSError:
            others, subdirs = [None], []
        if not others and not subdirs:
            return parent
    folder = tmp / f"in{tag}"
    folder.mkdir(parents=True)
    for i, f in enumerate(files):
        dst = folder / f"{i:06d}.dcm"
        try:
            os.link(f, dst)
        except OSError:
            os.symlink(Path(f).resolve(), dst)
    return folder


def _start(exe: str, files: list[Path], tmp: Path, stem: str, tag: str):
    inp, out = _input_folder(files, tmp, tag), tmp / f"out{tag}"
    out.mkdir()
    proc = subprocess.Popen(
        [exe, *DCM2NIIX_ARGS, "-f", stem, "-o", str(out), str(inp)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, out


def _finish(proc, out: Path, first: Path) -> list[Path]:
    log, _ = proc.communicate()
    niis = sorted(out.glob("*.nii"))
    if proc.returncode != 0 or not niis:
        tail = "\n".join(log.strip().splitlines()[-6:])
        raise ConversionError(
            f"dcm2niix failed on the series starting {first} (exit {proc.returncode}, {len(niis)} image(s)); "
            f"its last lines:\n{tail}\nCheck that the files are one image series and readable DICOM"
        )
    return niis


def _pixels(h: SliceHeader, position: np.ndarray, cache: dict):
    """DICOM stored values (rows, cols) of the image ``h`` at ``position``; None if undecodable."""
    import pydicom

    key = h.path
    if key not in cache:
        try:
            ds = pydicom.dcmread(h.path)
            cache[key] = (ds.pixel_array, None)
        except Exception as exc:  # noqa: BLE001 - missing decoder etc.: check skipped, said in notes
            cache[key] = (None, f"{type(exc).__name__}: {str(exc)[:120]}")
    arr, err = cache[key]
    if arr is None:
        return None, err
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and h.frame == 0 and arr.shape[0] != 1:
        return None, "colour image: voxel check skipped"
    if arr.ndim == 3:
        arr = arr[h.frame]
    if h.mosaic_n:
        normal = h.extra["mosaic_normal"]
        t = int(round(float((position - h.position) @ normal) / h.extra["spacing_between_slices"]))
        side = int(np.ceil(np.sqrt(h.mosaic_n)))
        r0, c0 = (t // side) * h.rows, (t % side) * h.cols
        arr = arr[r0 : r0 + h.rows, c0 : c0 + h.cols]
    return arr, None


_MAX_VOXEL_TRIES = 64


def _voxel_check(data, index_map, stack: Stack, cache: dict, name: str) -> str | None:
    """Look for the pixels of a DICOM image at the first position among the NIfTI voxels the affine gives them.

    Every image at the first slice position is a candidate (several for 4D, multi-echo,
    magnitude/phase or repeated acquisitions that dcm2niix writes as separate outputs); the
    output passes when one of them is found in one of its volumes.
    """
    reasons = []
    tried = 0
    members = stack.members[0]
    for h in members[:_MAX_VOXEL_TRIES]:
        px, why = _pixels(h, stack.positions[0], cache)
        if px is None:
            reasons.append(why)
            continue
        tried += 1
        if check_voxels(data, index_map, px, 0, name):
            return None
    if tried == 0:
        return f"voxel check skipped ({'; '.join(sorted(set(reasons)))})"
    if len(members) > _MAX_VOXEL_TRIES:
        return f"voxel check inconclusive: none of the first {_MAX_VOXEL_TRIES} of {len(members)} images at the first position found"
    raise GeometryError(
        f"{name}: the pixels of the first DICOM slice ({members[0].path}) are not at the voxels "
        "the output affine assigns to them (flipped or misplaced data); the series is not released"
    )


def _shape_fits(shape, stack: Stack) -> bool:
    return sorted(int(s) for s in shape[:3]) == sorted((stack.cols, stack.rows, stack.n_slices))


def _candidates(shape, stacks, reports, tol_mm, gap_factor):
    """(stack, report) pairs an output of ``shape`` may come from.

    Whole stacks whose size fits first; then runs of consecutive positions of a larger stack
    (dcm2niix writes some images of one orientation as separate outputs, e.g. localizer
    slices or repeated acquisitions).
    """
    for stack, rep in zip(stacks, reports):
        if _shape_fits(shape, stack):
            yield stack, rep
    n = int(shape[2]) if len(shape) > 2 else 1
    for stack in stacks:
        if stack.n_slices > n and sorted(int(x) for x in shape[:2]) == sorted((stack.rows, stack.cols)):
            for i in range(stack.n_slices - n + 1):
                sub = stack.window(i, n)
                yield sub, sub.spacing_report(tol_mm, gap_factor)


def _postfix(nii: Path, stem: str) -> str:
    return nii.name[: -len(".nii")][len(stem) :]


def _process_outputs(
    niis,
    stacks,
    reports,
    stem,
    work_dir,
    notes_common,
    cache,
    tol_mm,
    gap_factor,
    voxel_check,
    compress,
    compresslevel,
    tag,
):
    import nibabel as nib

    results = []
    for nii in niis:
        post = _postfix(nii, stem)
        if any(p in post for p in _DERIVED_POSTFIXES):
            continue  # dcm2niix's own equalised / tilt-corrected copies: neurodeid makes its own
        img = nib.load(str(nii))
        shape = img.shape
        notes = list(notes_common)
        done = False
        best_err: GeometryError | None = None
        for stack, rep in _candidates(shape, stacks, reports, tol_mm, gap_factor):
            sheared = (
                rep["kind"] != "single"
                and rep["shear_deg"] > 0
                and np.tan(np.radians(rep["shear_deg"])) * abs(float(stack.heights()[-1])) > tol_mm
            )
            if rep["kind"] in ("uniform", "single") and not sheared:
                try:
                    err, index_map = check_affine(img.affine, shape, stack, tol_mm, nii.name)
                except GeometryError as exc:
                    best_err = best_err or exc
                    continue
                notes.append(f"geometry checked against DICOM first/last slice: max error {err:.4f} mm")
                if voxel_check:
                    msg = _voxel_check(img.dataobj.get_unscaled(), index_map, stack, cache, nii.name)
                    notes.append(msg or "voxel check passed: first DICOM slice found at the mapped voxels")
                done = True
                break
            if rep["kind"] == "gaps":
                raise GeometryError(
                    f"{nii.name}: slice stack starting {stack.first_file} still has gaps after splitting "
                    f"(steps {rep['steps_mm']} mm); the series is not released"
                )
            if rep["kind"] == "uneven" or sheared:
                if len(shape) > 3 and int(np.prod(shape[3:])) > 1:
                    raise GeometryError(
                        f"{nii.name}: 4D series starting {stack.first_file} is tilted or unevenly spaced "
                        f"({rep['kind']}, shear {rep['shear_deg']:.2f} deg); resampling 4D data is not supported"
                    )
                data = np.asarray(img.dataobj.get_unscaled()).reshape(shape[:3])
                first_last = tuple(
                    _pixels(stack.members[i][0], stack.positions[i], cache)[0] for i in (0, stack.n_slices - 1)
                )
                new, aff, info = resample_stack(data, img.affine, stack, nii.name, first_last)
                err = check_resampled(aff, new.shape, stack, tol_mm, nii.name)
                hdr = img.header.copy()
                slope, inter = img.header.get_slope_inter()
                out_img = nib.Nifti1Image(new, aff, hdr)
                out_img.set_qform(aff, 1)
                out_img.set_sform(aff, 1)
                out_img.header.set_slope_inter(slope, inter)
                del img, data
                tmp_nii = nii.with_name(nii.stem + "_resampled.nii")
                nib.save(out_img, str(tmp_nii))
                os.replace(tmp_nii, nii)  # never truncate a file that may still be memory-mapped
                why = []
                if sheared:
                    why.append(
                        f"gantry tilt / sheared stack ({rep['shear_deg']:.2f} deg, GantryDetectorTilt {stack.tilt_deg:g})"
                    )
                if rep["kind"] == "uneven":
                    why.append(f"uneven slice spacing (steps {min(rep['steps_mm']):.4g}-{max(rep['steps_mm']):.4g} mm)")
                notes.append("resampled: " + " and ".join(why) + "; " + "; ".join(info["method"]))
                notes.append(f"resampled grid checked against DICOM first/last slice: max error {err:.4f} mm")
                if info["slice_order_from"] != "data":
                    notes.append("slice order taken from the converter's origin (DICOM pixels not decodable here)")
                done = True
                break
        if not done:
            if best_err is not None:
                raise best_err
            raise GeometryError(
                f"{nii.name}: output shape {tuple(shape)} matches no slice stack of the series starting "
                f"{stacks[0].first_file if stacks else '?'} (stacks: "
                f"{[(s.cols, s.rows, s.n_slices) for s in stacks]}); the series is not released"
            )
        sanitise_nifti_header(nii)
        name = stem + tag + post
        if compress:
            final = work_dir / f"{name}.nii.gz"
            gzip_file(nii, final, level=compresslevel)
        else:
            final = work_dir / f"{name}.nii"
            shutil.move(nii, final)
        side = nii.with_suffix(".json")
        raw = json.loads(side.read_text()) if side.exists() else {}
        clean, _dropped = sanitise_sidecar(raw)
        jpath = work_dir / f"{name}.json"
        jpath.write_text(json.dumps(clean, indent=2) + "\n")
        extra = {}
        for ext in ("bval", "bvec"):
            p = nii.with_suffix("." + ext)
            if p.exists():
                dst = work_dir / f"{name}.{ext}"
                shutil.move(p, dst)
                extra[ext] = dst
        results.append(
            {
                "nifti": final,
                "json": jpath,
                "bval": extra.get("bval"),
                "bvec": extra.get("bvec"),
                "suffix_hint": (tag + post).lstrip("_"),
                "notes": notes,
            }
        )
    return results


def convert_series(
    dicom_files: list[Path],
    work_dir: Path,
    *,
    dcm2niix: str | None = None,
    stem: str = "series",
    compress: bool = True,
    compresslevel: int = 1,
    tol_mm: float = 0.1,
    gap_factor: float = 3.0,
    voxel_check: bool = True,
) -> list[dict]:
    """Convert one DICOM series to sanitised, geometry-checked NIfTI + JSON sidecars.

    dcm2niix converts the given files (symlinked into a private temporary folder inside
    ``work_dir``) while the DICOM headers are read independently. Then, for each output:

    * its affine is checked against ImagePositionPatient / ImageOrientationPatient /
      PixelSpacing of the first and last slice (all corners, within ``tol_mm``), and the
      first slice's pixels are looked up at the voxels the affine gives them;
    * gantry-tilted (sheared) stacks and unevenly spaced stacks are resampled onto a
      regular orthogonal grid from the true slice positions (notes say so); stacks with
      gaps larger than ``gap_factor`` x the median step are split and converted piece by
      piece (suffix hint ``partN``, notes say so);
    * the NIfTI text fields are set to fixed text, extensions removed, and the sidecar is
      rebuilt from the allow-list.

    Parameters
    ----------
    dicom_files : list of Path
        All files of ONE de-identified series.
    work_dir : Path
        Output folder (created); files are named ``<stem>[_<hint>].nii.gz`` / ``.json``
        (``.bval`` / ``.bvec`` for diffusion).
    dcm2niix : str, optional
        Path of a dcm2niix binary; default: see :func:`find_dcm2niix`.
    stem : str
        Base name of the outputs.
    compress : bool
        Write ``.nii.gz`` (default) or ``.nii``.
    compresslevel : int
        gzip level (1 = fastest: files about 3 % larger than dcm2niix's level 6, at its speed).
    tol_mm : float
        Geometry tolerance (mm).
    gap_factor : float
        A step along the slice normal larger than this times the median step is a gap.
    voxel_check : bool
        Decode the first slice with pydicom and compare voxel values (skipped with a note
        when pydicom has no decoder for the transfer syntax).

    Returns
    -------
    list of dict
        One per output image: ``nifti``, ``json``, ``bval``, ``bvec`` (Path or None),
        ``suffix_hint`` (dcm2niix postfix such as ``e2``, ``ph``, ``e1_ph``, or ``partN``
        for split pieces; ``""`` for the plain image) and ``notes`` (list of str).

    Raises
    ------
    ConversionError
        dcm2niix missing or failed.
    GeometryError
        An output disagrees with the DICOM geometry, or the series has none.
    """
    files = [Path(f) for f in dicom_files]
    if not files:
        raise ConversionError("convert_series: no files given")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    exe = find_dcm2niix(dcm2niix)
    tmp = Path(tempfile.mkdtemp(prefix=".dcm2niix-", dir=work_dir))
    try:
        return _convert(
            files, work_dir, tmp, exe, stem, compress, compresslevel, tol_mm, gap_factor, voxel_check, tag="", depth=0
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _convert(files, work_dir, tmp, exe, stem, compress, compresslevel, tol_mm, gap_factor, voxel_check, tag, depth):
    proc, out = _start(exe, files, tmp, stem, f"{tag or '_all'}{depth}")
    try:
        headers = read_slice_headers(files)
        if not headers:
            raise ConversionError(f"no readable DICOM image among the {len(files)} file(s) starting {files[0]}")
        stacks = group_stacks(headers)
        reports = [s.spacing_report(tol_mm, gap_factor) for s in stacks]
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    gapped = [(s, r) for s, r in zip(stacks, reports) if r["kind"] == "gaps"]
    if gapped and depth == 0:
        proc.kill()
        proc.communicate()
        groups: list[tuple[list, str]] = []
        rest = set(files)
        n = 0
        for s, r in gapped:
            for piece in s.pieces(r["split_before"]):
                n += 1
                pf = piece.files()
                rest -= set(pf)
                zs = piece.heights() + float(piece.positions[0] @ piece.normal)
                groups.append((pf, f"_part{n}", f"slices at {zs[0]:.2f}..{zs[-1]:.2f} mm along the normal"))
        results = []
        big = [
            f"{b - a:.4g} mm"
            for s, r in gapped
            for a, b in [(s.heights()[i - 1], s.heights()[i]) for i in r["split_before"]]
        ]
        msg = (
            f"split: slice gap(s) of {', '.join(big)} (more than {gap_factor:g} x the median step) "
            f"in a stack of {sum(s.n_slices for s, _ in gapped)} slices; converted as {n} separate pieces"
        )
        if rest:
            groups.append((sorted(rest), "", "other stacks of the series"))
        for pf, ptag, where in groups:
            res = _convert(
                pf, work_dir, tmp, exe, stem, compress, compresslevel, tol_mm, gap_factor, voxel_check, ptag, depth + 1
            )
            for r in res:
                r["notes"].insert(0, msg + f"; this piece: {where}")
            results.extend(res)
        return results
    niis = _finish(proc, out, files[0])
    notes_common = []
    cache: dict = {}
    res = _process_outputs(
        niis,
        stacks,
        reports,
        stem,
        work_dir,
        notes_common,
        cache,
        tol_mm,
        gap_factor,
        voxel_check,
        compress,
        compresslevel,
        tag,
    )
    if not res:
        raise ConversionError(f"dcm2niix wrote no usable image for the series starting {files[0]}")
    return res


def convert_series_job(dicom_dir: str | os.PathLike, out_dir: str | os.PathLike, result_json: str | os.PathLike,
                       dcm2niix: str | None = None) -> tuple[StageResult, int]:
    """One job of the conversion stage: every ``*.dcm`` of ``dicom_dir`` converted into
    ``out_dir`` (images named ``image*``), the result written to ``result_json``.

    Returns the result (status ``ok`` or ``failed``, reason, images) and the number of
    DICOM files read. A failure (no file left
    by the earlier stages, a geometry check, dcm2niix, a crash) leaves no image behind: the
    series is withheld with the reason and the run goes on.
    """
    from ..failure import failure_reason

    dicom_dir, out_dir = Path(dicom_dir), Path(out_dir)
    files = sorted(p for p in dicom_dir.iterdir() if p.suffix == ".dcm")
    try:
        if not files:
            raise ConversionError(f"no DICOM file of {dicom_dir.name} reached conversion: an earlier "
                                  "stage withheld them all (see its result: the text stage's JSON, the quarantine)")
        images = convert_series(files, out_dir, stem="image", dcm2niix=dcm2niix or None)
        result = StageResult("convert", StageStatus.OK, images=[
            {k: (str(v) if isinstance(v, Path) else v) for k, v in im.items()} for im in images])
    except Exception as exc:  # noqa: BLE001 - ConversionError, GeometryError or a crash: the series
        # fails loudly and is withheld; the run goes on
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.iterdir():  # nothing half-written is released
            if stale.is_file():
                stale.unlink()
        result = StageResult("convert", StageStatus.FAILED, failure_reason(exc))
        print(f"convert: FAILED {dicom_dir}: {exc}", file=sys.stderr)
    write_stage_result(result_json, result)
    return result, len(files)
