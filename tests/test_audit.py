"""The release audit: needles from raw headers and names, scanning of a release."""

from __future__ import annotations

import gzip

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from neurodeid import audit
from neurodeid.deid.profile import DEFAULT_OPTIONS, load_table

from conftest import pydicom_testdir


def _planted() -> Dataset:
    ds = pydicom.dcmread(pydicom_testdir("dicomdirtests", "98892001", "CT5N", "2062"), stop_before_pixels=True)
    ds.PatientName = "Zebedee^Quorna"
    ds.PatientID = "PID-778812"
    ds.PatientSex = "F"
    ds.PatientAge = "041Y"
    ds.InstitutionName = "Glenmoor Royal Infirmary"
    item = Dataset()
    inner = Dataset()
    inner.PersonName = "Vexmore^Albin"  # depth 2, inside a sequence inside a sequence
    item.ContentSequence = Sequence([inner])
    item.RequestedProcedureID = "RQ-55219"
    ds.RequestAttributesSequence = Sequence([item])
    block = ds.private_block(0x0011, "ACME_PRIVATE 1.0", create=True)
    block.add_new(0x01, "LO", "Halloway-Priory")
    return ds


def test_needles_cover_all_depths_and_private_but_not_kept():
    needles = audit.dataset_needles(_planted(), DEFAULT_OPTIONS)
    texts = {n.text for n in needles}
    for planted in ("Zebedee^Quorna", "Zebedee", "Quorna", "PID-778812", "Glenmoor Royal Infirmary",
                    "Vexmore^Albin", "RQ-55219", "Halloway-Priory"):
        assert planted in texts, planted
    # retained patient characteristics are K: not needles; private creators are not needles
    assert "041Y" not in texts and "F" not in texts
    assert "ACME_PRIVATE 1.0" not in texts
    # the source names the attribute and its nesting
    src = {n.text: n.source for n in needles}
    assert src["Vexmore^Albin"] == "RequestAttributesSequence[0].ContentSequence[0].PersonName"
    # dates come in DICOM and ISO spelling
    assert ds_date_variants() <= texts


def ds_date_variants() -> set[str]:
    d = str(_planted().StudyDate)
    return {d, f"{d[:4]}-{d[4:6]}-{d[6:]}"}


def test_without_patient_characteristics_option_age_is_a_needle():
    texts = {n.text for n in audit.dataset_needles(_planted(), ())}
    assert "041Y" in texts


def test_numbers_and_public_uids_are_not_needles():
    ds = _planted()
    texts = {n.text for n in audit.dataset_needles(ds, DEFAULT_OPTIONS)}
    assert ds.SOPClassUID not in texts  # a public SOP class UID
    assert all(not audit._is_number(t) or (t.isdigit() and len(t) >= 6) for t in texts)


def test_path_needles_drop_stopwords_and_short_numbers():
    texts = {n.text for n in audit.path_needles(["DOE_JOHN/20200611_MR_BRAIN/t1_mprage/IM_0001.dcm"])}
    assert {"DOE", "JOHN", "20200611"} <= texts
    assert not texts & {"MR", "BRAIN", "t1", "mprage", "IM", "0001", "dcm"}


def test_words_of_neurodeid_own_release_text_are_not_path_needles(tmp_path):
    """dicognito's test folders ("test_conversion_error_logs...", "..._original_directory...")
    made "conversion", "error" and "original" needles, found in the fixed text of the
    release README and dataset_description.json: every real release with such a folder
    stopped at the gate. Words of that fixed text are not path needles; a name beside
    them still is, and is still found in the README."""
    from neurodeid.release.dataset import fixed_text, readme_text

    paths = ["test_conversion_error_logs/SMITH_original/IM_0001.dcm"]
    texts = {n.text for n in audit.path_needles(paths)}
    assert "SMITH" in texts
    assert not {t.lower() for t in texts} & {"conversion", "error", "original"}
    readme = readme_text("SMITH study", "2024c", [], None)
    assert all(w in fixed_text() for w in ("conversion", "error", "original"))
    hits, _ = _scan(tmp_path, audit.path_needles(paths), {"README": readme.encode()})
    assert {h.needle for h in hits} == {"SMITH"}


