"""Each option changes what its Table E.1-1 column says, and nothing else; Profile configuration."""

from __future__ import annotations

import datetime as dt

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from wadows.deid import Deidentifier, Profile
from wadows.deid.descriptors import is_clean

KEY = b"option-test-key"


def _ct(**values) -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _run(profile: Profile, ds: Dataset) -> Dataset:
    d = Deidentifier(profile, KEY)
    return d.apply(ds, d.plan(ds))


def test_retain_device_identity():
    ds = _ct(DeviceSerialNumber="SN-4711", StationName="CT01", StationAETitle="CT01",
             PerformedStationAETitle="STMARYS_CT_ROOM3")
    basic, kept = _run(Profile(), ds), _run(Profile(retain_device_identity=True), ds)
    assert basic.DeviceSerialNumber == "ANONYMIZED" and basic.StationName == "ANONYMIZED"
    assert "StationAETitle" not in basic
    assert kept.DeviceSerialNumber == "SN-4711" and kept.StationName == "CT01"
    assert kept.StationAETitle == "CT01"                     # C: a harmless AE title survives cleaning
    assert "PerformedStationAETitle" not in kept             # C: one naming a site falls back to X
    assert "InstitutionName" in kept and kept.InstitutionName == "ANONYMIZED"  # another column: untouched


def test_retain_institution_identity():
    ds = _ct(InstitutionAddress="1 Hospital Road")
    basic, kept = _run(Profile(), ds), _run(Profile(retain_institution_identity=True), ds)
    assert basic.InstitutionName == "ANONYMIZED" and "InstitutionAddress" not in basic
    assert kept.InstitutionName == ds.InstitutionName and kept.InstitutionAddress == "1 Hospital Road"
    assert kept.StationName == "ANONYMIZED"


def test_retain_patient_characteristics():
    ds = _ct(PatientSex="F", PatientAge="042Y", PatientWeight=61.5, PatientSize=1.7, SmokingStatus="NO",
             Allergies="PENICILLIN")
    basic, kept = _run(Profile(), ds), _run(Profile(retain_patient_characteristics=True), ds)
    assert basic.PatientSex == "" and "PatientAge" not in basic and "PatientWeight" not in basic
    assert (kept.PatientSex, kept.PatientAge, float(kept.PatientWeight)) == ("F", "042Y", 61.5)
    assert kept.SmokingStatus == "NO"
    assert "Allergies" not in kept   # C: not descriptor vocabulary -> the Basic Profile's X


def test_retain_long_full_dates():
    ds = _ct(AcquisitionDateTime="20040119072730")
    kept = _run(Profile(retain_long_full_dates=True), ds)
    assert kept.StudyDate == ds.StudyDate and kept.AcquisitionDate == ds.AcquisitionDate
    assert kept.AcquisitionDateTime == "20040119072730" and kept.StudyTime == ds.StudyTime
    assert kept.PatientBirthDate == ""   # not in the option's column: still Z


def _days(a: str, b: str) -> int:
    return (dt.datetime.strptime(b[:8], "%Y%m%d") - dt.datetime.strptime(a[:8], "%Y%m%d")).days


def test_modified_dates_shift_every_date_by_one_keyed_amount_per_patient():
    ds = _ct(PatientID="PID-1", StudyDate="20200229", SeriesDate="20200301", AcquisitionDate="20200302",
             ContentDate="20200305", AcquisitionDateTime="20200302101112.5+0100", StudyTime="101112",
             PatientAge="042Y", InstanceCreationDate="20200310")
    ds.add_new(0x00181012, "DA", "20200311")          # Date of Secondary Capture (unlisted date)
    ref = Dataset()
    ref.ReferencedDateTime = "20200303"               # a partial-precision DT inside a sequence
    ds.ReferencedImageSequence = Sequence([ref])
    profile = Profile(retain_long_modified_dates=True, retain_patient_characteristics=True)
    d = Deidentifier(profile, KEY)
    plan = d.plan(ds)
    out = d.apply(ds, plan)
    shift = plan.date_shift_days
    assert -profile.date_shift_max_days <= shift <= -profile.date_shift_min_days
    assert _days(ds.StudyDate, out.StudyDate) == shift
    for keyword in ("SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate", "AcquisitionDateTime"):
        assert _days(out.StudyDate, out[keyword].value) == _days(ds.StudyDate, ds[keyword].value), keyword
    assert out.AcquisitionDateTime.endswith("101112.5+0100")   # time of day and offset kept
    assert out.StudyTime == "101112"                            # TM consistent with DT (whole days)
    assert _days("20200311", out[0x00181012].value) == shift
    assert out.ReferencedImageSequence[0].ReferencedDateTime == \
        (dt.date(2020, 3, 3) + dt.timedelta(days=shift)).strftime("%Y%m%d")
    assert out.PatientAge == "042Y"   # every interval is kept, so the age still fits the shifted dates
    # Same patient, same shift (on another day, in another study); another patient, another shift.
    again = d.plan(_ct(PatientID="PID-1", StudyInstanceUID="1.2.826.0.1.3680043.99.9"))
    assert again.date_shift_days == shift
    shifts = {d.plan(_ct(PatientID=f"PID-{n}")).date_shift_days for n in range(2, 12)}
    assert len(shifts) > 1
    assert {Deidentifier(profile, bytes([k])).plan(ds).date_shift_days for k in range(1, 9)} != {shift}


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
def test_modified_dates_leave_invalid_dates_to_the_basic_profile():
    out = _run(Profile(retain_long_modified_dates=True), _ct(StudyDate="NOTADATE", SeriesDate="20201301"))
    assert out.StudyDate == ""                 # Z
    assert out.SeriesDate == "19000101"        # X/D -> D


