"""The face screen on the augmented head corpus (issue #18; ``tests/headcorpus.py``).

Opt-in (about 5 minutes on 2 cores): ``NEURODEID_HEADCORPUS=1``; ``.ci/run`` sets it. Skips
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
        chk = face.check_volume(h.data, h.affine, levels=face.SCREENING_LEVELS, embeddings=False)
        out.append((h, chk))
    return out


def test_screen_finds_the_face_on_95_percent_of_face_bearing_heads(screened):
    pos = [(h, c) for h, c in screened if h.face_expected]
    missed = [f"{h.name} ({c.best_score:.2f})" for h, c in pos if not c.face]
    assert len(pos) >= 40
    assert len(pos) - len(missed) >= 0.95 * len(pos), f"missed: {missed}"


@pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-07: skull-stripped with BET's algorithm, colin27, vrd_seg3D and chris_t1 "
    "score as faces (-0.07, -0.07, -0.09 from 40 degrees below: the frontal lobes, temporal "
    "poles and brainstem read as a face); the earlier brain-only negatives were nearly empty "
    "(0-6 ml) and passed for that reason. A false face withholds, it never releases."))
def test_screen_finds_no_face_on_skull_stripped_heads(screened):
    stripped = [(h, c) for h, c in screened if h.name.endswith("/brain_only")]
    assert len(stripped) >= 3
    false = [f"{h.name} ({c.best_score:.2f})" for h, c in stripped if c.face]
    assert not false


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
    scores as a face on most of its versions (an egg-shaped surface with pits: up to 0.9),
    and the skull-stripped real heads do (see the test above). A false face withholds, it
    never releases; a false face anywhere else is a regression."""
    false = [h.name for h, c in screened if not h.face_expected and c.face]
    assert all(n == "chris_t1/crop_forehead" or n.startswith("dcm_qa_deident") or n.endswith("/brain_only")
               for n in false), false
