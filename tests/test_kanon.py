"""k-anonymity of a release, on a synthetic cohort built from real series.

The cohort: 24 subjects aged 20 to 97, each with one real series of one of two scanner
models (dcm_qa_nih Siemens Skyra mosaic with its CSA header, GE DISCOVERY MR750), every
fourth subject also with the bundled example's CT head series (a third scanner). Planted
in copies of the raw files (the shared data stays read-only): age, sex, weight and size in
the header, the age and weight in the Siemens CSA PatReinPattern. The copies go through the
real de-identification (``deidentify_series``) into a release-shaped folder with the
listings the workflow writes; the k-anonymity report reads that folder.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import warnings
from pathlib import Path

import pydicom
import pytest

from neurodeid import keys
from neurodeid.cli import main as cli_main
from neurodeid.deid.engine import DeidConfig
from neurodeid.deid.quasi import QuasiPolicy, generalise_years
from neurodeid.deid.series import deidentify_series
from neurodeid.kanon import IDENTIFIERS, KAnonymityError, analyse, check, render_html, write_outputs
from neurodeid.release.dataset import write_listing

from conftest import EXAMPLE_DICOM, SHARED_DATA, TEST_KEY
from test_quasi import plant_csa_item

N_SUBJECTS = 24
AGES = [20 + round(i * (97 - 20) / (N_SUBJECTS - 1)) for i in range(N_SUBJECTS)]  # 20 ... 97
NIH = SHARED_DATA / "dicom" / "dcm_qa_nih" / "In"


def _sources() -> dict[str, list[Path]]:
    si = sorted((NIH / "20180918Si" / "mr_0003").glob("*.dcm"))
    ge = sorted((NIH / "20180918GE" / "mr_0005").glob("*.dcm"))[:2]
    ct = sorted((EXAMPLE_DICOM / "DOE_JOHN" / "2019-03-14_CT_HEAD" / "SE2").glob("*.dcm"))[:2]
    if not si or not ge:
        pytest.skip(f"shared data not found: {NIH} (set NEURODEID_SHARED_DATA)")
    return {"siemens": si, "ge": ge, "ct": ct}


def _subject(i: int) -> dict:
    return {
        "label": f"c{i:02d}",
        "age": AGES[i],
        "sex": "MF"[i % 2],
        "weight": (70, 80)[(i // 2) % 2],
        "scanners": ["siemens" if i % 4 < 2 else "ge"] + (["ct"] if i % 4 == 3 else []),
        "handedness": "R" if i != 5 else "L",
    }


COHORT = [_subject(i) for i in range(N_SUBJECTS)]


def _plant(src: Path, dst: Path, s: dict) -> None:
    ds = pydicom.dcmread(src)
    ds.PatientAge = f"{s['age']:03d}Y"
    ds.PatientSex = s["sex"]
    ds.PatientWeight = str(s["weight"])
    ds.PatientSize = "1.75"
    if (0x0029, 0x1020) in ds:
        ds[0x00291020].value = plant_csa_item(
            ds[0x00291020].value, "PatReinPattern", f"1;HFS;{s['weight']:.2f};{s['age'] + 0.37:.2f};2;0;0;-478201571"
        )
    ds.save_as(dst)


def build_release(root: Path, policy: QuasiPolicy) -> tuple[Path, list[Path]]:
    """De-identify the cohort into ``root/release`` (listings in ``root/private/released``)."""
    sources = _sources()
    release, private = root / "release", root / "private" / "released"
    private.mkdir(parents=True)
    raw_root = root / "raw"
    listings = []
    for s in COHORT:
        files = []
        for n, scanner in enumerate(s["scanners"], start=1):
            raw = raw_root / s["label"] / scanner
            raw.mkdir(parents=True)
            for src in sources[scanner]:
                _plant(src, raw / src.name, s)
            out = release / "sourcedata" / "dicom" / f"sub-{s['label']}" / "ses-1" / f"s{n:03d}"
            cfg = DeidConfig(key=TEST_KEY, subject_label=s["label"], quasi=policy,
                             date_shift_days=keys.date_shift_days(TEST_KEY, s["label"]))
            results = deidentify_series(sorted(raw.iterdir()), out, cfg)
            assert all(r["status"] == "ok" for r in results), results
            files += sorted(out.glob("*.dcm"))
        listing = private / f"sub-{s['label']}.tsv"
        write_listing(listing, files, release)
        listings.append(listing)
    rows = ["participant_id\thandedness"] + [f"sub-{s['label']}\t{s['handedness']}" for s in COHORT]
    (release / "participants.tsv").write_text("\n".join(rows) + "\n")
    return release, listings


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    plain = build_release(tmp_path_factory.mktemp("plain"), QuasiPolicy())
    banded = build_release(tmp_path_factory.mktemp("banded"), QuasiPolicy(age_band_years=10))
    return {"plain": plain, "banded": banded}


# --------------------------------------------------------------------------- Safe Harbor


def _released_ages(release: Path) -> list[float]:
    """Every age a recipient can read in the release: DICOM AS values at any depth, the
    Siemens CSA PatReinPattern age (nibabel's reader), participants.tsv and sidecar ages."""
    warnings.filterwarnings("ignore", message="The DICOM readers are highly experimental")
    from nibabel.nicom import csareader

    ages = []
    for p in sorted(release.rglob("*")):
        if p.suffix == ".dcm":
            for elem in pydicom.dcmread(p).iterall():
                if elem.VR == "AS" and elem.value:
                    assert elem.value.endswith("Y"), (p, elem)
                    ages.append(float(elem.value[:3]))
                if isinstance(elem.value, bytes) and elem.value[:4] == b"SV10":
                    item = csareader.read(elem.value)["tags"].get("PatReinPattern", {}).get("items")
                    if item:
                        ages.append(float(item[0].split(";")[3]))
        elif p.suffix == ".tsv":
            lines = [ln.split("\t") for ln in p.read_text().splitlines()]
            if "age" in lines[0]:
                ages += [float(r[lines[0].index("age")]) for r in lines[1:] if r[lines[0].index("age")] != "n/a"]
        elif p.suffix == ".json":
            ages += [float(v) for k, v in json.loads(p.read_text()).items() if re.fullmatch(r"(?i)(patient_?)?age", k)]
    return ages


def test_no_released_age_above_the_cap(cohort):
    for release, _ in cohort.values():
        ages = _released_ages(release)
        assert len(ages) >= 2 * N_SUBJECTS, "the ages must be found to be judged"
        assert max(ages) == 90 and all(a == int(a) for a in ages), sorted(set(ages))
    # the planted 93.37-year CSA age and the 097Y header both became 90
    assert sum(a == 90 for a in _released_ages(cohort["plain"][0])) >= 4


# --------------------------------------------------------------------------- k


def _truth(release: Path, policy: QuasiPolicy) -> dict[str, tuple]:
    """Each subject's quasi-identifiers from what was planted (not from the report's reader),
    with the year of the subject's shifted StudyDate read back from its first file."""
    models = {"siemens": "skyra", "ge": "mr750", "ct": "ct"}
    out = {}
    for s in COHORT:
        first = sorted((release / "sourcedata" / "dicom" / f"sub-{s['label']}").rglob("*.dcm"))[0]
        year = str(pydicom.dcmread(first, stop_before_pixels=True).StudyDate)[:4]
        out[f"sub-{s['label']}"] = (
            generalise_years(s["age"], policy), s["sex"], s["weight"], frozenset(models[x] for x in s["scanners"]),
            year, s["handedness"],
        )
    return out


def _brute_force_k(truth: dict[str, tuple]) -> dict[str, int]:
    return {s: sum(1 for t in truth if truth[t] == truth[s]) for s in truth}


@pytest.mark.parametrize("which, policy", [("plain", QuasiPolicy()), ("banded", QuasiPolicy(age_band_years=10))])
def test_k_equals_a_brute_force_count(cohort, which, policy):
    release, listings = cohort[which]
    report = analyse(release, listings, IDENTIFIERS, k_min=5)
    assert report.k == _brute_force_k(_truth(release, policy))
    assert set(report.k) == {f"sub-{s['label']}" for s in COHORT}
    assert report.attributes["sub-c23"]["age"] == "090Y"
    assert "|" in report.attributes["sub-c03"]["scanner"], "two scanners make a set of two values"


@pytest.mark.parametrize("ids, k_plain, k_banded", [(["age"], 1, 3), (["age", "sex"], 1, 1)])
def test_age_bands_raise_the_minimum_k(cohort, ids, k_plain, k_banded):
    """Over age alone, bands of 10 years lift the minimum k from 1 (every exact age below
    90 is unique; 90, 94 and 97 share 090Y) to 3; with sex too, fewer subjects (22 -> 8)
    stay below k_min = 2, though some remain unique."""
    plain = analyse(*cohort["plain"], ids, k_min=2)
    banded = analyse(*cohort["banded"], ids, k_min=2)
    index = {"age": 0, "sex": 1, "scanner": 3}
    expected = {}
    for which, policy in (("plain", QuasiPolicy()), ("banded", QuasiPolicy(age_band_years=10))):
        truth = {s: tuple(t[index[i]] for i in ids) for s, t in _truth(cohort[which][0], policy).items()}
        expected[which] = _brute_force_k(truth)
    assert plain.k == expected["plain"] and banded.k == expected["banded"]
    assert min(plain.k.values()) == k_plain and min(banded.k.values()) == k_banded
    assert sum(banded.k.values()) > sum(plain.k.values())
    assert len(banded.below) < len(plain.below)


def test_stand_out_names_the_rare_attribute(cohort):
    release, listings = cohort["banded"]
    report = analyse(release, listings, ["age", "sex", "handedness"], k_min=3)
    # sub-c05 is the only left-hander: handedness alone singles it out
    assert report.k["sub-c05"] == 1
    o = report.stand_out["sub-c05"]
    assert o.rare[0] == "handedness" and o.shared["handedness"] == 1
    assert o.k_without["handedness"] > 1
    page = render_html(report)
    assert "sub-c05" in page and "handedness" in page and "Distribution of k" in page


def test_outputs_gate_and_cli(cohort, tmp_path):
    release, listings = cohort["plain"]
    rc = cli_main(["quasi-report", str(release), "--listings", *map(str, listings), "--identifiers", "age", "sex",
                   "--k-min", "2", "--quasi", json.dumps({"age_band_years": 10}), "--gate",
                   "--out-tsv", str(tmp_path / "k.tsv"), "--out-json", str(tmp_path / "k.json"),
                   "--out-html", str(tmp_path / "k.html")])
    assert rc == 0
    summary = json.loads((tmp_path / "k.json").read_text())
    assert summary["status"] == "FAIL" and summary["min_k"] == 1
    assert "ages in bands of 10 years" in " ".join(summary["generalisation_applied"])
    rows = (tmp_path / "k.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:3] == ["participant_id", "k", "status"] and len(rows) == N_SUBJECTS + 1
    ok, message = check(tmp_path / "k.json")
    assert not ok and "quasi.gate" in message
    assert cli_main(["check-quasi", str(tmp_path / "k.json"), "--out", str(tmp_path / "ok")]) == 1
    assert not (tmp_path / "ok").exists()
    with pytest.raises(KAnonymityError, match="unknown"):
        analyse(release, listings, ["age", "shoe_size"])
