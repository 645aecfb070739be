"""The conversion stage of a BIDS input: each image imported (sanitised) in place of a
DICOM conversion, and its release names.

:func:`import_series` is the "conversion" of one image of a BIDS input
(:mod:`neurodeid.inputs.bids` indexed it): voxel data and affine are copied byte for byte,
NIfTI header text is replaced, extensions are dropped, the JSON sidecar is rebuilt through
the allow-list. :func:`session_names` names a session's imported images for the release.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

from ..results import StageResult, StageStatus, write_stage_result
from ..inputs.bids import (_COPY_CHUNK, IMPORT_COMPRESSLEVEL, NiftiReadError, _image_info, _open, _parse_header_block,
                           _sort_files, merged_sidecar, read_nifti_header)
from .naming import bids_name



def bids_release_name(subject: str, session: str | None, target: dict) -> str:
    """Release path without extension, e.g. ``sub-X/ses-1/pet/sub-X_ses-1_trc-FDG_rec-ac_pet``:
    :func:`neurodeid.convert.naming.bids_name`, strict (every entity must be a BIDS one)."""
    return bids_name(subject, session, target, strict=True)


def session_names(subject: str, session: str, conversions: dict[str, StageResult]) -> dict:
    """Release names of one session's imported images, in :func:`neurodeid.release.session.name_session`'s shape.

    Parameters
    ----------
    subject, session : str
        Pseudonymous labels without ``sub-`` / ``ses-``.
    conversions : dict
        series label -> :func:`import_series` result.

    Returns
    -------
    dict
        series label -> ``[{"image", "bids", "datatype"}]``, or ``{"failed": reason}`` for a
        series whose import failed.
    """
    out: dict = {}
    for label, conv in sorted(conversions.items()):
        if conv.status != StageStatus.OK or not conv.images:
            out[label] = {"failed": conv.reason}
            continue
        out[label] = [{"image": Path(im["nifti"]).name, "bids": bids_release_name(subject, session, im["bids"]),
                       "datatype": im["bids"]["datatype"]} for im in conv.images]
    return out


# --------------------------------------------------------------------------- import


def _copy_nifti1(src: Path, dst: Path) -> None:
    """Uncompressed NIfTI-1 copy without extensions: header bytes and voxel bytes as they are,
    ``vox_offset`` set to 352 and the extension flag to 0. Raises NiftiReadError."""
    name = src.name
    try:
        with _open(src) as fh, open(dst, "wb") as out:
            head = fh.read(540)
            _hdr, version, endian, shape, dtype, _z, vox_offset = _parse_header_block(head, name)
            if version != 1:
                raise NiftiReadError(f"{name}: internal error: NIfTI-2 given to the NIfTI-1 copy")
            nbytes = int(math.prod(int(s) for s in shape)) * int(dtype.itemsize)
            block = bytearray(head[:348])
            block[108:112] = struct.pack(endian + "f", 352.0)
            out.write(bytes(block) + b"\0\0\0\0")
            if vox_offset <= len(head):
                data = head[vox_offset:]
            else:
                skip = vox_offset - len(head)
                while skip:
                    got = fh.read(min(skip, _COPY_CHUNK))
                    if not got:
                        break
                    skip -= len(got)
                data = b""
            left = nbytes
            data = data[:left]
            out.write(data)
            left -= len(data)
            while left > 0:
                got = fh.read(min(left, _COPY_CHUNK))
                if not got:
                    break
                out.write(got)
                left -= len(got)
            if left > 0:
                raise NiftiReadError(f"{name}: voxel data truncated ({nbytes - left} of {nbytes} bytes)")
    except (OSError, EOFError, zlib.error) as exc:
        raise NiftiReadError(f"{name}: cannot be read in full ({type(exc).__name__}: {exc})") from None


def _nifti2_to_nifti1(src: Path, dst: Path) -> None:
    """A NIfTI-2 image rewritten as NIfTI-1 (voxel values, affines and codes, scaling kept)."""
    import nibabel as nib
    import numpy as np

    img = nib.load(str(src))
    if any(int(s) > 32767 for s in img.shape):
        raise NiftiReadError(f"{src.name}: NIfTI-2 image of shape {img.shape} does not fit NIfTI-1")
    h2 = img.header
    data = np.asanyarray(img.dataobj.get_unscaled())
    h1 = nib.Nifti1Header()
    h1.set_data_dtype(data.dtype)
    h1.set_data_shape(data.shape)
    h1.set_zooms(h2.get_zooms())
    h1.set_xyzt_units(*h2.get_xyzt_units())
    new = nib.Nifti1Image(data, None, h1)
    q, qc = h2.get_qform(coded=True)
    s, sc = h2.get_sform(coded=True)
    new.set_qform(q if q is not None else h2.get_best_affine(), int(qc))
    new.set_sform(s if s is not None else h2.get_best_affine(), int(sc))
    new.header.set_slope_inter(*h2.get_slope_inter())
    new.header.set_dim_info(*h2.get_dim_info())
    for k in ("intent_code", "intent_p1", "intent_p2", "intent_p3", "slice_start", "slice_end", "slice_code",
              "slice_duration", "toffset", "cal_max", "cal_min"):
        new.header[k] = h2[k]
    nib.save(new, str(dst))


def _check_numeric_text(path: Path) -> bytes:
    data = path.read_bytes()
    try:
        text = data.decode("ascii")
        [float(t) for t in text.split()]
    except (UnicodeDecodeError, ValueError):
        raise NiftiReadError(f"{path}: not a table of numbers (bval/bvec must hold only numbers)") from None
    return data


def _scaling(hdr) -> tuple:
    """(slope, inter) with 'no scaling' spelled one way (nibabel gives None, nan or 0 slope)."""
    slope, inter = hdr.get_slope_inter()
    if slope is None or not math.isfinite(float(slope)) or float(slope) == 0:
        return (1.0, 0.0)
    return (float(slope), float(inter or 0.0) if inter is None or math.isfinite(float(inter)) else 0.0)


def _same_geometry(src: Path, out: Path) -> str:
    """'' when ``out`` has the shape, dtype, affines (with codes) and scaling of ``src``."""
    import nibabel as nib
    import numpy as np

    a, b = nib.load(str(src)).header, nib.load(str(out)).header
    checks = [
        ("shape", a.get_data_shape() == b.get_data_shape()),
        ("dtype", a.get_data_dtype() == b.get_data_dtype()),
        ("zooms", np.allclose(a.get_zooms(), b.get_zooms())),
        ("slope/inter", _scaling(a) == _scaling(b)),
    ]
    for which in ("qform", "sform"):
        ma, ca = getattr(a, f"get_{which}")(coded=True)
        mb, cb = getattr(b, f"get_{which}")(coded=True)
        same = int(ca) == int(cb) and (ma is None) == (mb is None) and (ma is None or np.allclose(ma, mb, atol=1e-5))
        checks.append((which, same))
    bad = [n for n, ok in checks if not ok]
    return f"imported image differs from the input in {', '.join(bad)}" if bad else ""


def import_series(files, out_dir, result_json, allowlist: dict | None = None,
                  compresslevel: int = IMPORT_COMPRESSLEVEL) -> StageResult:
    """Import one indexed BIDS image: the "conversion" step of a BIDS input.

    Writes into ``out_dir`` (created):

    - ``image.nii.gz``: NIfTI-1 with the input's header bytes and voxel bytes unchanged
      (shape, dtype, scaling, qform/sform and their codes, voxel axis order i, j, k),
      except that extensions are removed (``vox_offset`` 352) and the text fields
      ``descrip``, ``aux_file``, ``intent_name``, ``db_name`` are set by
      :func:`neurodeid.convert.sanitise_nifti_header` (as conversion does). A NIfTI-2
      input is rewritten as NIfTI-1 with the same voxel values and affines.
    - ``image.json``: the sidecar merged by BIDS inheritance and rebuilt through the
      allow-list (:func:`neurodeid.convert.sanitise_sidecar`); ``TaskName`` is set to
      the ``task`` entity of the name when the image has one (a public label already in
      the release name; BIDS requires it for func).
    - ``image.bval`` / ``image.bvec``: copied when present (checked to hold numbers only).

    ``result_json`` gets the conversion-result shape read by the later stages::

        {"status": "ok" | "failed", "reason": str, "source": "bids",
         "images": [{"nifti": "image.nii.gz", "json": "image.json", "bval": ..., "bvec": ...,
                     "suffix_hint": "", "notes": [...],
                     "bids": {"datatype", "suffix", "entities"}}]}

    Parameters
    ----------
    files : list of path
        The series' files (its manifest): one NIfTI and the sidecars that follow it.
    out_dir, result_json : path
    allowlist : dict, optional
        field -> type; default the packaged sidecar allow-list.

    Returns
    -------
    StageResult
        The result written to ``result_json``. A failure (unreadable or truncated file,
        bad sidecar) gives ``status: failed`` with the reason naming the file; it never
        raises for a bad input file.
    """
    from .sanitise import sanitise_nifti_header, sanitise_sidecar
    from ._gzip import gzip_file

    files = [Path(f) for f in files]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("image.*"):
        old.unlink()
    tmp = out_dir / ".image.tmp.nii"
    try:
        images, jsons, bval, bvec = _sort_files(files)
        if len(images) != 1:
            raise NiftiReadError(f"expected one NIfTI among the series' files, found {len(images)}: "
                                 f"{[str(p) for p in images]}")
        src = images[0]
        try:
            datatype, entities, suffix = _image_info(src)
        except ValueError as exc:
            raise NiftiReadError(f"{src}: name is not usable BIDS ({exc})") from None
        hdr_info = read_nifti_header(src)
        if hdr_info["nifti_version"] == 1:
            _copy_nifti1(src, tmp)
        else:
            _nifti2_to_nifti1(src, tmp)
        sanitise_nifti_header(tmp)
        final = out_dir / "image.nii.gz"
        gzip_file(tmp, final, level=compresslevel)
        tmp.unlink()
        problem = _same_geometry(src, final)
        if problem:
            raise NiftiReadError(f"{src}: {problem}")
        notes = [(f"imported from a BIDS input ({datatype}/{suffix}); voxel data and affine copied unchanged; "
                  "NIfTI header text fixed, extensions removed")]
        raw = merged_sidecar(jsons)
        clean, dropped = sanitise_sidecar(raw, allowlist)
        if "task" in entities:
            clean["TaskName"] = entities["task"]
        (out_dir / "image.json").write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")
        notes.append(f"sidecar rebuilt from the allow-list from {len(jsons)} JSON file(s): "
                     f"{len(clean)} field(s) kept, {len(dropped)} dropped")
        image = {"nifti": final.name, "json": "image.json", "bval": None, "bvec": None}
        for ext, p in (("bval", bval), ("bvec", bvec)):
            if p is not None:
                (out_dir / f"image.{ext}").write_bytes(_check_numeric_text(p))
                image[ext] = f"image.{ext}"
        image.update({"suffix_hint": "", "notes": notes,
                      "bids": {"datatype": datatype, "suffix": suffix, "entities": entities}})
        result = StageResult("convert", StageStatus.OK, images=[image], measures={"source": "bids"})
    except Exception as exc:  # noqa: BLE001 - a bad input fails this series loudly, never the run
        for p in list(out_dir.glob("image.*")) + [tmp]:
            p.unlink(missing_ok=True)
        reason = str(exc) if isinstance(exc, NiftiReadError) else f"{type(exc).__name__}: {exc}"
        result = StageResult("convert", StageStatus.FAILED, f"import failed: {reason}", measures={"source": "bids"})
    write_stage_result(result_json, result)
    return result


