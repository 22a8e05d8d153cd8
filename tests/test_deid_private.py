"""Private attributes: all removed by default; Retain Safe Private keeps only what is known safe."""

from __future__ import annotations

import io

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from wadows.deid import Deidentifier, Profile

KEY = b"private-test-key"


def _run(profile: Profile, ds: Dataset) -> Dataset:
    d = Deidentifier(profile, KEY)
    return d.apply(ds, d.plan(ds))


def _reread(ds: Dataset, implicit: bool = False) -> Dataset:
    buffer = io.BytesIO()
    if implicit:
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _declaration(group: int, creator: str, status: str, safe=(), actions=()) -> Dataset:
    item = Dataset()
    item.PrivateGroupReference = group
    item.PrivateCreatorReference = creator
    item.BlockIdentifyingInformationStatus = status
    if safe:
        item.NonidentifyingPrivateElements = list(safe)
    if actions:
        action_items = []
        for offsets, action in actions:
            a = Dataset()
            a.IdentifyingPrivateElements = list(offsets)
            a.DeidentificationAction = action
            action_items.append(a)
        item.DeidentificationActionSequence = Sequence(action_items)
    return item


def _odd_groups(ds: Dataset) -> list[int]:
    found = []

    def visit(dataset: Dataset) -> None:
        for elem in dataset:
            if elem.tag.group & 1:
                found.append(int(elem.tag))
            if elem.VR == "SQ":
                for item in elem.value:
                    visit(item)

    visit(ds)
    return found


def test_all_private_attributes_go_by_default_at_any_depth():
    for name in ("CT_small.dcm", "nested_priv_SQ.dcm", "priv_SQ.dcm", "waveform_ecg.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name), force=True)
        ds.SOPInstanceUID = ds.get("SOPInstanceUID", "1.2.826.0.1.3680043.99.3")
        assert _odd_groups(ds), name
        assert _odd_groups(_run(Profile(), ds)) == [], name


def _with_blocks() -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    safe = ds.private_block(0x0029, "ACME SAFE", create=True)
    safe.add_new(0x01, "LO", "SAFE TEXT")
    inner = Dataset()
    inner.PatientName = "INNER^NAME"
    inner.SliceThickness = "2.5"
    safe.add_new(0x02, "SQ", Sequence([inner]))
    unsafe = ds.private_block(0x0031, "ACME UNSAFE", create=True)
    unsafe.add_new(0x01, "LO", "SECRET UNSAFE")
    mixed = ds.private_block(0x0033, "ACME MIXED", create=True)
    mixed.add_new(0x01, "DS", "1.5")                # declared non-identifying
    mixed.add_new(0x02, "LO", "SECRET MIXED")        # not declared: removed
    mixed.add_new(0x03, "PN", "SECRET^DUMMY")        # action D
    mixed.add_new(0x04, "UI", "1.2.826.0.1.3680043.99.4")  # action U
    mixed.add_new(0x05, "LO", "SECRET ZERO")         # action Z
    mixed.add_new(0x06, "LO", "SECRET X")            # action X
    undeclared = ds.private_block(0x0035, "ACME UNKNOWN", create=True)
    undeclared.add_new(0x01, "LO", "SECRET UNDECLARED")
    siemens = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    siemens.add_new(0x0C, "IS", "1000")              # B_value: in data/safe_private.json
    siemens.add_new(0x0D, "LO", "SECRET NOT CS")      # listed as CS, but this one holds text
    siemens.add_new(0x10, "LO", "SECRET OTHER")       # not listed
    ds.PrivateDataElementCharacteristicsSequence = Sequence([
        _declaration(0x0029, "ACME SAFE", "SAFE"),
        _declaration(0x0031, "ACME UNSAFE", "UNSAFE"),
        _declaration(0x0033, "ACME MIXED", "MIXED", safe=[0x01],
                     actions=[([0x03], "D"), ([0x04], "U"), ([0x05], "Z"), ([0x06], "X")]),
    ])
    return ds


def _values(ds: Dataset) -> dict[str, str]:
    """Private values by "creator offset", as text (implicit VR private values come back as bytes)."""
    values = {}
    for tag in ds.keys():
        if tag >> 16 & 1 and tag & 0xFFFF >= 0x1000:
            elem = ds[tag]
            value = elem.value
            if isinstance(value, bytes):
                value = value.decode("latin-1").strip("\0 ")
            values[f"{elem.private_creator} {tag & 0xFF:02X}"] = "" if value is None else str(value)
    return values


def test_retain_safe_private_follows_the_instance_declarations_and_the_known_list():
    for implicit in (False, True):
        ds = _reread(_with_blocks(), implicit=implicit)
        d = Deidentifier(Profile(retain_safe_private=True), KEY)
        direct = d.apply(ds, d.plan(ds))
        out = _reread(direct)
        kept = _values(out)
        assert kept["ACME SAFE 01"] == "SAFE TEXT"
        safe_items = direct[0x00291002].value  # parsed and cleaned even when its VR was not encoded
        assert safe_items[0].PatientName == "" and float(safe_items[0].SliceThickness) == 2.5
        assert not any(key.startswith(("ACME UNSAFE", "ACME UNKNOWN")) for key in kept)
        assert float(kept["ACME MIXED 01"]) == 1.5
        assert "ACME MIXED 02" not in kept and "ACME MIXED 06" not in kept
        # D: a dummy of the VR; with the VR unknown (implicit VR private), zero bytes.
        assert kept["ACME MIXED 03"] == ("" if implicit else "ANONYMIZED")
        assert kept["ACME MIXED 05"] == ""
        assert kept["ACME MIXED 04"] == d.map_uid("1.2.826.0.1.3680043.99.4")
        assert int(kept["SIEMENS MR HEADER 0C"]) == 1000
        assert "SIEMENS MR HEADER 0D" not in kept and "SIEMENS MR HEADER 10" not in kept
        # Creators of blocks that keep nothing are gone; the declarations stay for the kept blocks.
        assert 0x00310010 not in out and 0x00350010 not in out
        assert len(out.PrivateDataElementCharacteristicsSequence) == 3
        assert b"SECRET" not in _bytes(out) and b"INNER" not in _bytes(out)


def test_without_the_option_the_declarations_go_too():
    out = _run(Profile(), _with_blocks())
    assert _odd_groups(out) == [] and "PrivateDataElementCharacteristicsSequence" not in out


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def test_known_safe_code_strings_pass_only_with_their_listed_values():
    for value, kept in (("ISOTROPIC", True), ("JOHN DOE", False)):
        ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
        ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0D, "CS", value)
        out = _run(Profile(retain_safe_private=True), ds)
        assert (0x0019100D in out) is kept
        assert (0x00190010 in out) is kept   # the creator goes with its last element


def test_declarations_are_cleaned_like_any_other_sequence():
    ds = _with_blocks()
    ds.PrivateDataElementCharacteristicsSequence[0].PatientName = "SECRET^IN^DECLARATION"
    out = _run(Profile(retain_safe_private=True), ds)
    assert out.PrivateDataElementCharacteristicsSequence[0].PrivateCreatorReference == "ACME SAFE"
    assert b"SECRET" not in _bytes(out)
