"""The one writer and reader of the private TSV records (neurodeid.records): what is written
is read back cell for cell, whatever the text holds."""

from __future__ import annotations

import pytest

from neurodeid import records
from neurodeid.audit.scan import read_audit_table
from neurodeid.quarantine import write_quarantine


def test_a_cell_stays_one_cell():
    assert records.tsv_cell("a\tb\r\nc") == "a b  c"
    assert records.tsv_cell(None) == "" and records.tsv_cell(3) == "3"


def test_what_is_written_is_read_back(tmp_path):
    rows = [{"file": '"quoted" name.dcm', "reason": 'said "no"\tthen\nleft'},
            {"file": "plain.dcm"},  # a missing key is an empty cell
            ['"', "x"]]  # a sequence is in column order
    p = records.write_tsv(tmp_path / "r.tsv", ("file", "reason"), rows, comments=["# two columns"])
    assert p.read_text().splitlines()[:2] == ["# two columns", "file\treason"]
    assert records.read_tsv(p) == [{"file": '"quoted" name.dcm', "reason": 'said "no" then left'},
                                   {"file": "plain.dcm", "reason": ""},
                                   {"file": '"', "reason": "x"}]


def test_write_if_changed_keeps_the_file(tmp_path):
    p = records.write_tsv(tmp_path / "r.tsv", ("a",), [["1"]], if_changed=True)
    before = p.stat().st_mtime_ns
    records.write_tsv(p, ("a",), [["1"]], if_changed=True)
    assert p.stat().st_mtime_ns == before


def test_header_only_and_no_header():
    assert records.tsv_text(("a", "b"), []) == "a\tb\n"
    assert records.tsv_text(("a", "b"), [["1", "2"]], header=False) == "1\t2\n"


def test_stage_writers_use_it(tmp_path):
    # the quarantine report: a reason with a tab, a newline and a leading quote round-trips
    q = tmp_path / "quarantine.tsv"
    write_quarantine(q, [{"file": "x.dcm", "status": "quarantined", "stage": "deid", "reason": '"bad"\tpreamble\n'}])
    assert records.read_tsv(q) == [{"file": "x.dcm", "status": "quarantined", "stage": "deid",
                                    "reason": '"bad" preamble '}]
    # the audit table's reader skips its comment lines
    a = tmp_path / "audit.tsv"
    a.write_text("# release audit: 0 files\nfile\tlocation\n")
    assert read_audit_table(a) == []


def test_a_missing_record_names_the_file(tmp_path):
    with pytest.raises(records.RecordError, match="nothing.tsv.*run the workflow"):
        records.read_tsv(tmp_path / "nothing.tsv")
