"""Nothing planted that identifies a patient survives: searched in the serialized output bytes."""

from __future__ import annotations

import io
import re

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from wadows.deid import Deidentifier, Profile

KEY = b"leak-test-key"

# Every planted value: names, IDs, addresses, dates, institution and device values, free text.
PLANTED = {
    "PatientName": "PLANTNAME^JOHN^Q",
    "OtherPatientIDs": "PLANTOPID1",
    "PatientAddress": "PLANTADDR 12 Elm Street",
    "PatientBirthDate": "19630521",
    "PatientBirthName": "PLANTBIRTHNAME",
    "PatientMotherBirthName": "PLANTMOTHER",
    "PatientTelephoneNumbers": "PLANTPHONE",
    "MilitaryRank": "PLANTRANK",
    "StudyDate": "20190304",
    "SeriesDate": "20190305",
    "ContentDate": "20190306",
    "AcquisitionDateTime": "20190307101112",
    "StudyTime": "101112",
    "AccessionNumber": "PLANTACC77",
    "StudyID": "PLANTSTID",
    "InstitutionName": "PLANTINST Hospital",
    "InstitutionAddress": "PLANTINSTADDR Road 9",
    "InstitutionalDepartmentName": "PLANTDEPT",
    "StationName": "PLANTSTATION",
    "DeviceSerialNumber": "PLANTSERIAL",
    "ReferringPhysicianName": "PLANTREFDOC^ANN",
    "PerformingPhysicianName": "PLANTPERFDOC",
    "OperatorsName": "PLANTOPERATOR",
    "StudyDescription": "PLANTDESC study",
    "SeriesDescription": "PLANTSERIESDESC",
    "ProtocolName": "PLANTPROTOCOL",
    "ImageComments": "PLANTCOMMENT",
    "AdditionalPatientHistory": "PLANTHISTORY",
    "RequestingPhysician": "PLANTREQDOC",
    "PatientComments": "PLANTPATCOMMENT",
    "EvaluatorName": "PLANTEVALUATOR",            # PN not listed in Table E.1-1: the safety net
    "SecondaryReviewerName": "PLANTREVIEWER",      # PN not listed in Table E.1-1: the safety net
}
DEEP_NAME = "PLANTDEEP^NAME"
SR_TEXT = "PLANTSRTEXT findings for the patient"
SR_PERSON = "PLANTSRPERSON^X"
PRIVATE_TEXT = "PLANTPRIVATE"
PRIVATE_CREATOR = "PLANTCREATOR"
PRIVATE_SEQ_NAME = "PLANTPRIVSEQ^NAME"
OVERLAY_TEXT = "PLANTOVERLAY"
OTHER_ID_IN_SEQ = "PLANTOPID2"
REFERENCED_UID = "1.2.826.0.1.3680043.99.424242.1"
UTF8_NAME = "Müller^Jürgen"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def plant(ds: Dataset) -> Dataset:
    """Plant identifying values in every kind of place of ``ds`` (in place) and return it."""
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)
    ds.OtherPatientIDsSequence = Sequence([Dataset()])
    ds.OtherPatientIDsSequence[0].PatientID = OTHER_ID_IN_SEQ
    # A name three sequences deep, in sequences Table E.1-1 does not list (kept, cleaned inside).
    level3 = Dataset()
    level3.PatientName = DEEP_NAME
    level3.EvaluatorName = DEEP_NAME
    level2 = Dataset()
    level2.AnatomicRegionModifierSequence = Sequence([level3])
    level1 = _code("T-D3000", "SRT", "Chest")
    level1.PrimaryAnatomicStructureSequence = Sequence([level2])
    ds.AnatomicRegionSequence = Sequence([level1])
    # References: UIDs inside reference sequences must be replaced.
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = REFERENCED_UID
    ds.ReferencedImageSequence = Sequence([ref])
    # Private blocks, a private sequence with a name inside.
    ds.private_block(0x0011, PRIVATE_CREATOR, create=True).add_new(0x01, "LO", PRIVATE_TEXT)
    inner = Dataset()
    inner.PatientName = PRIVATE_SEQ_NAME
    ds.private_block(0x0013, PRIVATE_CREATOR + "2", create=True).add_new(0x01, "SQ", Sequence([inner]))
    # An overlay plane with a description, a label and a bitmap spelling the marker.
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60000022, "LO", OVERLAY_TEXT)
    ds.add_new(0x60001500, "LO", OVERLAY_TEXT)
    ds.add_new(0x60003000, "OW", (OVERLAY_TEXT + "OVERLAYDATA").encode()[:8].ljust(8, b"\0"))
    # SR content: free text and a person name in content items.
    text_item = Dataset()
    text_item.RelationshipType, text_item.ValueType = "CONTAINS", "TEXT"
    text_item.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    text_item.TextValue = SR_TEXT
    person_item = Dataset()
    person_item.RelationshipType, person_item.ValueType = "HAS OBS CONTEXT", "PNAME"
    person_item.ConceptNameCodeSequence = Sequence([_code("121008", "DCM", "Person Observer Name")])
    person_item.PersonName = SR_PERSON
    ds.ContentSequence = Sequence([text_item, person_item])
    return ds