def _scan(tmp_path, needles, files):
    rel = tmp_path / ("release-" + "-".join(sorted(files)).replace("/", "_"))
    for name, data in files.items():
        p = rel / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return audit.scan_release(rel, audit.Matcher(needles))


@pytest.mark.parametrize(
    "files,expect",
    [
        ({"README": b"contact zebedee^quorna for access"}, {("README", audit.LOC_BYTES)}),
        ({"sub-1/anat/x.nii.gz": gzip.compress(b"\x00" * 100 + b"Glenmoor Royal Infirmary" + b"\x00" * 10)},
         {("sub-1/anat/x.nii.gz", audit.LOC_GUNZIPPED)}),
        ({"Quorna_scan/file.json": b"{}"}, {("Quorna_scan", audit.LOC_NAME)}),
        ({"a.json": '{"Name": "Zebedee^Quorna"}'.encode("utf-16-le")}, set()),  # not a spelling we scan
        ({"a.json": b'{"InstitutionName": "GLENMOOR ROYAL INFIRMARY"}'}, {("a.json", audit.LOC_BYTES)}),
    ],
)
def test_scan_locations(tmp_path, files, expect):
    needles = [audit.Needle("Zebedee^Quorna", "PatientName"), audit.Needle("Quorna", "PatientName"),
               audit.Needle("Glenmoor Royal Infirmary", "InstitutionName")]
    hits, _ = _scan(tmp_path, needles, files)
    assert {(h.file, h.location) for h in hits} == expect


def test_short_needles_match_whole_tokens_only(tmp_path):
    needles = [audit.Needle("DOE", "raw file/folder name"), audit.Needle("20200611", "StudyDate")]
    hits, _ = _scan(tmp_path, needles, {"a.txt": b"DOES not match; xdoe neither; 120200611 neither"})
    assert hits == []
    hits, _ = _scan(tmp_path, needles, {"b.txt": b"name: doe, date 20200611."})
    assert sorted(h.source for h in hits) == ["StudyDate", "raw file/folder name"]


def test_non_ascii_needles_match_utf8_and_latin1(tmp_path):
    needles = [audit.Needle("Müllerová", "PatientName")]
    hits, _ = _scan(tmp_path, needles, {"u8.txt": "x Müllerová y".encode("utf-8"),
                                         "l1.txt": "x Müllerová y".encode("latin-1")})
    assert {h.file for h in hits} == {"u8.txt", "l1.txt"}


def test_audit_table_and_check(tmp_path):
    needles_file = tmp_path / "n.json"
    audit.save_needles(needles_file, {audit.Needle("Zebedee^Quorna", "PatientName")})
    rel = tmp_path / "release"
    rel.mkdir()
    (rel / "README").write_text("clean text\n")
    out = tmp_path / "audit.tsv"
    assert audit.audit_release(rel, [needles_file], out) == []
    assert audit.check_audit(out) == 1
    (rel / "README").write_text("Zebedee^Quorna\n")
    assert len(audit.audit_release(rel, [needles_file], out)) == 1
    with pytest.raises(audit.AuditFailed) as err:
        audit.check_audit(out)
    msg = str(err.value)
    assert "README" in msg and "PatientName" in msg
    assert "Zebedee" not in msg  # the identifier is never printed


def test_table_is_pinned_and_complete():
    t = load_table()
    assert t.edition and len(t.rows) == 621
    assert t.action(0x00100010) == "Z"  # PatientName, Basic Profile
    assert t.action(0x60003000) == "X"  # overlay data wildcard 60xx3000
    assert t.action(0x50001234) == "X"  # curve data wildcard 50xxxxxx
    assert t.action(0x00291010) == "X"  # private, Basic Profile
    assert t.action(0x00291010, ("retain_safe_private",)) == "C"
    assert t.action(0x00280010) is None  # Rows: not listed


