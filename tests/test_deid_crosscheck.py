"""neurodeid.deid.crosscheck: kept text that repeats the subject's identifying values."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from neurodeid.audit.needles import NAME, UID, Needle
from neurodeid.deid.crosscheck import clean_kept_values


def _dataset() -> Dataset:
    ds = Dataset()
    ds.SequenceName = "ep_b1000_Smithson"
    item = Dataset()
    item.CodeMeaning = "scan of Smithson 1.2.3.4"
    ds.ProcedureCodeSequence = Sequence([item])
    return ds


def test_a_text_under_many_sources_is_cleaned_once_and_the_same():
    """The same text found under many sources (an enhanced file's frames) cleans as one
    needle does; UID needles are left to the UID remapping."""
    one = _dataset()
    many = _dataset()
    paths_one = clean_kept_values(one, {Needle("Smithson", "PatientName", NAME), Needle("1.2.3.4", "X", UID)})
    needles = {Needle("Smithson", f"PerFrame[{i}].Name", NAME) for i in range(50)}
    needles.add(Needle("1.2.3.4", "SOPInstanceUID", UID))
    paths_many = clean_kept_values(many, needles)
    assert one.SequenceName == many.SequenceName == "ep_b1000_XXXXXXXX"
    assert one.ProcedureCodeSequence[0].CodeMeaning == many.ProcedureCodeSequence[0].CodeMeaning
    assert many.ProcedureCodeSequence[0].CodeMeaning == "scan of XXXXXXXX 1.2.3.4"
    assert paths_one == paths_many


def _clean_csa_item_by_item(value: bytes, texts: frozenset) -> bytes | None:
    """The CSA cleaning without the whole-value pre-test: every item's text matched."""
    from neurodeid.audit import Matcher, csa_items

    matcher = Matcher([Needle(t, "") for t in sorted(texts)])
    items = csa_items(value)
    if not items or matcher.empty:
        return None
    buf, changed = bytearray(value), False
    for _name, a, b in items:
        for o, n in matcher.find(bytes(buf[a:b]).decode("latin-1")):
            e = min(o + len(n.text), b - a)
            buf[a + o : a + e] = b"X" * (e - o)
            changed = True
    return bytes(buf) if changed else None


@pytest.mark.parametrize("values", [
    [b"nothing here", b"at all"],
    [b"Coil SMITH", b"x"],  # a needle in an item
    [b"SMITH", b"AB"],  # at an item's end: the next header's bytes follow it
    [b"smith\x00", b"J. Sm\xefth"],  # any case, Latin-1
    [b"12345678", b"123456789"],  # digits: whole tokens only
])
def test_csa_items_cleaned_as_item_by_item(values):
    from test_deid_csa import csa2

    from neurodeid.deid.crosscheck import _clean_csa

    value = csa2([(f"Item{i}".encode(), v) for i, v in enumerate(values)])
    texts = frozenset({"Smith", "Sm\u00efth", "12345678", "Doe"})
    assert _clean_csa.uncached(value, texts) == _clean_csa_item_by_item(value, texts)
