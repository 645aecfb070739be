"""neurodeid.deid.crosscheck: kept text that repeats the subject's identifying values."""

from __future__ import annotations

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