def test_values_also_in_kept_attributes_stay_needles():
    """No blinding: a name also found in a kept attribute is still a needle (that kept
    attribute is a leak for de-identification to clean, not an excuse)."""
    ds = _planted()
    ds.ManufacturerModelName = "LightSpeed Ultra"  # not in Table E.1-1: kept
    block = ds.private_block(0x0009, "GEMS_IDEN_01", create=True)
    block.add_new(0x04, "SH", "LightSpeed")  # a private copy of part of the model name
    ds.PatientName = "Ultra^Lee"
    ds.SeriesDescription = "Sleep study"
    texts = {n.text for n in audit.dataset_needles(ds, DEFAULT_OPTIONS)}
    assert {"LightSpeed", "Ultra", "Lee"} <= texts
    hits = audit.Matcher([audit.Needle("Lee", "PatientName")]).find("Sleep study")
    assert hits == []  # 'lee' inside 'Sleep' is not a whole token


def _nifti_bytes(descrip: bytes, payload: bytes) -> bytes:
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.zeros((4, 4, 4), dtype=np.uint8), np.eye(4))
    img.header["descrip"] = descrip
    raw = img.header.binaryblock + b"\x00" * 4  # vox_offset 352
    return raw + payload


def test_payloads_only_match_long_needles(tmp_path):
    needles = [audit.Needle("DOE", "PatientName"), audit.Needle("Glenmoor Royal Infirmary", "InstitutionName")]
    voxels = (b"\x91 Doe \x9e" * 10)[:64]  # a short name spelled by voxel bytes: chance, not a leak
    hits, _ = _scan(tmp_path, needles, {"a.nii.gz": gzip.compress(_nifti_bytes(b"scan", voxels))})
    assert hits == []
    hits, _ = _scan(tmp_path, needles, {"b.nii.gz": gzip.compress(_nifti_bytes(b"DOE scan", voxels))})
    assert [(h.file, h.location, h.source) for h in hits] == [("b.nii.gz", audit.LOC_GUNZIPPED, "PatientName")]
    hits, _ = _scan(tmp_path, needles, {"c.nii": _nifti_bytes(b"x", b"\x00Glenmoor Royal Infirmary\x00")})
    assert [h.source for h in hits] == ["InstitutionName"]  # long needles are found in payloads too


def test_text_after_the_voxels_is_scanned_with_all_needles(tmp_path):
    needles = [audit.Needle("DOE", "PatientName")]
    data = _nifti_bytes(b"scan", bytes(64) + b" Doe ")  # 64 voxels, then text appended
    hits, _ = _scan(tmp_path, needles, {"a.nii": data})
    assert [h.field for h in hits] == ["NIfTI bytes after the voxels"]


