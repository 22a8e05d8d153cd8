"""Markers: (0012,0062/0063/0064), (0028,0301), (0028,0303) exactly as specified; refusals."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from wadows.deid import Deidentifier, PixelRuleSet, Profile, Refusal

KEY = b"marker-test-key"
US_RULE = {"name": "test US band", "match": {"Modality": "US", "Manufacturer": "ACME*"}, "regions": [[0, 0, 8, 2]]}


def _codes(ds: Dataset) -> list[str]:
    return [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]


def _ct() -> Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def _ultrasound(burned_in: str | None = "YES") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.Manufacturer = "US", "ACME Medical"
    ds.PatientName, ds.PatientID = "SECRET^PATIENT", "SECRET-ID-1"
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 4, 8, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = "MONOCHROME2", 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.full((4, 8), 200, np.uint8).tobytes()
    return ds


def test_basic_profile_markers_on_a_ct():
    d = Deidentifier(Profile(), KEY)
    ds = _ct()
    out = d.apply(ds, d.plan(ds))
    assert out.PatientIdentityRemoved == "YES"
    assert out.DeidentificationMethod.startswith("wadows ") and "E.1-1 2024b" in out.DeidentificationMethod
    assert _codes(out) == ["113100"]
    assert out.DeidentificationMethodCodeSequence[0].CodingSchemeDesignator == "DCM"
    assert out.DeidentificationMethodCodeSequence[0].CodeMeaning == "Basic Application Confidentiality Profile"
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert "BurnedInAnnotation" not in out  # nothing was cleaned, so nothing is claimed


@pytest.mark.parametrize("options, codes, temporal", [
    ({"retain_long_full_dates": True, "retain_device_identity": True, "clean_descriptors": True},
     ["113100", "113105", "113106", "113109"], "UNMODIFIED"),
    ({"retain_long_modified_dates": True, "retain_patient_characteristics": True},
     ["113100", "113107", "113108"], "MODIFIED"),
    ({"retain_uids": True, "retain_safe_private": True, "retain_institution_identity": True,
      "clean_structured_content": True, "clean_graphics": True},
     ["113100", "113103", "113104", "113110", "113111", "113112"], "REMOVED"),
    ({"clean_pixel_data": False}, ["113100"], "REMOVED"),
])
def test_codes_are_exactly_the_options_applied(options, codes, temporal):
    d = Deidentifier(Profile(**options), KEY)
    ds = _ct()
    out = d.apply(ds, d.plan(ds))
    assert _codes(out) == codes
    assert out.LongitudinalTemporalInformationModified == temporal


def test_clean_pixel_data_is_claimed_only_when_regions_are_blanked():
    d = Deidentifier(Profile(), KEY, PixelRuleSet.from_mapping([US_RULE]))
    ds = _ultrasound("YES")
    plan = d.plan(ds)
    out = d.apply(ds, plan)
    assert plan.pixels_cleaned and plan.pixel_edit is not None and plan.pixel_rule == "test US band"
    assert _codes(out) == ["113100", "113101"]
    assert out.BurnedInAnnotation == "NO"
    assert Profile().option_codes(pixels_cleaned=False) == [("113100", "Basic Application Confidentiality Profile")]
    assert ("113101", "Clean Pixel Data Option") in Profile().option_codes(pixels_cleaned=True)
    assert ("113101", "Clean Pixel Data Option") not in Profile(clean_pixel_data=False).option_codes(True)


def test_recognizable_visual_features_is_never_claimed():
    d = Deidentifier(Profile(clean_recognizable_visual_features=True), KEY)
    ds = _ct()
    ds.RecognizableVisualFeatures = "NO"
    out = d.apply(ds, d.plan(ds))
    assert "113102" not in _codes(out)
    assert out.RecognizableVisualFeatures == "NO"


def test_embedded_overlay_zeroing_is_not_a_clean_pixel_data_claim():
    d = Deidentifier(Profile(), KEY)
    ds = _ct()
    ds.BitsStored, ds.HighBit = 12, 11
    ds.add_new(0x60000010, "US", 128)
    ds.add_new(0x60000011, "US", 128)
    ds.add_new(0x60000102, "US", 12)
    plan = d.plan(ds)
    out = d.apply(ds, plan)
    assert plan.pixel_edit is not None and not plan.pixels_cleaned
    assert _codes(out) == ["113100"] and "BurnedInAnnotation" not in out


def test_already_deidentified_appends_the_method_and_keeps_the_stronger_temporal_marker():
    d = Deidentifier(Profile(retain_long_full_dates=True), KEY)
    ds = _ct()
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "EARLIER DEIDENTIFIER 1.0"
    earlier = Dataset()
    earlier.CodeValue, earlier.CodingSchemeDesignator, earlier.CodeMeaning = "113107", "DCM", "old"
    ds.DeidentificationMethodCodeSequence = Sequence([earlier])
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    plan = d.plan(ds)
    out = d.apply(ds, plan)
    assert plan.already_deidentified
    assert out.DeidentificationMethod[0] == "EARLIER DEIDENTIFIER 1.0"
    assert out.DeidentificationMethod[1].startswith("wadows ")
    assert _codes(out) == ["113100", "113106"]
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"  # not UNMODIFIED: dates were shifted before


def test_method_text_is_replaced_when_not_already_deidentified():
    d = Deidentifier(Profile(), KEY)
    ds = _ct()
    ds.DeidentificationMethod = "SOMETHING PARTIAL BY DR SECRETNAME"
    out = d.apply(ds, d.plan(ds))
    assert out.DeidentificationMethod.startswith("wadows ")


# -- refusals -----------------------------------------------------------------------------------------

def _refusal(d: Deidentifier, ds: Dataset) -> str:
    with pytest.raises(Refusal) as caught:
        d.plan(ds)
    reason = caught.value.reason
    assert str(caught.value) == reason
    for secret in ("SECRET", ds.get("SOPInstanceUID", "SECRET")):
        assert secret not in reason  # reasons name the problem, not the values
    return reason


def test_burned_in_annotation_without_a_rule_is_refused():
    reason = _refusal(Deidentifier(Profile(), KEY), _ultrasound("YES"))
    assert reason == "burned-in annotation and no pixel-cleaning rule matches"


def test_suspect_modality_without_the_attribute_is_refused_unless_configured_otherwise():
    ds = _ultrasound(None)
    assert "suspected" in _refusal(Deidentifier(Profile(), KEY), ds)
    assert Deidentifier(Profile(burned_in_suspect_modalities=()), KEY).plan(ds).pixel_edit is None
    assert Deidentifier(Profile(), KEY).plan(_ultrasound("NO")).pixel_edit is None


def test_a_rule_for_another_device_does_not_help():
    rules = PixelRuleSet.from_mapping([{**US_RULE, "match": {"Manufacturer": "OTHER*"}}])
    _refusal(Deidentifier(Profile(), KEY, rules), _ultrasound("YES"))


def test_burned_in_is_refused_when_clean_pixel_data_is_off_even_with_a_rule():
    d = Deidentifier(Profile(clean_pixel_data=False), KEY, PixelRuleSet.from_mapping([US_RULE]))
    assert "switched off" in _refusal(d, _ultrasound("YES"))


def test_recognizable_visual_features_are_refused():
    ds = _ct()
    ds.RecognizableVisualFeatures = "YES"
    assert "recognizable visual features" in _refusal(Deidentifier(Profile(), KEY), ds)
    absent = _ct()
    assert "not ruled out" in _refusal(Deidentifier(Profile(clean_recognizable_visual_features=True), KEY), absent)


def test_an_object_without_sop_instance_uid_is_refused():
    ds = _ct()
    del ds.SOPInstanceUID
    _refusal(Deidentifier(Profile(), KEY), ds)
