"""Siemens CSA sanitising: the faster searches give the bytes of the regex substitutions."""

from __future__ import annotations

import random
import struct

import pytest

from neurodeid.deid.private_transforms import (
    _asc_matches,
    _ASC_LINE_RE,
    _blank_quoted,
    _fill,
    _QUOTED_RE,
    _sanitize_siemens_csa_by_regex,
    _UID_RE,
    _zero_uid,
    _zero_uids,
    sanitize_siemens_csa,
)

PROTOCOL = (
    b'<XProtocol>\n{\n  <Name> "PhoenixMetaProtocol"\n  <ParamString."tPatientName">  { "Doe^Jane"  }\n'
    b'  <ParamString.""x""> { """" }\n  <ParamString."open"> { "no end\n  <Default> "a""b" ""\n}\n'
    b"<ParamString.\"tProtocolName\"> { \"SECRET PROTOCOL\" }\n"
    b"### ASCCONV BEGIN object=MrProtDataImpl@MrProtocolData version=51130001 ###\n"
    b'tProtocolName\t = \t""SECRET""\n'
    b'sCoilSelectMeas.aRxCoilSelectData[0].asList[0].sCoilElementID.tCoilID\t = \t""HeadNeck_20""\n'
    b'sProtConsistencyInfo.tBaselineString\t = \t""N4_VE11C_LATEST_20160120""\n'
    b"split.key\n = \"across lines\"\n"
    b'  indented = "not at a line start"\n'
    b'a=b = "two equals"\n'
    b'unterminated = "no closing quote\n'
    b'sKSpace.ucPhasePartialFourier\t = \t0x10\n'
    b'tReferenceImage0\t = \t""1.3.12.2.1107.5.2.43.67093.30000018091712345678900000012""\n'
    b'weird = "1.2.3.4" x .1.2.3.4.5 1.2.3.4.5. 1..2.3.4.5.6 12.34.56.78.90.1\n'
    b"### ASCCONV END ###\n"
)


def csa2(items: list[tuple[bytes, bytes]]) -> bytes:
    """A CSA2 header holding one tag per ``(name, value)``; slack bytes are non-zero."""
    out = bytearray(b"SV10\x04\x03\x02\x01" + struct.pack("<II", len(items), 77))
    for name, value in items:
        out += name.ljust(63, b"\x00") + b"Z" + struct.pack("<i", 1) + b"UT\x00q" + struct.pack("<iii", 0, 1, 77)
        out += struct.pack("<iiii", len(value), len(value), 77, len(value))
        out += value + b"J" * (-len(value) % 4)
    return bytes(out)


def test_same_bytes_as_the_regex_substitutions():
    """A protocol with every odd case (quote runs, unterminated quotes, keys split over
    lines, UIDs that are not, indices): the same bytes as the regex version."""
    value = csa2([(b"MrPhoenixProtocol", PROTOCOL), (b"ImageHistory", b"ChannelMixing 1.2.3.4.5.6")])
    fast = sanitize_siemens_csa(value)
    assert fast == _sanitize_siemens_csa_by_regex(value)
    assert b"SECRET" not in fast and b"Doe^Jane" not in fast and b"HeadNeck_20" in fast
    assert b"1.3.12.2.1107" not in fast and b"0x10" in fast


def test_same_bytes_on_mutated_headers():
    """Random byte changes and cuts: the same bytes (or None) as the regex version."""
    rng = random.Random(21)
    base = csa2([(b"MrPhoenixProtocol", PROTOCOL), (b"ImageHistory", b"ChannelMixing 1.2.3.4.5.6")])
    for _ in range(400):
        b = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(16, len(b))] = rng.choice(b'"=.1\n \x00X[]') if rng.random() < 0.8 else rng.randrange(256)
        if rng.random() < 0.1:
            b = b[: rng.randrange(len(b))]
        assert sanitize_siemens_csa(bytes(b)) == _sanitize_siemens_csa_by_regex(bytes(b))


@pytest.mark.parametrize("text", [PROTOCOL, b"", b'"', b'""', b'"""a\n"b"', b'x "a" "" """b""" "c\n"d"'])
def test_pieces_match_their_regex(text):
    """Each faster piece against the substitution it replaces."""
    assert _zero_uids(text) == _UID_RE.sub(_zero_uid, text)
    assert _blank_quoted(text) == _QUOTED_RE.sub(_fill, text)
    assert [m.span() for m in _asc_matches(text)] == [m.span() for m in _ASC_LINE_RE.finditer(text)]


def test_document_items_are_zeroed():
    """A Siemens Phoenix Document (an SR, ImageType CSA REPORT; heudiconv's test data) keeps
    the exam's protocol tree as XML in the CSA image header (PhoenixZIP, with every protocol
    and program name the site chose, dates and comments) and its message (SrMsgBuffer).
    Both are zeroed, lengths kept; any item that starts as XML too; protocol items stay."""
    xml = b'<?xml version="1.0"?>\r\n<Edf><x:String x:Key="en">Smith_Study_PI_Jones</x:String></Edf>'
    value = csa2([(b"SrMsgBuffer", b"00990005LO0003eng Jones"), (b"PhoenixZIP", xml),
                  (b"SomethingNew", b"<?xml version='1.0'?><a>Jones</a>"),
                  (b"ImageHistory", b"ChannelMixing"), (b"ProtocolBodyPartExamined", b"BRAIN")])
    fast = sanitize_siemens_csa(value)
    assert fast == _sanitize_siemens_csa_by_regex(value)
    assert len(fast) == len(value) and b"Jones" not in fast and b"Smith" not in fast and b"<?xml" not in fast
    assert b"ChannelMixing" in fast and b"BRAIN" in fast
    from neurodeid.audit import csa_items

    assert [n for n, _, _ in csa_items(fast)] == [n for n, _, _ in csa_items(value)]
