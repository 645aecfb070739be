"""The secret key and the values derived from it."""

from __future__ import annotations

import re

import pytest

from neurodeid import keys

from conftest import TEST_KEY


def test_key_sources(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(keys.ENV_VAR, raising=False)
    with pytest.raises(keys.KeyError_, match="NEURODEID_KEY"):
        keys.load_key()
    kf = tmp_path / "key"
    kf.write_text("  file-key-0123456789abcdef\n")
    assert keys.load_key(kf) == b"file-key-0123456789abcdef"
    monkeypatch.setenv(keys.ENV_VAR, "env-key-0123456789abcdef")
    assert keys.load_key(kf) == b"env-key-0123456789abcdef"  # environment wins
    monkeypatch.setenv(keys.ENV_VAR, "short")
    with pytest.raises(keys.KeyError_, match="at least 16"):
        keys.load_key()
    monkeypatch.delenv(keys.ENV_VAR)
    with pytest.raises(keys.KeyError_, match="cannot be read"):
        keys.load_key(tmp_path / "missing")
    assert keys.load_key(None, allow_demo=True) == keys.DEMO_KEY
    assert "NOT SECRET" in capsys.readouterr().err


def test_uid_remap_is_valid_deterministic_and_keyed():
    uid = "1.2.840.113619.2.408.5282380.4562341.27155.1537232354.673"
    new = keys.remap_uid(TEST_KEY, uid)
    assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", new)
    assert len(new) <= 64
    assert keys.remap_uid(TEST_KEY, uid) == new
    assert keys.remap_uid(TEST_KEY, uid + "\x00") == new  # padding ignored
    assert keys.remap_uid(b"another-key-0123456789", uid) != new
    assert keys.remap_uid(TEST_KEY, uid[:-1] + "4") != new


def test_date_shift_range_and_key():
    shifts = [keys.date_shift_days(TEST_KEY, f"s{i}") for i in range(2000)]
    assert all(-365 <= s <= -1 for s in shifts)
    assert len(set(shifts)) > 300  # spread over the range
    assert keys.date_shift_days(TEST_KEY, "s1") == shifts[1]


def test_fingerprint_does_not_reveal_key():
    fp = keys.fingerprint(TEST_KEY)
    assert len(fp) == 16 and TEST_KEY.hex()[:16] != fp
    assert keys.fingerprint(b"x" * 20) != fp


def test_purposes_are_separated():
    assert keys.keyed_digest(TEST_KEY, "uid", "1.2.3") != keys.keyed_digest(TEST_KEY, "subject", "1.2.3")
