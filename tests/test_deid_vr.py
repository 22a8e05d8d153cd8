"""Every action on every VR yields a valid value; every Table E.1-1 row does what its action says."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import validate_value

from wadows.deid import Deidentifier, Profile
from wadows.deid.actions import Op, compile_table
from wadows.deid.dummies import dummy_element, empty_element
from wadows.deid.table import load_table

KEY = b"vr-test-key"

SAMPLES = {
    "AE": "STORESCU", "AS": "042Y", "AT": 0x00100010, "CS": "VALUE", "DA": "20200101", "DS": "1.5",
    "DT": "20200101120000", "FL": 1.5, "FD": 1.5, "IS": "7", "LO": "SAMPLE TEXT", "LT": "SAMPLE TEXT",
    "OB": b"\x01\x02", "OD": bytes(8), "OF": bytes(4), "OL": bytes(4), "OV": bytes(8), "OW": b"\x01\x02",
    "PN": "DOE^JOHN", "SH": "SAMPLE", "SL": 1, "SS": 1, "ST": "SAMPLE TEXT", "SV": 1, "TM": "120000",
    "UC": "SAMPLE", "UI": "1.2.826.0.1.3680043.99.55", "UL": 1, "UN": b"\x01\x02",
    "UR": "http://example.org/x", "US": 1, "UT": "SAMPLE TEXT", "UV": 1,
}
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


def _roundtrip(elem, syntax: str):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.99.56"
    ds[elem.tag] = elem
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))[elem.tag]


def _valid(vr: str, value) -> None:
    if value is None or value == "":
        return
    if vr in _TEXT_VRS or vr in ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"):
        values = value if isinstance(value, (list, pydicom.multival.MultiValue)) else [value]
        for v in values:
            validate_value(vr, str(v) if vr in _TEXT_VRS else v, config.RAISE)


@pytest.mark.parametrize("vr", sorted(SAMPLES))
def test_dummy_and_empty_values_are_valid_for_every_vr(vr):
    tag = 0x00091001
    for maker in (dummy_element, empty_element):
        elem = maker(tag, vr) if maker is empty_element else maker(tag, vr, 6)
        for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian):
            back = _roundtrip(elem, syntax)
            if syntax != ImplicitVRLittleEndian:
                assert back.VR == vr
                _valid(vr, back.value)
        converted = convert_raw_data_element(elem) if not isinstance(elem, pydicom.DataElement) else elem
        if maker is dummy_element:
            assert not converted.is_empty, "D means a non-zero length value"
            _valid(vr, converted.value)
        else:
            assert converted.is_empty


def test_dummy_and_empty_sequences():
    assert dummy_element(0x00081110, "SQ").value == Sequence()
    assert empty_element(0x00081110, "SQ").value == Sequence()


def _one_of_every_row() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.826.0.1.3680043.99.57"
    for row in load_table().rows:
        tag = row.exact_tag
        if tag is None or tag >> 16 in (0x0000, 0x0002, 0x0004):
            continue  # command, file meta and DICOMDIR rows are not dataset attributes
        try:
            vr = dictionary_VR(tag).split(" or ")[0]
        except KeyError:
            continue  # rows the data dictionary of this pydicom does not know yet
        if vr == "SQ":
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "L-1", "99LOCAL", "SAMPLE"
            item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.99.58"
            ds.add_new(tag, vr, Sequence([item]))
        else:
            ds.add_new(tag, vr, SAMPLES[vr])
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.57"
    return ds


PROFILES = {
    "basic": Profile(),
    "keep everything optional": Profile(retain_uids=True, retain_device_identity=True,
                                        retain_institution_identity=True, retain_patient_characteristics=True,
                                        retain_long_full_dates=True),
    "clean everything": Profile(clean_descriptors=True, clean_structured_content=True, clean_graphics=True,
                                retain_long_modified_dates=True, retain_patient_characteristics=True,
                                retain_device_identity=True),
}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_row_gets_its_action_and_a_valid_value(name):
    profile = PROFILES[name]
    d = Deidentifier(profile, KEY)
    ds = _one_of_every_row()
    out = d.apply(ds, d.plan(ds))
    back = pydicom.dcmread(io.BytesIO(_bytes(out)))   # every output value can be written and read
    actions = compile_table(load_table(), profile).exact
    checked = 0
    for tag in ds.keys():
        action = actions.get(tag)
        if action is None or tag in (0x00080018,):
            continue
        vr, original = ds[tag].VR, ds[tag].value
        present = tag in back
        op = action.op
        if op == Op.CLEAN:
            kept = present and (vr == "SQ" or back[tag].value == original)   # a sequence is cleaned item by item
            op = Op.KEEP if kept else action.fallback
            if vr in ("DA", "DT") and profile.retain_long_modified_dates and present:
                assert back[tag].value != original  # shifted
                op = None
        if op == Op.REMOVE:
            assert not present, hex(tag)
        elif op == Op.EMPTY:
            assert present and back[tag].is_empty, hex(tag)
        elif op in (Op.DUMMY, Op.DUMMY_IF_VALUE):
            assert present and not back[tag].is_empty, hex(tag)
            if vr == "UI":
                assert back[tag].value == d.map_uid(original)
        elif op == Op.UID:
            expected = original if profile.retain_uids else d.map_uid(original)
            assert back[tag].value == expected, hex(tag)
        elif op == Op.KEEP and vr != "SQ":
            assert back[tag].value == original, hex(tag)
        if present and vr != "SQ":
            _valid(vr, back[tag].value)
        checked += 1
    assert checked > 500


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