def test_gzip_header_file_name_is_scanned(tmp_path):
    import io

    buf = io.BytesIO()
    with gzip.GzipFile(filename="DOE_scan.nii", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(b"plain")
    hits, _ = _scan(tmp_path, [audit.Needle("DOE", "raw file/folder name")], {"x.gz": buf.getvalue()})
    assert [(h.location, h.offset) for h in hits] == [(audit.LOC_BYTES, 10)]


def test_dicom_pixel_data_is_a_payload(tmp_path):
    ds = pydicom.dcmread(pydicom_testdir("dicomdirtests", "98892001", "CT5N", "2062"))
    ds.PixelData = (b" ROE " * 200)[: len(ds.PixelData)]
    ds.save_as(tmp_path / "x.dcm")
    data = (tmp_path / "x.dcm").read_bytes()
    a, b = audit.payload_range("x.dcm", data)
    assert data[a:b] == ds.PixelData
    hits, _ = _scan(tmp_path, [audit.Needle("ROE", "PatientName")], {"x.dcm": data})
    assert hits == []


def test_needle_lists_are_filtered_by_the_audit_min_length(tmp_path):
    f = tmp_path / "n.json"
    audit.save_needles(f, {audit.Needle("Li", "PatientName"), audit.Needle("Lee", "PatientName"),
                           audit.Needle("Quorna", "PatientName")})
    assert [n.text for n in audit.load_needles([f], 3)] == ["Lee", "Quorna"]
    assert [n.text for n in audit.load_needles([f], 4)] == ["Quorna"]
    assert len(audit.load_needles([f])) == 3


def test_site_allow_list_drops_harmless_values_and_refuses_direct_identifiers(tmp_path):
    needles = [audit.Needle("NEUROLAB", "StationName", audit.ADDRESS), audit.Needle("Quorna", "PatientName", audit.NAME)]
    kept, uses = audit.apply_allow(needles, [{"value": "neurolab", "reason": "our station, identifies nobody"}])
    assert [n.text for n in kept] == ["Quorna"]
    assert uses[0].needles == 1 and uses[0].sources == ("StationName",)
    with pytest.raises(audit.AllowListError) as err:
        audit.apply_allow(needles, [{"value": "QUORNA", "reason": "looks harmless"}])
    assert "PatientName" in str(err.value) and "QUORNA" not in str(err.value)  # named, value masked
    with pytest.raises(audit.AllowListError):
        audit.apply_allow(needles, [{"value": "NEUROLAB"}])  # no reason
    # every use is listed in the audit table
    nf = tmp_path / "n.json"
    audit.save_needles(nf, set(needles))
    rel = tmp_path / "release"
    rel.mkdir()
    (rel / "README").write_text("scanned at NEUROLAB\n")
    out = tmp_path / "audit.tsv"
    assert audit.audit_release(rel, [nf], out, allow=[{"value": "NEUROLAB", "reason": "our station"}]) == []
    assert audit.read_allowed(out)[0]["reason"] == "our station"


def test_needle_spellings_dates_ids_names():
    from neurodeid.audit import needles as N

    d = set(N.date_spellings("19420317"))
    assert {"17.03.1942", "03/17/1942", "1942.03.17", "17 Mar 1942", "17.03.42", "1942-03-17"} <= d
    assert "PID31415926" in N.id_spellings("PID-31415926")
    parts = N.name_spellings("Yamada^Tarou=山田^太郎=やまだ^たろう")
    assert {"山田", "太郎", "Yamada", "Tarou"} <= set(parts)
    assert N.keep_needle("山田", 3, N.NAME) and not N.keep_needle("Li", 3, N.NAME)
    assert {"Imogen", "31415926"} <= set(N.path_words("task-Imogen31415926"))


def test_vocabulary_is_reviewed_data_with_reasons():
    from neurodeid.audit import needles as N

    values, private = N.vocabulary()
    assert {"none", "yes", "com", "parallel"} <= values
    # a direct identifier's value is a needle even when it is vocabulary
    ds = _planted()
    ds.PatientName = "None^Yes"
    ds.ImageComments = "None"
    found = {(n.text, n.source) for n in audit.dataset_needles(ds, DEFAULT_OPTIONS)}
    assert ("None", "PatientName") in found and ("None", "ImageComments") not in found


def test_scoped_needles_are_looked_for_in_their_own_subject_and_shared_files(tmp_path):
    """A technical vendor value or a short name part of one subject found by chance in another
    subject's file is no hit; in its own subject's files and in the README it is; a long name is
    looked for everywhere."""
    from neurodeid.audit.needles import NAME, VENDOR_TEXT, Needle, save_needles

    nd = tmp_path / "needles"
    (nd / "sub-aaa" / "ses-1").mkdir(parents=True)
    (nd / "sub-bbb" / "ses-1").mkdir(parents=True)
    save_needles(nd / "sub-aaa" / "ses-1" / "s001.json",
                 {Needle("64*64p", "(0021,1158)", VENDOR_TEXT), Needle("Test", "PatientName", NAME),
                  Needle("Quorndalewski", "PatientName", NAME)})
    save_needles(nd / "sub-bbb" / "ses-1" / "s001.json", {Needle("Zyxwvu", "PatientName", NAME)})
    rel = tmp_path / "release"
    for sub in ("aaa", "bbb"):
        (rel / f"sub-{sub}").mkdir(parents=True)
    (rel / "sub-bbb" / "x.txt").write_text("matrix 64*64p, a Test protocol, Quorndalewski\n")
    (rel / "sub-aaa" / "y.txt").write_text("matrix 64*64p\n")
    (rel / "README").write_text("a Test\n")
    hits = audit.audit_release(rel, sorted(nd.rglob("*.json")), tmp_path / "audit.tsv")
    got = {(h.file, h.needle) for h in hits}
    assert got == {("sub-bbb/x.txt", "Quorndalewski"), ("sub-aaa/y.txt", "64*64p"), ("README", "Test")}, got


def test_byte_scan_finds_what_the_latin1_text_scan_finds():
    """``Matcher.find_bytes`` (one pass over a payload) gives the hits of ``find`` on the
    Latin-1 text: any case, Latin-1 capitals, UTF-8 names, whole tokens for short needles,
    substrings for long ones, overlapping needles."""
    import random

    from neurodeid.audit.needles import DATE, NAME, Needle

    needles = [Needle("DOE", "PatientName", NAME), Needle("Müller", "PatientName", NAME),
               Needle("ÉLODIE", "PatientName", NAME), Needle("Glenmoor Royal", "InstitutionName"),
               Needle("Royal Infirmary", "InstitutionName"), Needle("19420317", "PatientBirthDate", DATE),
               Needle("山田", "PatientName", NAME), Needle("_ct", "raw file/folder name")]
    matcher = audit.Matcher(needles)
    rng = random.Random(17)
    pieces = [b"doe", b"DOE", b"xdoe", b"Doe1", b"M\xc3\xbcller", b"M\xfcller", b"m\xdcller", b"\xc9LODIE",
              b"\xe9lodie", b"GLENMOOR ROYAL INFIRMARY", b"119420317", b"19420317", "山田".encode(),
              b"a_ct.", b"_CT", b" ", b".", b"\x00", b"\xff", b"Ab"]
    for _ in range(300):
        data = b"".join(rng.choice(pieces) + bytes(rng.randrange(256) for _ in range(rng.randrange(3)))
                        for _ in range(rng.randrange(1, 12)))
        text_hits = sorted((o, n.text) for o, n in matcher.find(data.decode("latin-1")))
        byte_hits = sorted((o, n.text) for o, n in matcher.find_bytes(data))
        assert byte_hits == text_hits, data
    assert {n.text for _, n in matcher.find_bytes(b"x M\xc3\x9cLLER, glenmoor royal infirmary")} == {
        "Müller", "Glenmoor Royal", "Royal Infirmary"}


def test_nrrd_header_is_text_and_its_data_a_payload(tmp_path):
    needles = [audit.Needle("DOE", "PatientName"), audit.Needle("Glenmoor Royal Infirmary", "InstitutionName")]
    head = b"NRRD0004\ntype: uint8\ndimension: 1\nsizes: 32\nencoding: raw\ncontent: DOE scan\n\n"
    hits, _ = _scan(tmp_path, needles, {"a.nrrd": head + (b"\x91 Doe \x9e" * 4)})
    assert [(h.field, h.source) for h in hits] == [("NRRD header", "PatientName")]  # the voxels spell 'Doe' by chance
    hits, _ = _scan(tmp_path, needles, {"b.nrrd": head.replace(b"DOE", b"x") + b"\x00Glenmoor Royal Infirmary\x00"})
    assert [(h.field, h.source) for h in hits] == [("image payload", "InstitutionName")]


def test_unknown_binary_files_are_scanned_for_long_needles(tmp_path):
    needles = [audit.Needle("DOE", "PatientName"), audit.Needle("Glenmoor Royal Infirmary", "InstitutionName")]
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + b" DOE " + b"\x00 glenmoor royal infirmary \x00"
    hits, _ = _scan(tmp_path, needles, {"qc.png": png})
    assert [(h.file, h.source) for h in hits] == [("qc.png", "InstitutionName")]


def test_file_meta_uid_is_a_needle():
    ds = _planted()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPInstanceUID = "1.3.6.1.4.1.5962.99.7788"  # not the dataset's SOPInstanceUID
    found = {(n.text, n.source, n.category) for n in audit.dataset_needles(ds, DEFAULT_OPTIONS)}
    assert ("1.3.6.1.4.1.5962.99.7788", "MediaStorageSOPInstanceUID", audit.UID) in found


def test_icon_image_pixels_are_a_payload(tmp_path):
    ds = pydicom.dcmread(pydicom_testdir("dicomdirtests", "98892001", "CT5N", "2062"))
    icon = Dataset()
    icon.Rows, icon.Columns, icon.BitsAllocated, icon.SamplesPerPixel = 8, 8, 8, 1
    icon.PixelData = (b"\x00 Doe \x00Glenmoor Royal Infirmary\x00" * 2)[:64]
    ds.IconImageSequence = Sequence([icon])
    ds.save_as(tmp_path / "x.dcm")
    needles = [audit.Needle("DOE", "PatientName"), audit.Needle("Glenmoor Royal Infirmary", "InstitutionName")]
    hits, _ = _scan(tmp_path, needles, {"x.dcm": (tmp_path / "x.dcm").read_bytes()})
    icon_hits = {(h.field, h.source) for h in hits if h.field.startswith("IconImageSequence")}
    assert icon_hits == {("IconImageSequence[0].PixelData", "InstitutionName")}  # 'Doe' there is chance


def test_forked_workers_find_the_same_hits_in_the_same_order(tmp_path):
    needles = [audit.Needle("DOE", "PatientName"), audit.Needle("Glenmoor Royal Infirmary", "InstitutionName")]
    files = {f"sub-{i}/DOE_{i}.txt": f"file {i}: Doe, glenmoor royal infirmary".encode() for i in range(6)}
    files["sub-9/x.nii.gz"] = gzip.compress(_nifti_bytes(b"DOE", b"\x00Glenmoor Royal Infirmary\x00" * 3))
    _scan(tmp_path, needles, files)
    rel = next(tmp_path.glob("release-*"))
    one, n1 = audit.scan_release(rel, audit.Matcher(needles))
    two, n2 = audit.scan_release(rel, audit.Matcher(needles), workers=2)
    assert one == two and n1 == n2 == 7 and len(one) > 6 * 3


def test_placeholders_are_never_needles_but_a_name_beside_one_is():
    """What de-identification tools and form templates write in place of an identifier
    ("ANONYMIZED", "Last Name^First Name") names nobody, even as a direct identifier; a real
    name part next to a placeholder ("DOE^PATIENT") is still looked for."""
    for placeholder in ("ANONYMIZED", "Anonymous^Patient", "Last Name^First Name", "Test^Phantom", "XXXXXX"):
        ds = _planted()
        ds.PatientName = placeholder
        assert not {n.text for n in audit.dataset_needles(ds, DEFAULT_OPTIONS) if n.source == "PatientName"}, \
            placeholder
    ds = _planted()
    ds.PatientName = "DOE^PATIENT"
    texts = {n.text for n in audit.dataset_needles(ds, DEFAULT_OPTIONS) if n.source == "PatientName"}
    assert "DOE" in texts and "PATIENT" not in texts


def test_common_words_and_standard_uids_in_removed_values_are_not_needles():
    """A removed free-text value that is a common word ("patient", an ROI name), a private
    value that is a SOP class UID, and a creator UID that is the writing toolkit's are not
    identifying; a name in the same places is."""
    from pydicom.uid import CTImageStorage

    ds = _planted()
    ds.ImageComments = "patient"
    ds.private_block(0x0011, "ACME_PRIVATE 1.0").add_new(0x02, "LO", str(CTImageStorage))
    ds.file_meta.ImplementationClassUID = "1.2.276.0.7230010.3.0.3.6.4"
    ds.InstanceCreatorUID = "1.2.276.0.7230010.3.0.3.6.4"
    texts = {n.text for n in audit.dataset_needles(ds, DEFAULT_OPTIONS)}
    assert not {"patient", str(CTImageStorage), "1.2.276.0.7230010.3.0.3.6.4"} & texts
    ds.ImageComments = "Zorbin"
    ds.InstanceCreatorUID = "1.2.3.4.5.6.7"
    texts = {n.text for n in audit.dataset_needles(ds, DEFAULT_OPTIONS)}
    assert {"Zorbin", "1.2.3.4.5.6.7"} <= texts


def test_a_standard_code_meaning_is_not_a_hit_but_a_private_one_is(tmp_path):
    """A CodeMeaning that is the standard's meaning of its code (PS3.16) is fixed text: a
    needle found in it reveals nothing. The same words under a private coding scheme are
    free text and are reported."""
    needles = [audit.Needle("Uncompressed", "ImageComments")]

    def coded(scheme: str, value: str) -> bytes:
        ds = _planted()
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, "Uncompressed predecessor"
        ds.PurposeOfReferenceCodeSequence = Sequence([item])
        ds.PatientName = ds.InstitutionName = ""
        path = tmp_path / f"{scheme}.dcm"
        ds.save_as(path)
        return path.read_bytes()

    hits, _ = _scan(tmp_path, needles, {"std.dcm": coded("DCM", "121320")})
    assert hits == []
    hits, _ = _scan(tmp_path, needles, {"priv.dcm": coded("99LOCAL", "121320")})
    assert [h.field for h in hits] == ["PurposeOfReferenceCodeSequence[0].CodeMeaning"]


def test_a_path_word_in_a_private_creator_is_vocabulary(tmp_path):
    """A file named csa_slice.dcm gives the path word "csa"; the private creator "SIEMENS CSA
    HEADER" names a vendor block, not the file: no hit. A name needle there is still one."""
    ds = _planted()
    ds.PatientName = ds.InstitutionName = ""
    ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x08, "CS", "IMAGE NUM 4")
    ds.save_as(tmp_path / "x.dcm")
    data = (tmp_path / "x.dcm").read_bytes()
    hits, _ = _scan(tmp_path, [audit.Needle("csa", audit.PATH_SOURCE, audit.PATH_WORD)], {"a.dcm": data})
    assert hits == []
    hits, _ = _scan(tmp_path, [audit.Needle("SIEMENS CSA HEADER", "PatientName", audit.NAME)], {"b.dcm": data})
    assert [h.field for h in hits] == ["(0029,0010)"]


