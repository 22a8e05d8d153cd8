"""Generate ``data/table_e1_1.json`` from a machine-readable PS3.15 Table E.1-1.

Usage::

    python -m wadows.deid.generate_table /path/to/confidentiality_profile_attributes.json \
        [--edition 2024b] [--out wadows/deid/data/table_e1_1.json]

The input is the innolitics "dicom-standard" parse of Table E.1-1 (one object per row: ``tag``, ``name``,
``stdCompIOD``, ``basicProfile`` and one key per option column that has an entry). The output keeps the
facts we act on, keyed by our own names, sorted by tag, so that a new edition of the standard is one
command and a reviewable diff, never a retyped table. The edition is read from the
``.PROVENANCE.md`` file beside the input ("DICOM edition: 2024b") unless ``--edition`` is given.

Rows added to the standard after the input's edition are not patched in here: they live in
``data/table_e1_1_post2024b.json`` and are applied at load time (:mod:`wadows.deid.table`), so this
file stays a pure function of its input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).parent / "data" / "table_e1_1.json"

# innolitics column -> Profile switch that selects it (wadows.deid.profile.Profile field names).
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
BASIC_CODES = {"D", "Z", "X", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
OPTION_CODES = {"K", "C"}
KNOWN_KEYS = {"name", "tag", "id", "stdCompIOD", "basicProfile", *OPTION_COLUMNS}

_TAG = re.compile(r"\(([0-9A-FX]{4}),([0-9A-FX]{4})\)")
_PRIVATE_ROW = "(GGGG,EEEE) WHERE GGGG IS ODD"
_NOTE = re.compile(r"\s*\(see Note \d+\)", re.IGNORECASE)
_EDITION = re.compile(r"DICOM edition:\s*\**\s*(\d{4}[a-e])")


def tag_key(tag_text: str) -> str:
    """'(0008,0050)' -> '00080050'; repeating groups keep their X ('60XX3000'); the private row -> 'GGGGEEEE'."""
    if tag_text.strip().upper() == _PRIVATE_ROW:
        return "GGGGEEEE"
    match = _TAG.fullmatch(tag_text.strip().upper())
    if match is None:
        raise ValueError(f"unexpected tag format in Table E.1-1 input: {tag_text!r}")
    return match.group(1) + match.group(2)


def convert_row(row: dict[str, Any]) -> dict[str, Any]:
    unknown = set(row) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"unexpected column(s) {sorted(unknown)} for row {row.get('tag')!r}")
    basic = row["basicProfile"].strip()
    if basic not in BASIC_CODES:
        raise ValueError(f"unexpected Basic Profile action {basic!r} for row {row['tag']!r}")
    options = {}
    for column, switch in OPTION_COLUMNS.items():
        if column in row:
            code = row[column].strip()
            if code not in OPTION_CODES:
                raise ValueError(f"unexpected option action {code!r} in {column} for row {row['tag']!r}")
            options[switch] = code
    return {
        "tag": tag_key(row["tag"]),
        "name": " ".join(_NOTE.sub("", row["name"]).split()),
        "basic": basic,
        "in_std_comp_iod": row["stdCompIOD"].strip().upper() == "Y",
        "options": options,
    }


def build_table(source: bytes, edition: str, source_name: str) -> dict[str, Any]:
    rows = [convert_row(row) for row in json.loads(source)]
    rows.sort(key=lambda r: r["tag"])
    tags = [r["tag"] for r in rows]
    if len(tags) != len(set(tags)):
        raise ValueError("duplicate tags in Table E.1-1 input")
    return {
        "table": "DICOM PS3.15 Table E.1-1 Application Level Confidentiality Profile Attributes",
        "edition": edition,
        "source": {
            "file": source_name,
            "sha256": hashlib.sha256(source).hexdigest(),
            "parser": "innolitics/dicom-standard",
        },
        "generated_by": "python -m wadows.deid.generate_table",
        "rows": rows,
    }


def render(table: dict[str, Any]) -> str:
    # One key, then one row, per line: a new edition of the standard gives a small, readable diff.
    head = [f" {json.dumps(key)}: {json.dumps(value)}," for key, value in table.items() if key != "rows"]
    rows = ",\n".join("  " + json.dumps(row, sort_keys=True) for row in table["rows"])
    return "{\n" + "\n".join(head) + '\n "rows": [\n' + rows + "\n ]\n}\n"


def edition_beside(source_path: Path) -> str | None:
    provenance = source_path.with_suffix(".PROVENANCE.md")
    if not provenance.exists():
        return None
    match = _EDITION.search(provenance.read_text(encoding="utf-8"))
    return match.group(1) if match else None


def generate(source_path: Path, edition: str | None = None) -> str:
    """The text of the data file for this input (what ``main`` writes)."""
    edition = edition or edition_beside(source_path)
    if not edition:
        raise ValueError("the edition of the input is unknown: pass --edition (e.g. 2024b)")
    return render(build_table(source_path.read_bytes(), edition, source_path.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wadows.deid.generate_table", description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="confidentiality_profile_attributes.json (innolitics format)")
    parser.add_argument("--edition", help="DICOM edition of the input, e.g. 2024b (default: from .PROVENANCE.md)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        text = generate(args.source, args.edition)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({text.count(chr(10) + '  {')} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