def serialize(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def leaked(data: bytes, values) -> list[str]:
    """The values found in ``data`` as ASCII, UTF-8 or UTF-16-LE text. A UID counts only as a whole
    value (not as the prefix of another UID that merely shares its root)."""
    found = []
    for value in values:
        for encoding in ("ascii", "utf-8", "utf-16-le"):
            try:
                needle = value.encode(encoding)
            except UnicodeEncodeError:
                continue
            if re.fullmatch(r"[0-9.]+", value) and "." in value:
                hit = re.search(rb"(?<![0-9.])" + re.escape(needle) + rb"(?![0-9.])", data) is not None
            else:
                hit = needle in data
            if hit:
                found.append(f"{value!r} ({encoding})")
                break
    return found


def _needles(original_uids: set[str]) -> list[str]:
    parts = []
    for value in PLANTED.values():
        parts.extend(p for p in value.replace("^", " ").split()
                     if p.startswith("PLANT") or (p.isdigit() and len(p) >= 6))
    parts += ["PLANTDEEP", "PLANTSRTEXT", "PLANTSRPERSON", PRIVATE_TEXT, PRIVATE_CREATOR, "PLANTPRIVSEQ",
              OVERLAY_TEXT, OTHER_ID_IN_SEQ, REFERENCED_UID, "Müller", "Jürgen"]
    return parts + sorted(original_uids)


def _instance_uids(ds: Dataset) -> set[str]:
    """Every non-well-known UID in the dataset, file meta included (those that must be remapped),
    except values that also name a class (an Instance Creator UID equal to the Implementation Class
    UID names software, and the class UID rightly stays)."""
    found, classes = set(), set()

    def visit(dataset: Dataset) -> None:
        for elem in dataset:
            if elem.VR == "SQ":
                for item in elem.value:
                    visit(item)
            elif elem.VR == "UI" and elem.value and not elem.tag.is_private:
                values = {str(v) for v in (elem.value if isinstance(elem.value, list) else [elem.value])}
                if "ClassUID" in elem.keyword or "TransferSyntax" in elem.keyword or "CodingScheme" in elem.keyword:
                    classes.update(values)
                else:
                    found.update(v for v in values if not v.startswith("1.2.840.10008."))

    visit(ds)
    if hasattr(ds, "file_meta"):
        visit(ds.file_meta)
    return found - classes


FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "test-SR.dcm", "waveform_ecg.dcm",
         "examples_overlay.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "nested_priv_SQ.dcm"]


@pytest.mark.parametrize("name", FILES)
def test_planted_values_do_not_survive(name):
    ds = pydicom.dcmread(get_testdata_file(name), force=True)
    if "SOPInstanceUID" not in ds:  # the private-sequence test files are bare datasets
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.77.1"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    plant(ds)
    # Round-trip through bytes so the planted values are read back the way a server reads a file.
    ds = pydicom.dcmread(io.BytesIO(serialize(ds)))
    original_uids = _instance_uids(ds)
    deidentifier = Deidentifier(Profile(), KEY)
    out = deidentifier.apply(ds, deidentifier.plan(ds))
    data = serialize(out)
    assert leaked(data, _needles(original_uids)) == []
    # The planted things were there to be found in the input (the search itself works).
    assert set(leaked(serialize(ds), ["PLANTDEEP", PRIVATE_TEXT, SR_PERSON, REFERENCED_UID])) != set()


def test_utf8_names_with_a_specific_character_set_do_not_survive():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = UTF8_NAME
    ds.OperatorsName = UTF8_NAME
    ds.ImageComments = "Befund für Müller"
    ds = pydicom.dcmread(io.BytesIO(serialize(ds)))
    assert leaked(serialize(ds), ["Müller"])  # present before
    deidentifier = Deidentifier(Profile(), KEY)
    data = serialize(deidentifier.apply(ds, deidentifier.plan(ds)))
    assert leaked(data, ["Müller", "Jürgen", "Befund"]) == []


def test_sr_tree_keeps_its_structure_with_text_and_names_dummied():
    ds = plant(pydicom.dcmread(get_testdata_file("test-SR.dcm")))
    deidentifier = Deidentifier(Profile(), KEY)
    out = deidentifier.apply(ds, deidentifier.plan(ds))
    items = out.ContentSequence
    assert [i.ValueType for i in items] == ["TEXT", "PNAME"]
    assert items[0].TextValue == "ANONYMIZED"
    assert str(items[1].PersonName) == "ANONYMIZED"
    assert items[0].ConceptNameCodeSequence[0].CodeMeaning == "Finding"  # public code kept


def test_input_is_not_modified():
    ds = plant(pydicom.dcmread(get_testdata_file("CT_small.dcm")))
    ds = pydicom.dcmread(io.BytesIO(serialize(ds)))
    before = serialize(ds)
    deidentifier = Deidentifier(Profile(), KEY)
    deidentifier.apply(ds, deidentifier.plan(ds))
    assert serialize(ds) == before
    assert ds.PatientName == PLANTED["PatientName"]


def test_a_name_under_a_harmless_vr_is_still_a_name():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.add_new(0x00142006, "CS", "PLANTCSNAME")   # Evaluator Name (PN, not in Table E.1-1) encoded as CS
    deidentifier = Deidentifier(Profile(), KEY)
    out = deidentifier.apply(ds, deidentifier.plan(ds))
    assert 0x00142006 not in out


def test_identity_codes_are_dummied_whatever_their_scheme_while_sr_concepts_stay():
    ds = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    ds.InstitutionName = "PLANTINST"
    ds.InstitutionCodeSequence = Sequence([_code("PLANTINSTCODE", "DCM", "PLANTINSTMEANING")])
    observer = Dataset()
    observer.VerifyingObserverName = "PLANTVERIFIER"
    observer.VerifyingObserverIdentificationCodeSequence = Sequence([_code("PLANTVOCODE", "99X", "PLANTVO")])
    observer.VerifyingOrganization = "PLANTORG"
    observer.VerificationDateTime = "20200101101010"
    ds.VerifyingObserverSequence = Sequence([observer])
    text_item = Dataset()
    text_item.RelationshipType, text_item.ValueType, text_item.TextValue = "CONTAINS", "TEXT", "PLANTTEXT"
    text_item.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    ds.ContentSequence = Sequence([text_item])
    deidentifier = Deidentifier(Profile(), KEY)
    out = deidentifier.apply(ds, deidentifier.plan(ds))
    assert leaked(serialize(out), ["PLANTINST", "PLANTVERIFIER", "PLANTVO", "PLANTORG", "PLANTTEXT"]) == []
    assert out.InstitutionCodeSequence[0].CodeValue == "ANONYMIZED"
    assert out.ContentSequence[0].ConceptNameCodeSequence[0].CodeValue == "121071"
