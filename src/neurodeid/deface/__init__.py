"""Defacing that removes the face and never the brain.

Methods, tried in this order until one passes every check: ``template`` (default;
registered face mask), ``shell`` (everything beyond the convex shell of the protected
region on the anterior-inferior side: a smooth cut), ``threshold-morphology`` and
``connected-threshold`` (intensity brain estimates + a common removal step). Every method
is guarded by a registered template brain mask dilated by a safety margin, a registration
quality check, a removed-volume plausibility check and a brain-overlap check.

Arrays are voxel (i, j, k) as nibabel gives them; affines are voxel -> RAS+ mm (SimpleITK's
LPS is used only inside :mod:`neurodeid.deface.template`).
"""

from .api import deface_file
from .core import DefaceError, DefaceResult, deface_image
from .params import (
                     METHODS,
                     ConnectedThresholdParams,
                     DefaceParams,
                     RemovalParams,
                     ShellParams,
                     TemplateParams,
                     ThresholdMorphologyParams,
)

__all__ = [
                     "METHODS",
                     "ConnectedThresholdParams",
                     "DefaceError",
                     "DefaceParams",
                     "DefaceResult",
                     "RemovalParams",
                     "ShellParams",
                     "TemplateParams",
                     "ThresholdMorphologyParams",
                     "deface_file",
                     "deface_image",
]
