"""File-level entry point: :func:`deface_file` (the `neurodeid deface` command is in :mod:`neurodeid.cli.deface`)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .core import DefaceError, deface_image
from .params import METHODS


def deface_file(in_path, out_path, method: str = "template", params: dict | None = None,
                mask_out=None, brain_mask_out=None, qc_dir=None, face_check: bool = True,
                fallback: bool = True) -> dict:
    """Deface one NIfTI head with ``method``; when it fails its checks, try the other
    methods in the order of :data:`METHODS`, each judged by the same checks.

    Parameters are those of :func:`deface_file_with`; ``fallback=False`` tries ``method``
    only. The image is read, registered to the template and its independent brain mask
    extracted once; every method reuses them. The summary says which method succeeded (``method``) and why the earlier ones
    failed (``failed_methods``: method -> reason).

    Raises
    ------
    DefaceError
        Every method failed; the message gives every method's reason.
    """
    order = [method] + ([m for m in METHODS if m != method] if fallback else [])
    failed: dict[str, str] = {}
    before = original_face_check(in_path) if face_check else None  # one look, every method
    brains: dict = {}  # one independent brain extraction, every method
    for m in order:
        try:
            summary = deface_file_with(in_path, out_path, m, params, mask_out, brain_mask_out,
                                       qc_dir, face_check, face_before=before,
                                       _brain_cache=brains)
        except DefaceError as e:
            failed[m] = str(e)
            continue
        except ValueError as e:  # parameters of one method that another does not know
            if m == method:
                raise
            failed[m] = str(e)
            continue
        summary["failed_methods"] = failed
        return summary
    raise DefaceError(" | ".join(f"{m}: {r}" for m, r in failed.items()))


def original_face_check(in_path):
    """The face check of a NIfTI volume as acquired (4-D: the mean over time); see
    :func:`neurodeid.deface.face.check_volume`.

    Raises
    ------
    DefaceError
        The file cannot be read as NIfTI.
    """
    from . import face
    from .io import load_head

    try:
        img, _, affine = load_head(in_path)
    except Exception as e:  # nibabel raises many types
        raise DefaceError(f"{Path(in_path).name}: cannot read as NIfTI ({e}); give a .nii or "
                          ".nii.gz") from e
    return face.check_volume(np.asanyarray(img.dataobj, dtype=np.float32), affine)


def deface_file_with(in_path, out_path, method: str = "template", params: dict | None = None,
                     mask_out=None, brain_mask_out=None, qc_dir=None,
                     face_check: bool = True, face_before=None, _brain_cache=None) -> dict:
    """Deface one NIfTI head with one method and write the result on the original grid.

    Parameters
    ----------
    in_path, out_path : path-like
        Input and output ``.nii``/``.nii.gz``. The output keeps the input header (dtype,
        scaling, affine) byte for byte; removed voxels get the background (image minimum, or
        ``ct_background_hu`` for CT). 4-D inputs: volume 0 decides, every volume is defaced.
    method : {"template", "shell", "threshold-morphology", "connected-threshold"}
    params : dict, optional
        Flat parameters (see :mod:`neurodeid.deface.params`).
    mask_out : path-like, optional
        uint8 removal mask (1 = removed) on the input grid.
    brain_mask_out : path-like, optional
        uint8 protected region (registered template brain dilated by the margin).
    qc_dir : path-like, optional
        Folder for ``deface_triplanar.png``, ``deface_render.png`` and (with
        ``face_check``) ``deface_faces.png`` (renders before/after with detection boxes).
    face_check : bool
        Look for a face on surface renders of the original and of the defaced volume
        (:mod:`neurodeid.deface.face`); a face still detected after defacing fails the
        image, and so does a defaced face that dlib's face recognition still matches to the
        original's (embedding distance < 0.6). Scores and the distance go to
        ``summary["face_before"]`` / ``["face_after"]``.
    face_before : neurodeid.deface.face.FaceCheck, optional
        The original's face check when already made (:func:`original_face_check`).

    Returns
    -------
    dict
        JSON-able summary: removed_ml, brain_overlap_ml, registration_metric,
        face_region_residual_ml, seconds, method, params, ... Prints nothing.

    Raises
    ------
    DefaceError
        Unreadable input, poor registration, implausible removal, brain overlap, or a face
        still detected after defacing. Nothing is left written then.
    """
    from . import estimate
    from .io import load_head, write_defaced, write_mask

    t0 = time.perf_counter()
    name = Path(in_path).name
    try:
        img, data, affine = load_head(in_path)
    except Exception as e:  # nibabel raises many types
        raise DefaceError(f"{name}: cannot read as NIfTI ({e}); give a .nii or .nii.gz") from e
    if _brain_cache is not None and "brain" in _brain_cache:
        independent = _brain_cache["brain"]
    else:
        independent = _independent_brain(data, affine, method, params, name)
        if _brain_cache is not None:
            _brain_cache["brain"] = independent
    res = deface_image(data, affine, method, params, name=name,
                       independent_brain=None if independent is None else independent.mask,
                       fit_cache=None if _brain_cache is None
                       else _brain_cache.setdefault("fits", {}))
    try:
        write_defaced(in_path, img, res.removal, res.background, out_path)
    except ValueError as e:
        raise DefaceError(f"{name}: {e}; convert the input to .nii.gz first") from e
    if mask_out:
        write_mask(img, res.removal, mask_out)
    if brain_mask_out:
        write_mask(img, res.protected, brain_mask_out)
    summary = dict(res.summary)
    if independent is not None:
        summary.update({"independent_extractor": independent.extractor,
                        "independent_brain_ml": independent.volume_ml,
                        "independent_seconds": independent.seconds})
    if face_check:
        # the face decision and the re-identification check look at pixels: renders of the
        # original and of the defaced volume (4-D: the mean over time)
        from . import face

        orig = face.volume_for_detection(np.asanyarray(img.dataobj, dtype=np.float32))
        before_chk = face_before or face.check_volume(orig, affine)
        after_vol = orig
        after_vol[res.removal] = res.background
        after_chk = face.check_volume(after_vol, affine, reference=before_chk)
        summary["face_before"] = before_chk.summary()
        summary["face_after"] = after_chk.summary()
        if qc_dir:
            from . import qc

            Path(qc_dir).mkdir(parents=True, exist_ok=True)
            qc.write_png(Path(qc_dir) / "deface_faces.png",
                         face.detection_picture(before_chk, after_chk))
        why = None
        if after_chk.face:
            why = (f"a face is still detected on the defaced volume (score "
                   f"{after_chk.best_score:.2f} > {face.FACE_SCORE_THRESHOLD} at yaw/pitch "
                   f"{after_chk.best_view} deg)")
        elif after_chk.skin_kept is not None and after_chk.skin_kept > face.MAX_SKIN_KEPT:
            why = (f"{after_chk.skin_kept:.0%} of the face the detector found on the original "
                   f"is left on the defaced volume (more than {face.MAX_SKIN_KEPT:.0%}, at "
                   f"yaw/pitch {after_chk.skin_kept_view} deg): the face was not removed")
        elif after_chk.recognised:
            why = (f"face recognition still matches the defaced volume to the original "
                   f"(embedding distance {after_chk.distance:.2f} < "
                   f"{face.SAME_PERSON_DISTANCE} at yaw/pitch {after_chk.distance_view} deg)")
        if why:
            Path(out_path).unlink(missing_ok=True)
            for p in (mask_out, brain_mask_out):
                if p:
                    Path(p).unlink(missing_ok=True)
            raise DefaceError(f"{name}: {why}; the image is withheld. Inspect "
                              "deface_faces.png and try another deface.method")
    if qc_dir:
        from . import qc

        after = data.copy()
        after[res.removal] = res.background
        ct = summary["modality"] == "ct"
        thr = estimate.head_threshold(data, ct, summary["params"]["ct_skin_hu"])
        summary["qc"] = [Path(p).name for p in
                         qc.deface_qc(data, after, res.removal, res.vox_to_template, thr, qc_dir)]
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def _independent_brain(data, affine, method, params, name):
    """The independent brain mask protected by the defacing (``independent_brain`` param),
    or ``None`` when switched off."""
    import numpy as np

    from .brainmask import extract_brain
    from .core import detect_ct
    from .params import split_params

    P = split_params(method, params)[0]
    if not P.independent_brain:
        return None
    zooms = np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)
    try:
        return extract_brain(data, zooms, ct=detect_ct(data, P.modality))
    except ValueError as e:  # no tissue above the background threshold
        raise DefaceError(f"{name}: the independent brain extraction failed ({e}); nothing "
                          "was written. Is this a head volume?") from e