@pytest.mark.parametrize("text, clean", [
    ("CT CHEST W/O CONTRAST", True),
    ("MR BRAIN T1 AX POST GAD", True),
    ("CTA HEAD/NECK 0.625MM", True),
    ("Abdomen^1 ABD_PELVIS routine", True),
    ("CT CHEST DOE^JOHN", False),
    ("CHEST 12/03/2021", False),
    ("CHEST 2021-03-12", False),
    ("FOLLOW UP 10:32", False),
    ("ID 12345678", False),
    ("MRN1234", False),
    ("AB1234", False),
    ("STERNAL NOTCH", True),
    ("john.doe@example.org", False),
    ("MUELLER", False),
])
def test_descriptor_cleaner(text, clean):
    assert is_clean(text) is clean


def test_clean_descriptors_keeps_harmless_text_and_never_a_planted_name():
    harmless = _ct(StudyDescription="CT CHEST W/O CONTRAST", SeriesDescription="AXIAL 5MM",
                   ProtocolName="ROUTINE CHEST")
    named = _ct(StudyDescription="CT CHEST DOE^JOHN", SeriesDescription="FOR DR SMITHERS",
                ProtocolName="PROTOCOL OF JANE DOE")
    kept, cleaned = _run(Profile(clean_descriptors=True), harmless), _run(Profile(clean_descriptors=True), named)
    assert kept.StudyDescription == "CT CHEST W/O CONTRAST" and kept.SeriesDescription == "AXIAL 5MM"
    assert kept.ProtocolName == "ROUTINE CHEST"
    assert "StudyDescription" not in cleaned and "SeriesDescription" not in cleaned   # X
    assert cleaned.ProtocolName == "ANONYMIZED"                                       # X/D -> D
    assert "StudyDescription" not in _run(Profile(), harmless)                        # without the option: X


def _sr_item(text: str) -> Dataset:
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121071", "DCM", "Finding"
    item = Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", text
    item.ConceptNameCodeSequence = Sequence([concept])
    return item


def test_clean_structured_content():
    ds = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    ds.ContentSequence = Sequence([_sr_item("NODULE IN RIGHT LUNG 5 MM"), _sr_item("SEEN BY JOHN SMITH")])
    basic, cleaned = _run(Profile(), ds), _run(Profile(clean_structured_content=True), ds)
    assert [i.TextValue for i in basic.ContentSequence] == ["ANONYMIZED", "ANONYMIZED"]
    assert [i.TextValue for i in cleaned.ContentSequence] == ["NODULE IN RIGHT LUNG 5 MM", "ANONYMIZED"]


def test_clean_graphics_cleans_annotation_text_but_overlays_still_go():
    ds = _ct()
    text = Dataset()
    text.UnformattedTextValue = "LEFT"
    named = Dataset()
    named.UnformattedTextValue = "JOHN SMITH"
    annotation = Dataset()
    annotation.GraphicLayer = "LAYER1"
    annotation.TextObjectSequence = Sequence([text, named])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    ds.add_new(0x60000010, "US", 128)
    ds.add_new(0x60003000, "OW", bytes(128 * 128 // 8))
    basic, cleaned = _run(Profile(), ds), _run(Profile(clean_graphics=True), ds)
    texts = lambda out: [t.UnformattedTextValue for t in out.GraphicAnnotationSequence[0].TextObjectSequence]  # noqa: E731
    assert texts(basic) == ["ANONYMIZED", "ANONYMIZED"]
    assert texts(cleaned) == ["LEFT", "ANONYMIZED"]
    assert not any(tag >> 16 == 0x6000 for tag in cleaned.keys())


def test_patient_id_becomes_a_keyed_pseudonym():
    a = _run(Profile(), _ct(PatientID="PID-1"))
    b = _run(Profile(), _ct(PatientID="PID-1", SOPInstanceUID="1.2.826.0.1.3680043.99.8"))
    c = _run(Profile(), _ct(PatientID="PID-2"))
    assert a.PatientID == b.PatientID != c.PatientID
    assert a.PatientID.startswith("ANON-") and "PID" not in a.PatientID
    assert _run(Profile(), _ct(PatientID="")).PatientID == ""


# -- Profile configuration ----------------------------------------------------------------------------

def test_profile_from_mapping():
    profile = Profile.from_mapping({"retain_uids": True, "burned_in_suspect_modalities": ["us", "SC"]})
    assert profile.retain_uids and profile.burned_in_suspect_modalities == ("US", "SC")
    assert Profile.from_mapping({"burned_in_suspect_modalities": "US, XA"}).burned_in_suspect_modalities == \
        ("US", "XA")
    assert Profile.from_mapping({}) == Profile()
    assert Profile().clean_pixel_data and not Profile().retain_uids


@pytest.mark.parametrize("mapping, message", [
    ({"retain_uid": True}, "unknown anonymize setting"),
    ({"retain_long_full_dates": True, "retain_long_modified_dates": True}, "exclude each other"),
    ({"retain_uids": "yes"}, "retain_uids must be true or false"),
    ({"burned_in_suspect_modalities": 3}, "burned_in_suspect_modalities"),
    ({"date_shift_min_days": 10, "date_shift_max_days": 5}, "date shift range"),
])
def test_profile_rejects_bad_settings(mapping, message):
    with pytest.raises(ValueError, match=message):
        Profile.from_mapping(mapping)
