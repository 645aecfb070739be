"""Parameters of the defacing methods (config ``deface.*``), as dataclasses with defaults.

Every length is in mm, every volume in ml (1 ml = 1000 mm^3). Intensities are in the
image's scaled units (CT: Hounsfield units).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

METHODS = ("template", "shell", "threshold-morphology", "connected-threshold")


@dataclass
class DefaceParams:
    """Parameters shared by all methods (safety rule, registration, plausibility).

    Attributes
    ----------
    brain_margin_mm : float
        The removal never touches the registered template brain mask dilated by this margin
        (6 mm: at 4 mm the template removal reached 4 voxels at the orbital apex next to a
        temporal pole on colin27; when in doubt, tissue is kept).
    brain_fraction : float
        A subject voxel is in the template brain mask when at least this fraction of it is
        (lower = more protective).
    resolution_mm : float
        Registration working resolution.
    multistart : bool
        24 axis-aligned start rotations (needed for rotated/permuted headers).
    n_screen : int
        Multi-start: starts optimised after screening all 24 by their unoptimised metric
        (0 = optimise all 24; slower). A fit that fails ``min_head_dice`` or
        ``max_registration_mi`` is made again with all 24 optimised, the better kept
        (``registration_starts_optimised`` in the summary).
    n_refine : int
        At most this many starts are refined (only starts whose coarse metric is within
        0.05 of the best one; usually one).
    iterations : int
        Optimiser iterations per refinement stage.
    work_mm : float
        Block size (mm) of the grid on which masks are computed; masks are upsampled to
        the image grid by nearest neighbour and the protected region is enlarged by half
        a block diagonal so that the margin holds for every voxel.
    min_head_dice : float
        Fail when the Dice of subject and registered template head masks is below this.
        An early exit only: the face check after defacing and the independent brain mask
        judge every fit that passes it. Set from the head corpus
        (``benchmarks/results/head_corpus_2026-12-06.md``): fits that passed every check
        reached Dice 0.766 (a CT-like vrd_seg3D) and 0.815 (a CT-like colin27), correct fits
        of the real heads 0.86-0.92; 0.85 withheld those two good defacings.
    max_registration_mi : float or None
        MR: fail when the registration's final Mattes mutual information (negative; lower
        is a better fit) is above this (``None``: not checked). The head Dice does not
        catch a fit that is far off on a head whose field of view clips the face (vrd_seg3D
        turned 25 degrees about z: Dice 0.80, the fit 68-73 mm off). Set from the head corpus
        (``benchmarks/results/head_corpus_2026-12-07.md``; each augmentation's fit compared
        with its source's fit, the known turn applied): MR fits within 17 mm (mean over the
        head) reached MI -0.62 at worst (-0.62 to -0.99); the fits 68-73 mm off -0.48, and
        every fit of dcm_qa_deident's T1 (a fruit, no brain: fits scattered 25-123 mm)
        -0.45 to -0.53. -0.57 lies between.
    max_registration_mi_ct : float or None
        The same for CT (windowed to -200..300 HU, where the MI of good fits is higher:
        -0.52 to -0.54 on the CT-like corpus heads, all within 1.5 mm). ``None`` (the
        default): not checked; no bad CT fit has been measured to set it from.
    min_removed_ml, max_removed_ml : float
        Fail when the head tissue removed is outside this range (0 allows images with no
        face, e.g. already defaced).
    max_face_kept_fraction : float or None
        Fail when the removal leaves more than this fraction of the head tissue in the
        registered template's face region (its face mask within the face frame), protected
        or not (``None``: not checked). The protected region is the union of the brain masks
        dilated by the margin; where one of them leaks into a low-contrast face, it protects
        the face, and the removal shrinks to a sliver that the face detector, at its noise
        floor on such heads, does not catch (vrd_seg3D with a PD-like contrast: the shell
        method removed 8.7 ml, left 87 % of the face region, eyes and brows plainly visible,
        and passed the face check). Set from the head corpus
        (``benchmarks/results/face_region_2026-12-07.md``): defacings that pass every other
        check leave 0-35 % (thick slices and bias fields: the brain protection near the
        forehead), the methods whose removal leaks leave 64-87 %.
    max_brain_overlap_ml : float
        Fail when the removal overlaps the intensity-based brain check mask by more than
        this (default 0: any overlap fails).
    check_erode_mm : float
        Erosion of the intensity-based brain check mask: the check mask is the largest
        component of the eroded intensity brain estimate, computed without registration
        (erosion cuts bridges into orbits and temporal muscle: 4 mm was not enough for a
        swollen temporal muscle after surgery). Any overlap of the removal with it fails
        the job.
    check_zone_mm : float
        Distance (mm) from the registered template brain within which the intensity
        brain refines the protected region (see ``refine_brain``); beyond it intensity
        leaks into cheeks, orbits and muscle are not brain.
    refine_brain : bool
        Also protect the subject's intensity brain (opened by ``refine_open_mm``) within
        ``check_zone_mm`` of the registered template brain, dilated by ``refine_margin_mm``.
        It can only add protection (a registration a few mm off on one side must not
        expose cortex).
    refine_margin_mm : float
        Dilation of the refining intensity brain; never less than ``brain_margin_mm`` (the
        larger of the two is used), so the protected region is the union of the template
        brain, the independent brain and the intensity brain, each dilated by at least the
        margin (issue 18; it was 2 mm, and the change moved the removal by 0-2.7 ml on the
        three test heads).
    refine_open_mm : float
        See ``refine_brain``.
    independent_brain : bool
        Also protect (dilated by ``brain_margin_mm``) a brain mask made without the template
        or its threshold (:func:`neurodeid.deface.brainmask.extract_brain`, BET's algorithm),
        so that the margin holds where the registered template brain falls short (issue 18:
        the frontal pole of an unseen 0.9 mm head). Costs one extraction (a few seconds).
    modality : str
        ``"auto"`` (CT if the 1st percentile is below -500), ``"mr"`` or ``"ct"``.
    ct_skin_hu : float
        CT: head (skin) threshold in HU.
    ct_background_hu : float
        CT: value written into removed voxels (HU).
    threads : int
        Threads for SimpleITK.
    """

    brain_margin_mm: float = 6.0
    brain_fraction: float = 0.25
    resolution_mm: float = 3.0
    multistart: bool = True
    n_screen: int = 6
    n_refine: int = 2
    iterations: int = 100
    work_mm: float = 2.0
    min_head_dice: float = 0.75
    max_registration_mi: float | None = -0.57
    max_registration_mi_ct: float | None = None
    min_removed_ml: float = 5.0
    max_removed_ml: float = 1500.0
    max_face_kept_fraction: float | None = 0.5
    max_brain_overlap_ml: float = 0.0
    check_erode_mm: float = 6.0
    check_zone_mm: float = 10.0
    refine_brain: bool = True
    refine_margin_mm: float = 6.0
    refine_open_mm: float = 4.0
    independent_brain: bool = True
    modality: str = "auto"
    ct_skin_hu: float = -300.0
    ct_background_hu: float = -1000.0
    threads: int = 2


@dataclass
class TemplateParams:
    """``template`` method: remove the registered template face mask.

    Attributes
    ----------
    face_fraction : float
        A voxel is removed when at least this fraction of it lies in the face mask.
    envelope : bool
        Also remove what the common removal step (:class:`RemovalParams`) removes, with the
        registered template brain as the brain estimate (the pydeface face mask alone
        leaves the nasion and upper eyelids).
    """

    face_fraction: float = 0.5
    envelope: bool = True


@dataclass
class ShellParams:
    """``shell``: remove everything beyond the convex shell of the protected region seen
    from the anterior-inferior side, within a face box wider and deeper than the other
    methods' (:func:`neurodeid.deface.core._shell_removal`). The cut is smooth and never
    enters the protected region (the brain dilated by the margin), so orbits, nasal cavity
    and mouth are removed with the tissue around them instead of being carved out.

    Measured on chris_t1 (``benchmarks/results/head_corpus_2026-12-06b.md``): the
    ``template`` removal carves down to the protected region, whose anterior-inferior
    surface (orbital roofs, cribriform plate) shows from below as eyes and a nose (detector
    score 0.11 at pitch -40); this shell leaves a flatter cut (-0.43). The pitch and cone
    were chosen on 11 chris_t1 augmentations (pitch 35: 5 of 11 passed the face check,
    45: 3; the detector's score on such cuts varies by about 0.15 with the angles, so the
    choice is weak); removing more around opened cavities, offsetting the shell 5-10 mm
    forward, a 2-D height field or a narrower cone scored worse.

    Attributes
    ----------
    shell_pitch_deg : float
        The shell's axis points anterior, turned this many degrees towards inferior
        (template RAS+ axes).
    shell_cone_deg : float
        The shell's supporting planes have normals within this angle of its axis (45 with
        a 35 degree pitch: from 10 degrees above anterior to 10 degrees short of inferior,
        so above the frontal pole the shell leans forward and leaves the forehead).
    shell_directions : int
        Points of the Fibonacci sphere the cone's normals are taken from (about
        ``shell_directions * (1 - cos(cone)) / 2`` are used).
    shell_half_width_mm : float
        Removal within this distance (mm) of the template mid-sagittal plane.
    shell_depth_mm : float
        Removal at most this far (mm) behind the template brain's frontal pole (70: the
        jaw and the skull base under the temporal lobes; the ears, about 90 mm behind it,
        are kept).
    shell_above_front_mm : float
        Removal up to this height (mm) above the protected region's most anterior point.
    shell_below_mm : float
        Removal down to this distance (mm) under the protected region's lowest point.
    """

    shell_pitch_deg: float = 35.0
    shell_cone_deg: float = 45.0
    shell_directions: int = 400
    shell_half_width_mm: float = 80.0
    shell_depth_mm: float = 70.0
    shell_above_front_mm: float = 40.0
    shell_below_mm: float = 60.0


@dataclass
class ThresholdMorphologyParams:
    """``threshold-morphology``: Otsu head mask, closing, hole filling, largest component;
    brain = bright tissue eroded (cuts bridges to scalp and orbits), largest component,
    re-dilated. Then the common removal step (see :class:`RemovalParams`).

    Attributes
    ----------
    closing_mm : float
        Closing radius of the head mask.
    erode_mm : float
        Erosion (and re-dilation) radius of the brain estimate.
    brain_low : float
        Lower brain threshold as a fraction between the head Otsu level (0) and the
        second (tissue) Otsu level (1).
    """

    closing_mm: float = 4.0
    erode_mm: float = 7.0
    brain_low: float = 0.1


@dataclass
class ConnectedThresholdParams:
    """``connected-threshold``: seeded region growing from brain seeds.

    Seeds: the ``n_seeds`` deepest voxels of the head mask (largest distance to the head
    surface) whose intensity lies within the central tissue range; the growing interval
    is median +/- ``k_mad`` x MAD of the intensities around those seeds. The grown region
    is opened by ``open_mm`` (cuts thin leaks), reduced to the component holding most
    seeds, closed, hole-filled and dilated by ``dilate_mm``.
    """

    n_seeds: int = 8
    k_mad: float = 1.5
    open_mm: float = 5.0
    dilate_mm: float = 2.0


@dataclass
class RemovalParams:
    """Common removal step of the two seed methods, in template-aligned axes (from the
    safety registration): a voxel is removed when it lies anterior of the brain estimate's
    anterior envelope at its height (+ ``front_margin_mm``), at heights between
    ``below_brain_mm`` under the brain's lowest point and the height of the brain's most
    anterior point (+ ``above_front_mm``), and within ``face_half_width_mm`` of the
    template mid-sagittal plane and at most ``face_depth_mm`` behind the template brain's
    frontal pole (the eyes, nose, lips and chin; the temples, the temporal muscle and the
    ears beside the brain are not face and are kept).
    """

    front_margin_mm: float = 6.0
    envelope_window_mm: float = 4.0
    below_brain_mm: float = 50.0
    above_front_mm: float = 10.0
    face_half_width_mm: float = 58.0
    face_depth_mm: float = 40.0


METHOD_PARAMS = {
    "template": TemplateParams,
    "shell": ShellParams,
    "threshold-morphology": ThresholdMorphologyParams,
    "connected-threshold": ConnectedThresholdParams,
}


def split_params(method: str, params: dict | None):
    """Split a flat ``params`` dict (config ``deface.params``) into the dataclasses.

    Returns ``(DefaceParams, method_params, RemovalParams)``. Unknown keys raise
    ``ValueError`` naming them.
    """
    if method not in METHOD_PARAMS:
        raise ValueError(f"unknown deface method {method!r}; choose one of {', '.join(METHODS)}")
    params = dict(params or {})
    out = []
    for cls in (DefaceParams, METHOD_PARAMS[method], RemovalParams):
        names = {f.name for f in fields(cls)}
        out.append(cls(**{k: params.pop(k) for k in list(params) if k in names}))
    if params:
        raise ValueError(f"unknown deface parameter(s) for method {method!r}: {sorted(params)}")
    return tuple(out)


def params_dict(*objs) -> dict:
    """Flat JSON-able dict of the given parameter dataclasses."""
    d = {}
    for o in objs:
        d.update(asdict(o))
    return d