def test_a_path_word_in_an_equipment_attribute_is_the_vendor(tmp_path):
    """A file named after its scanner (gdcm-US-ALOKA-16.dcm) gives the path word "ALOKA",
    found in the kept Manufacturer: the vendor, not a person. In free text it is still a hit."""
    ds = _planted()
    ds.PatientName = ds.InstitutionName = ""
    ds.Manufacturer = "ALOKA"
    ds.save_as(tmp_path / "m.dcm")
    needle = [audit.Needle("ALOKA", audit.PATH_SOURCE, audit.PATH_WORD)]
    hits, _ = _scan(tmp_path, needle, {"a.dcm": (tmp_path / "m.dcm").read_bytes()})
    assert hits == []
    ds.Manufacturer = ""
    ds.ImageComments = "scanned on the ALOKA"
    ds.save_as(tmp_path / "c.dcm")
    hits, _ = _scan(tmp_path, needle, {"b.dcm": (tmp_path / "c.dcm").read_bytes()})
    assert [h.field for h in hits] == ["ImageComments"]


def test_a_path_word_in_a_coding_scheme_or_a_kept_time_is_not_a_hit(tmp_path):
    """An MD.ai export under mdai/ codes its concepts in the scheme "MDAI"; an export named
    "...20100122.165135.421000.dcm" keeps InstanceCreationTime 165135.421000 (times of day
    are kept by the profile). Neither path word identifies anybody there; in free text
    both are still hits, and a name needle in a coding scheme still is one."""
    from pydicom.dataset import Dataset

    ds = _planted()
    ds.PatientName = ds.InstitutionName = ""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "A1", "MDAI", "Opacity"
    ds.ConceptNameCodeSequence = [item]
    ds.InstanceCreationTime = "165135.421000"
    ds.save_as(tmp_path / "k.dcm")
    data = (tmp_path / "k.dcm").read_bytes()
    words = [audit.Needle("mdai", audit.PATH_SOURCE, audit.PATH_WORD),
             audit.Needle("421000", audit.PATH_SOURCE, audit.PATH_WORD)]
    hits, _ = _scan(tmp_path, words, {"a.dcm": data})
    assert hits == []
    hits, _ = _scan(tmp_path, [audit.Needle("MDAI", "PatientName", audit.NAME)], {"b.dcm": data})
    assert [h.field for h in hits] == ["ConceptNameCodeSequence[0].CodingSchemeDesignator"]
    ds.ImageComments = "mdai 421000"
    ds.save_as(tmp_path / "f.dcm")
    hits, _ = _scan(tmp_path, words, {"c.dcm": (tmp_path / "f.dcm").read_bytes()})
    assert sorted(h.field for h in hits) == ["ImageComments", "ImageComments"]
