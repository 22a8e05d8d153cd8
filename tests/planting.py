"""Identifying values planted in every kind of place, in copies of pydicom's own test files.

Every planted string is distinctive: finding any of them (or an original UID) in a response's raw bytes or in
the server log is a leak.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

NAME = "Zyxplant^Quorra^Mae"
UTF8_NAME = "Ølstrüm^Zoë^Þórunn"
PLANTED = [
    "Zyxplant", "Quorra", "Ølstrüm", "Þórunn", "PLANTID-77123", "PLANTOTHER-5521", "Plantissuer",
    "Plantation Row", "Leakford", "19470312", "20110817", "093015", "ACCPLANT4471", "SIDPLNT9",
    "Plantington", "Leak Lane", "PLNTSTATION7", "PLNTSERIAL9931", "Refplant", "Opplant", "Perfplant",
    "PRIVPLANTVAL", "PLANTCREATOR", "Privseqplant", "Deepplant", "OVERLAYPLANT", "SRTEXTPLANT", "Srplant",
    "+44 1632 960999", "PLANTMRN", "Plantcomment",
]
REFERENCED_UID = "1.2.826.0.1.3680043.8.498.4242424242"

SOURCES = {
    "ct": "CT_small.dcm",
    "ct2": "CT_small.dcm",
    "mr-rle": "MR_small_RLE.dcm",
    "mr-j2k": "MR_small_jp2klossless.dcm",
    "mr-jls": "MR_small_jpeg_ls_lossless.dcm",
    "nm-j2k": "JPEG2000.dcm",
    "overlay": "examples_overlay.dcm",
    "sr": "test-SR.dcm",
    "sr2": "reportsi.dcm",
    "rtplan": "rtplan.dcm",
    "ecg": "waveform_ecg.dcm",
    "deflated": "image_dfl.dcm",
    "seg": "liver_1frame.dcm",
    "sc-jpeg": "SC_rgb_jpeg_dcmtk.dcm",
}


def uid(key: str) -> str:
    return generate_uid(entropy_srcs=["wadows planted", key])


def planted_dataset(key: str) -> Dataset:
    ds = pydicom.dcmread(get_testdata_file(SOURCES[key]))
    same_study = key in ("ct", "ct2")
    ds.StudyInstanceUID = uid("study ct" if same_study else f"study {key}")
    ds.SeriesInstanceUID = uid("series ct" if same_study else f"series {key}")
    ds.SOPInstanceUID = uid(f"sop {key}")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "FrameOfReferenceUID" in ds or same_study:
        ds.FrameOfReferenceUID = uid("frame ct" if same_study else f"frame {key}")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = NAME if key != "ct2" else UTF8_NAME
    ds.PatientID = "PLANTID-77123"
    ds.IssuerOfPatientID = "Plantissuer Clinic"
    ds.PatientBirthDate = "19470312"
    ds.PatientAddress = "42 Plantation Row, Leakford"
    ds.PatientTelephoneNumbers = "+44 1632 960999"
    ds.OtherPatientIDsSequence = Sequence([_item(PatientID="PLANTOTHER-5521", IssuerOfPatientID="Plantissuer")])
    ds.MedicalRecordLocator = "PLANTMRN"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20110817"
    ds.StudyTime = ds.SeriesTime = "093015"
    ds.AcquisitionDateTime = "20110817093015"
    ds.AccessionNumber = "ACCPLANT4471"
    ds.StudyID = "SIDPLNT9"
    ds.InstitutionName = "Plantington General Infirmary"
    ds.InstitutionAddress = "1 Leak Lane, Plantington"
    ds.StationName = "PLNTSTATION7"
    ds.DeviceSerialNumber = "PLNTSERIAL9931"
    ds.ReferringPhysicianName = "Refplant^Doctor"
    ds.OperatorsName = "Opplant^Tech"
    ds.PerformingPhysicianName = "Perfplant^Dr"
    ds.StudyDescription = "Follow-up for Zyxplant after a fall"
    ds.SeriesDescription = "ZYXPLANT SERIES"
    ds.ImageComments = "Plantcomment: patient Zyxplant complained"
    ds.AdditionalPatientHistory = "Zyxplant history"
    # three levels deep: a name inside a code item inside a request item
    ds.RequestAttributesSequence = Sequence([_item(
        RequestedProcedureID="SIDPLNT9",
        ScheduledProtocolCodeSequence=Sequence([_item(
            CodeValue="P1", CodingSchemeDesignator="99PLANT", CodeMeaning="Protocol",
            ProtocolContextSequence=Sequence([_item(
                ValueType="PNAME", PersonName="Deepplant^Nested",
                ConceptNameCodeSequence=Sequence([_item(CodeValue="121008", CodingSchemeDesignator="DCM",
                                                        CodeMeaning="Person Observer Name")]))]))]))])
    ds.ReferencedImageSequence = Sequence([_item(ReferencedSOPClassUID=ds.SOPClassUID,
                                                 ReferencedSOPInstanceUID=REFERENCED_UID)])
    # a private block with a private sequence
    block = ds.private_block(0x0011, "PLANTCREATOR", create=True)
    block.add_new(0x01, "LO", "PRIVPLANTVAL")
    inner = _item()
    inner.PatientName = "Privseqplant^Name"
    block.add_new(0x02, "SQ", Sequence([inner]))
    if "PixelData" in ds and int(ds.get("NumberOfFrames", 1) or 1) == 1 and ds.get("SamplesPerPixel", 1) == 1:
        rows, cols = int(ds.Rows), int(ds.Columns)
        ds.add_new(0x60000010, "US", rows)
        ds.add_new(0x60000011, "US", cols)
        ds.add_new(0x60000022, "LO", "OVERLAYPLANT")
        ds.add_new(0x60000040, "CS", "G")
        ds.add_new(0x60000050, "SS", [1, 1])
        ds.add_new(0x60000100, "US", 1)
        ds.add_new(0x60000102, "US", 0)
        ds.add_new(0x60003000, "OW", np.packbits(np.ones(rows * cols, np.uint8), bitorder="little").tobytes())
    if ds.get("Modality") == "SR":
        _plant_sr(ds.ContentSequence)
    if key == "deflated":
        ds.BurnedInAnnotation = "NO"  # a scanned form (OT) is suspect unless its header says otherwise
    return ds


def _plant_sr(items) -> None:
    for item in items:
        if item.get("ValueType") == "TEXT":
            item.TextValue = "SRTEXTPLANT finding in Zyxplant"
        elif item.get("ValueType") == "PNAME":
            item.PersonName = "Srplant^Person"
        if "ContentSequence" in item:
            _plant_sr(item.ContentSequence)


def _item(**values) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def write_planted_store(folder: Path) -> dict[str, dict]:
    """Write every planted file; returns per key the path and the original UIDs that must not leak."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for key in SOURCES:
        ds = planted_dataset(key)
        path = folder / f"{key}.dcm"
        ds.save_as(path, enforce_file_format=True)
        uids = {ds.StudyInstanceUID, ds.SeriesInstanceUID, REFERENCED_UID}
        uids |= {str(v) for v in [ds.get("FrameOfReferenceUID")] if v}
        out[key] = {"path": path, "study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID,
                    "sop_instance_uid": ds.SOPInstanceUID, "uids": uids,
                    "transfer_syntax_uid": ds.file_meta.TransferSyntaxUID}
    return out


def already_deidentified(path: Path) -> dict:
    """A CT that an earlier tool de-identified, with a planted name the profile must still remove."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study prior"), uid("series prior")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("sop prior")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Prior Tool 1.0"
    ds.PatientName = NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return {"path": path, "study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID,
            "sop_instance_uid": ds.SOPInstanceUID}


def flagged(path: Path, keyword: str) -> dict:
    """A CT whose header says BurnedInAnnotation or RecognizableVisualFeatures YES (no pixel rule matches it)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid(f"study {keyword}"), uid(f"series {keyword}")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid(f"sop {keyword}")
    setattr(ds, keyword, "YES")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return {"path": path, "study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID,
            "sop_instance_uid": ds.SOPInstanceUID}
