"""tags_read: which top-level elements a decision was taken from (what lets a slice reuse its neighbour's)."""

from __future__ import annotations

import pydicom
from pydicom.data import get_testdata_file

from wadows.deid import Deidentifier, Profile
from wadows.dicom.read_tags import SPECIFIC_CHARACTER_SET, tags_read

PATIENT_NAME, PATIENT_ID, ROWS = 0x00100010, 0x00100020, 0x00280010


def _ct():
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)


def test_lookups_are_noted_and_the_data_set_is_left_alone():
    ds = _ct()
    before = dict(ds._dict)
    result, tags = tags_read(lambda view: (str(view.PatientName), view.get(PATIENT_ID).value, "Rows" in view), ds)
    assert all(ds._dict[tag] is elem for tag, elem in before.items())  # nothing converted in the original
    assert tags == {PATIENT_NAME, PATIENT_ID, ROWS, SPECIFIC_CHARACTER_SET}
    assert result == (str(ds.PatientName), ds.PatientID, True)


def test_absent_elements_looked_up_are_noted_too():
    _, tags = tags_read(lambda view: view.get(0x00280301), _ct())  # Burned In Annotation: absent
    assert 0x00280301 in tags


def test_walking_the_elements_reads_them_all():
    for walk in (lambda view: list(view.keys()), lambda view: len(view), lambda view: dict(view._dict),
                 lambda view: {**view._dict}, lambda view: [elem for elem in view]):
        assert tags_read(walk, _ct())[1] is None


def test_the_plan_names_what_it_reads():
    deidentifier = Deidentifier(Profile(retain_long_modified_dates=True), b"read tags test key")
    ds = _ct()
    plan, tags = deidentifier.plan_with_inputs(ds)
    assert plan == deidentifier.plan(ds)
    # the SOP Instance UID, what decides refusals and pixel edits, the Patient ID the dates are shifted by
    for keyword in ("SOPInstanceUID", "SOPClassUID", "BurnedInAnnotation", "Modality", "Rows", "BitsStored",
                    "PatientIdentityRemoved", "PatientID"):
        assert pydicom.datadict.tag_for_keyword(keyword) in tags, keyword
    assert 0x60000102 in tags  # overlay planes in the pixel bits
    assert PATIENT_NAME not in tags
