"""Is the head a bare brain? (issue 18: faces detected on skull-stripped volumes)

On the renders of a skull-stripped brain dlib's detector finds faces: the frontal lobes,
the temporal poles and the brainstem seen from below read as eyes, cheeks and a mouth
(-0.09 to 0.10 on the head corpus, above :data:`~neurodeid.deface.face.FACE_SCORE_THRESHOLD`).
A face is skin over bone and muscle, outside the brain; a skull-stripped volume has nothing
outside its brain. That is measured on the pixels with the library's independent brain
extraction (BET's algorithm, :func:`neurodeid.deface.brainmask.extract_brain`, which shares
nothing with the detector): the detections of a volume are set aside as a bare brain's
surface when all three hold:

- **a stripped background**: at least :data:`MIN_CONSTANT_BACKGROUND` of the voxels farther
  than :data:`BACKGROUND_MM` from the head (the rendered surface's mask at the lowest
  surface threshold, holes filled) equal the volume's minimum exactly, the constant a
  stripping writes (a scanner's background carries noise); only then is the brain
  extracted;
- **nothing outside the brain**: at most :data:`MAX_OUTSIDE_ML` of the head lies farther
  than :data:`MARGIN_MM` from the extracted brain;
- **a brain, not a head**: the extracted brain is at most :data:`MAX_BRAIN_ML`.

Measured on the head corpus (``benchmarks/results/brain_only_2026-12-07*.md``): the
skull-stripped real heads, stripped by BET and 4 mm wider, keep 3-21 ml outside, with
extracted brains of 1,350-2,000 ml and 99.8-100 % constant backgrounds. Every face-bearing
head and augmentation keeps 84 ml or more outside: the least is vrd_seg3D (upper face only,
no nose or mouth in its field of view) with a square-root contrast, where BET's surface leaks
through the compressed skull contrast over 91 % of the head; its extracted "brain" is 2,624
ml, which the third condition refuses on its own. The rest keep 290 ml or more. A looser
strip (8 mm wider: 165-180 ml) stays a face: a false face withholds a volume, it never
releases one.

What the rule rests on, and its limit: BET can cover a whole homogeneous object (two of the
fruit's 18 versions: 0 ml outside, 2,094 ml; their noisy background keeps them out of the
rule). A head with a constant (masked) background whose extraction leaked over all but 25 ml
of it while staying under 2,200 ml (a small head with a skull contrast as weak as that
remap, its nose, lips and neck outside the field of view) would be taken for a bare brain.
Used only for volumes released without defacing when no face is found
(:func:`neurodeid.deface.face.check_folder`, :mod:`neurodeid.deface.screen`); planned
volumes are defaced whatever the screen says.

Conventions: arrays are voxel (i, j, k) with a voxel -> RAS+ mm affine; distances in mm,
volumes in ml.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: Beyond this distance from the head (mm) a stripped volume holds only the constant the
#: stripping wrote (the volume's minimum).
BACKGROUND_MM = 6.0
#: A bare brain's background: at least this fraction of the voxels beyond
#: :data:`BACKGROUND_MM` from the head equal the volume's minimum exactly.
MIN_CONSTANT_BACKGROUND = 0.99
#: Tissue farther than this from the extracted brain (mm) counts as outside it: BET's
#: surface lies up to a few mm inside the edge of a stripped brain (its cortex).
MARGIN_MM = 6.0
#: A bare brain holds at most this much tissue (ml) outside :data:`MARGIN_MM`.
MAX_OUTSIDE_ML = 25.0
#: A bare brain's extracted brain is at most this large (ml): an extraction that leaked
#: over a head is larger.
MAX_BRAIN_ML = 2200.0


@dataclass
class BrainOnly:
    """The measures of :func:`measure`.

    Attributes
    ----------
    constant_background : float
        Fraction of the voxels farther than :data:`BACKGROUND_MM` from the head that equal
        the volume's minimum (1.0 when there are none).
    outside_ml : float or None
        Head tissue farther than :data:`MARGIN_MM` from the extracted brain (ml); None when
        the background is not constant (the brain is then not extracted).
    head_ml : float
        The head (rendered surface's mask, filled), ml.
    brain_ml : float or None
        The extracted brain (ml); None when not extracted.
    seconds : float
    """

    constant_background: float
    outside_ml: float | None
    head_ml: float
    brain_ml: float | None
    seconds: float

    @property
    def holds(self) -> bool:
        """A stripped background and nothing outside a brain-sized extraction: a bare
        brain, not a face."""
        return (self.constant_background >= MIN_CONSTANT_BACKGROUND
                and self.outside_ml is not None and self.outside_ml <= MAX_OUTSIDE_ML
                and self.brain_ml is not None and self.brain_ml <= MAX_BRAIN_ML)

    def summary(self) -> dict:
        """JSON-able numbers."""
        def r(v):
            return None if v is None else round(v, 1)

        return {"brain_only": self.holds,
                "constant_background": round(self.constant_background, 4),
                "min_constant_background": MIN_CONSTANT_BACKGROUND,
                "tissue_outside_brain_ml": r(self.outside_ml),
                "max_tissue_outside_brain_ml": MAX_OUTSIDE_ML,
                "outside_brain_margin_mm": MARGIN_MM,
                "extracted_brain_ml": r(self.brain_ml), "max_brain_ml": MAX_BRAIN_ML,
                "head_ml": r(self.head_ml), "brain_only_seconds": round(self.seconds, 2)}

    def reason(self) -> str:
        """Why the detections were set aside, for a record a reviewer reads."""
        return (f"only {self.outside_ml:.0f} ml of the head lies farther than {MARGIN_MM:g} mm "
                f"from its extracted brain ({self.brain_ml:.0f} ml) and "
                f"{self.constant_background:.1%} of the background is the stripping's constant "
                f"(a bare brain: at most {MAX_OUTSIDE_ML:g} ml outside, at most "
                f"{MAX_BRAIN_ML:g} ml of brain, at least {MIN_CONSTANT_BACKGROUND:.0%} constant): "
                "the surface of a skull-stripped brain, not a face")


def measure(volume: np.ndarray, affine: np.ndarray, threshold: float, ct: bool) -> BrainOnly:
    """Measure whether a volume is a bare brain: its background, and how much of the head
    lies outside its extracted brain (extracted only when the background is the constant
    a stripping leaves).

    Parameters
    ----------
    volume : float ndarray, voxel (i, j, k)
        The volume the renders were made of (about 1 mm).
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm of ``volume`` (only its voxel sizes are used).
    threshold : float
        The lowest head surface threshold rendered (scaled units).
    ct : bool
        Hounsfield units (the extraction's CT mode).

    Returns
    -------
    BrainOnly

    Raises
    ------
    ValueError
        The brain cannot be extracted (no tissue above the background) or is empty.
    """
    from ..geometry import zooms
    from .brainmask import extract_brain
    from .face import head_surface_mask

    t0 = time.perf_counter()
    z = zooms(affine)
    vox_ml = float(np.prod(z)) / 1000.0
    head = ndi.binary_fill_holes(head_surface_mask(volume, threshold))
    far = ndi.distance_transform_edt(~head, sampling=z) > BACKGROUND_MM
    n_far = int(np.count_nonzero(far))
    constant = (float(np.count_nonzero(volume[far] == volume.min())) / n_far) if n_far else 1.0
    head_ml = float(head.sum() * vox_ml)
    if constant < MIN_CONSTANT_BACKGROUND:
        return BrainOnly(constant, None, head_ml, None, time.perf_counter() - t0)
    brain = extract_brain(volume, z, ct=ct).mask
    if not brain.any():
        raise ValueError("the extracted brain is empty")
    off = ndi.distance_transform_edt(~brain, sampling=z)  # mm from the brain, 0 inside
    outside = float(np.count_nonzero(head & (off > MARGIN_MM)) * vox_ml)
    return BrainOnly(constant, outside, head_ml, float(brain.sum() * vox_ml),
                     time.perf_counter() - t0)
