"""Pixel rules and the pixel edit: regions blanked (mono, RGB, multi-frame), embedded overlays zeroed."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from wadows.deid import Deidentifier, PixelEditError, PixelRuleSet, Profile, apply_pixel_edit

KEY = b"pixel-test-key"


def _plan(ds: Dataset, rule: dict, **profile):
    d = Deidentifier(Profile(burned_in_suspect_modalities=(), **profile), KEY, PixelRuleSet.from_mapping([rule]))
    return d.plan(ds)


def _check_blanked(before: np.ndarray, after: np.ndarray, region: tuple[int, int, int, int], color: bool):
    x, y, w, h = region
    index = (Ellipsis, slice(y, y + h), slice(x, x + w)) + ((slice(None),) if color else ())
    assert before[index].any(), "the test region must hold non-zero pixels to begin with"
    assert not after[index].any()
    mask = np.ones(before.shape, bool)
    mask[index] = False
    assert np.array_equal(before[mask], after[mask])  # nothing else changed


@pytest.mark.parametrize("name, region, color", [
    ("CT_small.dcm", (10, 20, 30, 5), False),          # mono, one frame
    ("rtdose.dcm", (0, 2, 3, 4), False),               # mono, many frames
    ("SC_rgb_rle.dcm", (20, 40, 60, 10), True),        # RGB, one frame
    ("SC_rgb_rle_2frame.dcm", (0, 0, 100, 3), True),   # RGB, two frames
])
def test_pixel_edit_blanks_the_rule_regions(name, region, color):
    ds = pydicom.dcmread(get_testdata_file(name), force=True)
    rule = {"name": "region", "match": {"SOPClassUID": str(ds.SOPClassUID)}, "regions": [list(region)]}
    plan = _plan(ds, rule)
    assert plan.pixels_cleaned and plan.pixel_rule == "region"
    before = ds.pixel_array
    after = plan.pixel_edit(np.array(before), ds)
    assert after.shape == before.shape
    _check_blanked(before, after, region, color)


def test_regions_outside_the_image_are_clipped_and_read_only_arrays_are_copied():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    plan = _plan(ds, {"name": "edge", "match": {"Modality": "CT"}, "regions": [[120, 120, 500, 500]]})
    array = ds.pixel_array.copy()
    array.flags.writeable = False
    after = plan.pixel_edit(array, ds)
    assert not after[120:, 120:].any() and after[:120, :120].any()


def test_pixel_edit_refuses_an_array_of_another_shape():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    plan = _plan(ds, {"name": "r", "match": {"Modality": "CT"}, "regions": [[0, 0, 1, 1]]})
    with pytest.raises(PixelEditError):
        plan.pixel_edit(np.zeros((64, 64), np.int16), ds)


def _embedded_overlay_image(signed: bool) -> tuple[Dataset, np.ndarray]:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.7", generate_uid(), "OT"
    ds.BurnedInAnnotation = "NO"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 4, 4, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, int(signed)
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000100, "US", 16)
    ds.add_new(0x60000102, "US", 12)   # overlay plane in bit 12 of the pixel data
    stored = np.full((4, 4), 0xFFB if signed else 0x123, np.uint16)   # 0xFFB = -5 in 12-bit two's complement
    stored[1, :] |= 1 << 12
    ds.PixelData = stored.tobytes()
    return ds, stored


def test_embedded_overlay_bits_are_zeroed_unsigned():
    ds, stored = _embedded_overlay_image(signed=False)
    plan = Deidentifier(Profile(), KEY).plan(ds)
    assert plan.pixel_edit is not None and not plan.pixels_cleaned
    edited = plan.pixel_edit(stored.copy(), ds)       # the raw stored values, overlay bit included
    assert not (edited & (1 << 12)).any() and (edited == 0x123).all()
    assert np.array_equal(plan.pixel_edit(np.array(ds.pixel_array), ds), ds.pixel_array)  # idempotent


def test_embedded_overlay_bits_are_zeroed_signed():
    ds, stored = _embedded_overlay_image(signed=True)
    plan = Deidentifier(Profile(), KEY).plan(ds)
    edited = plan.pixel_edit(stored.view(np.int16).copy(), ds)
    assert (edited == -5).all()
    assert np.array_equal(plan.pixel_edit(np.array(ds.pixel_array), ds), ds.pixel_array)


def test_overlay_with_separate_data_needs_no_pixel_edit():
    ds = pydicom.dcmread(get_testdata_file("examples_overlay.dcm"))
    plan = Deidentifier(Profile(), KEY).plan(ds)
    assert plan.pixel_edit is None
    out = Deidentifier(Profile(), KEY).apply(ds, plan)
    assert not any(tag >> 16 == 0x6000 for tag in out.keys())


def test_apply_pixel_edit_on_a_full_dataset():
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_rle.dcm"))
    ds.BurnedInAnnotation = "YES"
    d = Deidentifier(Profile(), KEY, PixelRuleSet.from_mapping(
        [{"name": "sc", "match": {"Modality": "OT"}, "regions": [[0, 0, 100, 10]]}]))
    plan = d.plan(ds)
    out = d.apply(ds, plan)
    assert out.PixelData == ds.PixelData          # apply() passes the pixel data through ...
    apply_pixel_edit(out, plan)                    # ... and the caller edits it
    assert not out.pixel_array[:10, :100].any() and out.pixel_array[10:].any()
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert out.BurnedInAnnotation == "NO" and out.SOPInstanceUID == plan.new_sop_instance_uid


# -- rules --------------------------------------------------------------------------------------------

def _header(**values) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_rule_matching():
    rules = PixelRuleSet.from_mapping([
        {"name": "a", "match": {"Manufacturer": ["ACME*", "Other Co"], "Rows": 480}, "regions": [[0, 0, 1, 1]]},
        {"name": "b", "match": {"ImageType": "DERIVED\\SECONDARY*"}, "regions": [[0, 0, 1, 1]]},
    ], include_builtin=False)
    assert rules.first_match(_header(Manufacturer="acme medical ", Rows=480)).name == "a"
    assert rules.first_match(_header(Manufacturer="Other Co", Rows=480)).name == "a"
    assert rules.first_match(_header(Manufacturer="ACME", Rows=512)) is None
    assert rules.first_match(_header(Manufacturer="ACME")) is None            # absent attribute: no match
    assert rules.first_match(_header(ImageType=["DERIVED", "SECONDARY", "SCREEN SAVE"])).name == "b"
    assert rules.first_match(_header(ImageType=["ORIGINAL", "PRIMARY"])) is None


def test_builtin_rules_are_package_data_and_come_first():
    builtin = PixelRuleSet.builtin()
    configured = PixelRuleSet.from_mapping([{"name": "x", "match": {"Modality": "US"}, "regions": [[0, 0, 1, 1]]}])
    assert len(configured) == len(builtin) + 1 and configured.rules[-1].name == "x"
    assert len(PixelRuleSet.from_mapping([])) == len(builtin)


@pytest.mark.parametrize("tables, message", [
    ({"name": "x"}, "list of rule tables"),
    ([{"match": {"Modality": "US"}, "regions": [[0, 0, 1, 1]]}], "name"),
    ([{"name": "x", "match": {}, "regions": [[0, 0, 1, 1]]}], "match"),
    ([{"name": "x", "match": {"NoSuchKeyword": 1}, "regions": [[0, 0, 1, 1]]}], "unknown DICOM keyword"),
    ([{"name": "x", "match": {"Modality": "US"}, "regions": []}], "at least one region"),
    ([{"name": "x", "match": {"Modality": "US"}, "regions": [[0, 0, 0, 5]]}], "width, height > 0"),
    ([{"name": "x", "match": {"Modality": "US"}, "regions": [[0, 0, 1.5, 5]]}], "whole pixels"),
    ([{"name": "x", "match": {"Modality": True}, "regions": [[0, 0, 1, 1]]}], "text or a number"),
    ([{"name": "x", "match": {"Modality": "US"}, "regions": [[0, 0, 1, 1]], "colour": "red"}], "unknown key"),
    ([{"name": "x", "match": {"Modality": "US"}, "regions": [[0, 0, 1, 1]]}] * 2, "unique"),
])
def test_bad_rules_are_rejected_with_a_clear_message(tables, message):
    with pytest.raises(ValueError, match=message):
        PixelRuleSet.from_mapping(tables)
