"""Keyed UID remapping: consistent across instances and requests, key-dependent, well-known UIDs kept."""

from __future__ import annotations

import hashlib
import hmac

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from wadows.deid import Deidentifier, Profile

KEY = b"uid-test-key"
STUDY = "1.2.826.0.1.3680043.99.1"
SERIES = "1.2.826.0.1.3680043.99.1.2"
FRAME_OF_REFERENCE = "1.2.826.0.1.3680043.99.1.3"


def _ct(instance: str) -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = STUDY, SERIES, FRAME_OF_REFERENCE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = instance
    return ds


def _structure_set_referencing(ct: Dataset) -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("rtstruct.dcm"), force=True)
    ds.StudyInstanceUID = STUDY
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    frame.FrameOfReferenceUID = FRAME_OF_REFERENCE
    study_ref = frame.RTReferencedStudySequence[0]
    study_ref.ReferencedSOPInstanceUID = STUDY
    series_ref = study_ref.RTReferencedSeriesSequence[0]
    series_ref.SeriesInstanceUID = SERIES
    image_ref = Dataset()
    image_ref.ReferencedSOPClassUID = ct.SOPClassUID
    image_ref.ReferencedSOPInstanceUID = ct.SOPInstanceUID
    series_ref.ContourImageSequence = Sequence([image_ref])
    for roi in ds.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = FRAME_OF_REFERENCE
    return ds


def _deidentify(d: Deidentifier, ds: Dataset) -> Dataset:
    return d.apply(ds, d.plan(ds))


def test_uids_stay_consistent_across_the_instances_of_a_study():
    d = Deidentifier(Profile(), KEY)
    first, second = _ct("1.2.826.0.1.3680043.99.1.2.1"), _ct("1.2.826.0.1.3680043.99.1.2.2")
    structures = _structure_set_referencing(first)
    a, b, rt = _deidentify(d, first), _deidentify(d, second), _deidentify(d, structures)
    assert a.StudyInstanceUID == b.StudyInstanceUID == rt.StudyInstanceUID != STUDY
    assert a.SeriesInstanceUID == b.SeriesInstanceUID != SERIES
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID != FRAME_OF_REFERENCE
    assert a.SOPInstanceUID != b.SOPInstanceUID
    # References resolve to the referenced objects' new UIDs, at any depth.
    frame = rt.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == a.FrameOfReferenceUID
    study_ref = frame.RTReferencedStudySequence[0]
    assert study_ref.ReferencedSOPInstanceUID == a.StudyInstanceUID
    series_ref = study_ref.RTReferencedSeriesSequence[0]
    assert series_ref.SeriesInstanceUID == a.SeriesInstanceUID
    assert series_ref.ContourImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert all(roi.ReferencedFrameOfReferenceUID == a.FrameOfReferenceUID for roi in rt.StructureSetROISequence)
    # SOP Class UIDs (well-known) never change.
    assert series_ref.ContourImageSequence[0].ReferencedSOPClassUID == first.SOPClassUID
    assert frame.RTReferencedStudySequence[0].ReferencedSOPClassUID == \
        structures.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].ReferencedSOPClassUID


def test_the_mapping_is_the_documented_formula_and_valid():
    d = Deidentifier(Profile(), KEY)
    expected = "2.25." + str(int.from_bytes(hmac.new(KEY, STUDY.encode(), hashlib.sha256).digest()[:16], "big"))
    assert d.map_uid(STUDY) == expected
    assert UID(expected).is_valid and len(expected) <= 64


def test_deterministic_and_key_dependent():
    ds = _ct("1.2.826.0.1.3680043.99.1.2.9")
    once = _deidentify(Deidentifier(Profile(), KEY), ds)
    again = _deidentify(Deidentifier(Profile(), KEY), ds)
    other = _deidentify(Deidentifier(Profile(), b"another key"), ds)
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert once[keyword].value == again[keyword].value
        assert once[keyword].value != other[keyword].value


def test_plan_announces_the_uid_that_apply_writes_everywhere():
    d = Deidentifier(Profile(), KEY)
    ds = _ct("1.2.826.0.1.3680043.99.1.2.3")
    plan = d.plan(ds)
    out = d.apply(ds, plan)
    assert plan.new_sop_instance_uid == out.SOPInstanceUID == out.file_meta.MediaStorageSOPInstanceUID
    assert plan.new_sop_instance_uid == d.map_uid("1.2.826.0.1.3680043.99.1.2.3")


def test_well_known_and_class_uids_are_kept_and_multi_valued_uids_mapped():
    d = Deidentifier(Profile(), KEY)
    ds = _ct("1.2.826.0.1.3680043.99.1.2.4")
    ds.SOPClassesInStudy = ["1.2.840.10008.5.1.4.1.1.2", "1.3.12.2.1107.5.9.1"]   # classes, one private
    ds.FailedSOPInstanceUIDList = ["1.2.826.0.1.3680043.99.5", "1.2.826.0.1.3680043.99.6"]
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-D3000", "SRT", "Chest"
    code.CodingSchemeUID = "2.16.840.1.113883.6.96"
    ds.AnatomicRegionSequence = Sequence([code])
    ds.ContextGroupExtensionCreatorUID = "1.2.826.0.1.3680043.99.7"   # unlisted UI: remapped
    out = _deidentify(d, ds)
    assert out.SOPClassUID == ds.SOPClassUID and out.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert list(out.SOPClassesInStudy) == list(ds.SOPClassesInStudy)
    assert out.AnatomicRegionSequence[0].CodingSchemeUID == "2.16.840.1.113883.6.96"
    assert list(out.FailedSOPInstanceUIDList) == [d.map_uid("1.2.826.0.1.3680043.99.5"),
                                                  d.map_uid("1.2.826.0.1.3680043.99.6")]
    assert out.ContextGroupExtensionCreatorUID == d.map_uid("1.2.826.0.1.3680043.99.7")
    assert d.map_uid("1.2.840.10008.1.2.1") == "1.2.840.10008.1.2.1"


def test_retain_uids_keeps_every_uid():
    d = Deidentifier(Profile(retain_uids=True), KEY)
    ds = _structure_set_referencing(_ct("1.2.826.0.1.3680043.99.1.2.5"))
    out = _deidentify(d, ds)
    assert out.SOPInstanceUID == ds.SOPInstanceUID and out.StudyInstanceUID == STUDY
    series_ref = out.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series_ref.ContourImageSequence[0].ReferencedSOPInstanceUID == "1.2.826.0.1.3680043.99.1.2.5"
    assert d.map_uid(STUDY) == STUDY


def test_already_deidentified_objects_keep_their_uids():
    d = Deidentifier(Profile(), KEY)
    ds = _ct("1.2.826.0.1.3680043.99.1.2.6")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "EARLIER TOOL"
    plan = d.plan(ds)
    out = d.apply(ds, plan)
    assert plan.already_deidentified and plan.keep_uids
    assert out.SOPInstanceUID == plan.new_sop_instance_uid == "1.2.826.0.1.3680043.99.1.2.6"
    assert out.StudyInstanceUID == STUDY and out.FrameOfReferenceUID == FRAME_OF_REFERENCE
    # ... and the profile still runs.
    assert out.PatientName == ""
    assert out.InstitutionName == "ANONYMIZED"


def test_yes_without_a_method_is_not_already_deidentified():
    d = Deidentifier(Profile(), KEY)
    ds = _ct("1.2.826.0.1.3680043.99.1.2.7")
    ds.PatientIdentityRemoved = "YES"
    plan = d.plan(ds)
    assert not plan.already_deidentified
    assert plan.new_sop_instance_uid != ds.SOPInstanceUID
