"""The per-bytes memo of pure functions (neurodeid.deid.bytesmemo)."""

from neurodeid.deid.bytesmemo import memo_by_bytes


def test_memo_remembers_by_bytes_and_args_and_forgets_the_oldest():
    calls = []

    @memo_by_bytes(maxsize=2)
    def f(value, n):
        calls.append((value, n))
        return value * n

    assert f(b"ab", 2) == b"abab" and f(b"ab", 2) == b"abab"
    assert calls == [(b"ab", 2)]
    assert f(b"ab", 3) == b"ababab"  # other args: another entry
    assert f(bytes(bytearray(b"ab")), 2) == b"abab"  # equal bytes, another object: remembered
    assert len(calls) == 2
    f(b"cd", 1)  # a third entry: the least recently used, (b"ab", 3), is forgotten
    f(b"ab", 3)
    assert len(calls) == 4
    f.cache_clear()
    f(b"ab", 2)
    assert len(calls) == 5


def test_memo_passes_other_values_through():
    calls = []

    @memo_by_bytes(max_len=3)
    def f(value):
        calls.append(value)
        return len(value)

    f(bytearray(b"ab")), f(bytearray(b"ab"))  # mutable: never remembered
    f(b"abcd"), f(b"abcd")  # too long
    f("ab"), f("ab")
    assert len(calls) == 6


def test_forget_all_empties_every_registered_memo():
    from neurodeid.deid import bytesmemo

    calls = []

    @memo_by_bytes()
    def g(value):
        calls.append(value)
        return value

    assert g in bytesmemo._REGISTRY
    g(b"x"), g(b"x")
    bytesmemo.forget_all()
    g(b"x")
    assert calls == [b"x", b"x"]


def test_forget_series_memos_leaves_no_remembered_value(tmp_path):
    """After a series, every data-dependent memo holds something; after
    forget_series_memos, none does (the next file runs as in a fresh process)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from neurodeid.audit import needles, scan
    from neurodeid.deid import DeidConfig, bytesmemo, crosscheck, deidentify_series, forget_series_memos
    from neurodeid.deid import series
    from neurodeid.deid.private_transforms import sanitize_siemens_csa

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "Doe^Johanna"
    ds.PatientID = "PID998877"
    ds.SeriesDescription = "t1 Johanna"
    ds.StudyDate = "20200102"
    src = tmp_path / "a.dcm"
    ds.save_as(src, enforce_file_format=True)
    sanitize_siemens_csa(b"SV10\x04\x03\x02\x01" + bytes(8))  # one memo entry at least
    deidentify_series([src], tmp_path / "out", DeidConfig(key=b"k" * 32, subject_label="s1", date_shift_days=-3))
    assert needles._LAST_REPEATS and needles.keep_needle.cache_info().currsize
    assert sanitize_siemens_csa.cache_len()
    assert crosscheck._LAST_CLEAR[0] is not None and crosscheck._matcher.cache_info().currsize
    forget_series_memos()
    assert all(memo.cache_len() == 0 for memo in bytesmemo._REGISTRY)
    assert not needles._LAST_REPEATS and not needles._LAST_MADE and not needles._NO_NEEDLE
    assert needles.keep_needle.cache_info().currsize == 0
    assert scan._spellings.cache_info().currsize == 0
    assert crosscheck._LAST_CLEAR == [None, set()] and crosscheck._matcher.cache_info().currsize == 0
    assert not series._SOUND
