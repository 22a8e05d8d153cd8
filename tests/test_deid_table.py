"""Table E.1-1 package data: generated, not retyped; the overlay applied; every row compiles."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from wadows.deid import generate_table
from wadows.deid.actions import Op, action_for, compile_table, effective_code
from wadows.deid.profile import Profile
from wadows.deid.table import load_table

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "reference" / "confidentiality_profile_attributes.json"
COMMITTED = REPO / "wadows" / "deid" / "data" / "table_e1_1.json"


@pytest.mark.skipif(not SOURCE.exists(), reason="shared/reference is not beside the repository")
def test_generator_reproduces_the_committed_table_byte_for_byte():
    assert generate_table.generate(SOURCE) == COMMITTED.read_text(encoding="utf-8")


@pytest.mark.skipif(not SOURCE.exists(), reason="shared/reference is not beside the repository")
def test_generator_command_writes_the_same_file(tmp_path):
    out = tmp_path / "table.json"
    assert generate_table.main([str(SOURCE), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")


def test_generator_rejects_an_unknown_action(tmp_path):
    source = tmp_path / "t.json"
    source.write_text(json.dumps([{"name": "X", "tag": "(0010,0010)", "id": "00100010", "stdCompIOD": "Y",
                                   "basicProfile": "Q"}]))
    with pytest.raises(ValueError, match="Basic Profile action"):
        generate_table.generate(source, edition="2024b")


def test_generator_needs_an_edition(tmp_path):
    source = tmp_path / "t.json"
    source.write_text("[]")
    with pytest.raises(ValueError, match="edition"):
        generate_table.generate(source)


def test_committed_table_records_edition_and_source():
    data = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert data["edition"] == "2024b"
    assert len(data["source"]["sha256"]) == 64
    assert len(data["rows"]) == 621
    counts = {}
    for row in data["rows"]:
        counts[row["basic"]] = counts.get(row["basic"], 0) + 1
    # The action mix of the 2024b table (spec notes §0).
    assert counts == {"X": 384, "D": 92, "U": 54, "Z": 42, "X/D": 22, "X/Z": 11, "X/Z/D": 8, "Z/D": 6, "X/Z/U*": 2}


def test_overlay_adds_the_post_2024b_rows_with_its_own_edition_note():
    overlay = json.loads(resources.files("wadows.deid").joinpath("data", "table_e1_1_post2024b.json").read_text())
    assert "2024b" in overlay["base_edition"] and overlay["edition"]
    table = load_table()
    rows = table.by_tag()
    assert table.edition == "2024b+"
    assert rows["00100012"].name == "Name to Use" and rows["00100012"].basic == "X"
    assert rows["00102161"].options == {"retain_patient_characteristics": "K"}
    assert len(table.rows) == 621 + len(overlay["rows"])


def test_every_row_compiles_for_every_single_option():
    table = load_table()
    switches = ["retain_safe_private", "retain_uids", "retain_device_identity", "retain_institution_identity",
                "retain_patient_characteristics", "retain_long_full_dates", "retain_long_modified_dates",
                "clean_descriptors", "clean_structured_content", "clean_graphics"]
    for switch in [None, *switches]:
        profile = Profile(**({switch: True} if switch else {}))
        compiled = compile_table(table, profile)
        assert len(compiled.exact) == len(table.rows) - 4  # all but 50xx, 60xx3000, 60xx4000 and private
        for row in table.rows:
            code = effective_code(row, profile)
            # An option changes exactly its own column.
            if switch and switch in row.options:
                assert code in ("K", "C")
            elif not any(getattr(profile, s) for s in row.options):
                assert code == row.basic


def test_compound_codes_resolve_conservatively():
    rows = load_table().by_tag()
    basic = Profile()
    assert action_for(rows["00081110"], basic).op == Op.EMPTY            # X/Z  Referenced Study Sequence
    assert action_for(rows["00080080"], basic).op == Op.DUMMY_IF_VALUE   # X/Z/D Institution Name
    assert action_for(rows["00180010"], basic).op == Op.DUMMY_IF_VALUE   # Z/D  Contrast/Bolus Agent
    assert action_for(rows["00081140"], basic).op == Op.KEEP             # X/Z/U* Referenced Image Sequence
    assert action_for(rows["00100010"], basic).op == Op.EMPTY            # Z Patient's Name
    clean = action_for(rows["00081030"], Profile(clean_descriptors=True))  # Study Description X / C
    assert (clean.op, clean.fallback) == (Op.CLEAN, Op.REMOVE)


def test_modified_dates_win_over_another_options_keep():
    row = load_table().by_tag()["0018700C"]  # Date of Last Detector Calibration: DevId K, dates K/C
    both = Profile(retain_device_identity=True, retain_long_modified_dates=True)
    assert effective_code(row, both) == "C"
    assert effective_code(row, Profile(retain_device_identity=True)) == "K"
