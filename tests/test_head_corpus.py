"""The face screen on the augmented head corpus (issue #18; ``tests/headcorpus.py``).

Opt-in (15-25 minutes, one core): ``NEURODEID_HEADCORPUS=1``; ``.ci/run`` sets it. Skips
without ``../shared/data``. ``benchmarks/bench_head_corpus.py`` records the same numbers and
the defacing of every face-bearing item.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("dlib")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not os.environ.get("NEURODEID_HEADCORPUS"),
    reason="the head corpus takes minutes: set NEURODEID_HEADCORPUS=1")]

import headcorpus as hc  # noqa: E402

from neurodeid.deface import face  # noqa: E402


@pytest.fixture(scope="module")
def screened():
    items = hc.corpus()
    if not items:
        pytest.skip(f"no source heads under {hc.SHARED}")
    out = []
    for h in items:
        # the bare-brain measure as the workflow's screen makes it, except on the turned and
        # permuted copies: BET is blind to the affine's rotation and to the storage order, so
        # their measures are their source's (within 1 ml: brain_only_2026-12-07*.md);
        # skipping them saves 21 extractions
        same = "/rot" in h.name or h.name.endswith("/permuted")
        chk = face.check_volume(h.data, h.affine, levels=face.SCREENING_LEVELS, embeddings=False,
                                brain_only=not same)
        out.append((h, chk))
    return out


def test_screen_finds_the_face_on_95_percent_of_face_bearing_heads(screened):
    pos = [(h, c) for h, c in screened if h.face_expected]
    missed = [f"{h.name} ({c.best_score:.2f})" for h, c in pos if not c.face]
    assert len(pos) >= 40
    assert len(pos) - len(missed) >= 0.95 * len(pos), f"missed: {missed}"


def test_screen_finds_no_face_on_skull_stripped_heads(screened):
    """Skull-stripped with BET's algorithm (and 4 mm wider), colin27, vrd_seg3D and chris_t1
    score as faces (-0.09 to 0.10 from 40 degrees below: the frontal lobes, temporal poles
    and brainstem read as a face); nothing lies outside their extracted brains, so the
    screen sets that aside (:mod:`neurodeid.deface.brainonly`)."""
    stripped = [(h, c) for h, c in screened if "/brain_only" in h.name
                and not h.name.startswith("dcm_qa_deident")]
    assert len(stripped) >= 6
    assert sum(c.best_score > face.FACE_SCORE_THRESHOLD for _, c in stripped) >= 3  # fired
    false = [f"{h.name} ({c.best_score:.2f})" for h, c in stripped if c.face]
    assert not false


def test_bare_brain_rule_never_sets_a_face_aside(screened):
    """Every face-bearing item the detector fires on keeps its face: the rule's margin is
    measured in ``benchmarks/results/brain_only_2026-12-07.md``."""
    aside = [h.name for h, c in screened if h.face_expected and not c.face
             and c.best_score > face.FACE_SCORE_THRESHOLD]
    assert not aside


def test_screen_on_heads_cut_above_the_brows(screened):
    """Known limit, measured: chris_t1 cut 50 mm above its nose tip scores -0.36 from 40
    degrees below (its flat cut through the brain, ringed by the scalp, reads as a face:
    the renders show the detector's eyes and nose in the pits the cut opens, the frontal
    sinus and the orbital roofs; dlib's landmarks put both eyes on the cut plane). Sealing
    or dropping the cut plane, or discounting detections whose eyes lie on it, also takes
    real faces whose field of view clips them (colin27's nostrils, vrd_seg3D's eyes at its
    edge): ``benchmarks/results/head_corpus_2026-12-06c.md``. The detections that find
    vrd_seg3D's upper face are the same pattern (its flat cut through the orbits, the eyes
    and nose in its pits, every landmark on the cut: ``head_corpus_2026-12-07.md``), so no
    rule on the box tells the two apart. A false face withholds a volume, it never
    releases one; any other is a regression."""
    false = [h.name for h, c in screened if h.name.endswith("/crop_forehead") and c.face]
    assert set(false) <= {"chris_t1/crop_forehead"}, false


def test_false_faces_only_where_measured(screened):
    """Known limits, measured (``benchmarks/results/head_corpus_2026-12-07.md``): besides
    chris_t1 cut above the brows, dcm_qa_deident's T1 (a fruit, PatientID FRUIT, no face)
    scores as a face on most of its versions (an egg-shaped surface with pits: up to 0.9).
    A false face withholds, it never releases; a false face anywhere else is a
    regression."""
    false = [h.name for h, c in screened if not h.face_expected and c.face]
    assert all(n == "chris_t1/crop_forehead" or n.startswith("dcm_qa_deident") for n in false), false
