"""The bundled sample data set `make run` serves: two fictional patients, four studies.

Built from pydicom's own test files, re-identified with distinctive fictional identities so
that anonymization is plain to see (and testable: search a response's bytes for them). Every
new UID comes from a fixed string, so two builds give the same bytes. Each file keeps the
transfer syntax of its source (deflated stays deflated). References between the objects
(RT dose -> plan -> structure set -> CT, the SR's evidence) point at the sample's own UIDs.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

README_NAME = "README.txt"
_UID_NAMESPACE = "wadows sample data set v1"
_PARTIAL_SUFFIX = ".wadows-partial"

# UI attributes that name instances, series, studies or frames of reference: all of them get
# sample UIDs, so no source file's UID survives anywhere in the sample.
_IDENTITY_UID_KEYWORDS = frozenset({
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "ReferencedSOPInstanceUID",
    "FrameOfReferenceUID", "ReferencedFrameOfReferenceUID", "RelatedFrameOfReferenceUID",
    "UID", "ReferencedSOPInstanceUIDInFile", "IrradiationEventUID",
    "SynchronizationFrameOfReferenceUID", "DimensionOrganizationUID", "ConcatenationUID",
})
# Top-level dates moved to the study date, so every study reads as one visit.
_VISIT_DATE_KEYWORDS = ("SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate")


@dataclass(frozen=True)
class Patient:
    key: str
    name: str
    patient_id: str
    issuer: str
    birth_date: str
    sex: str
    address: str
    telephone: str
    other_id: str
    other_id_issuer: str


@dataclass(frozen=True)
class Study:
    key: str
    patient: Patient
    date: str
    time: str
    accession: str
    study_id: str
    description: str
    referring_physician: str
    institution: str
    institution_address: str


@dataclass(frozen=True)
class Series:
    key: str
    study: Study
    number: int
    modality: str
    description: str
    station: str
    device_serial: str
    operator: str
    performing_physician: str


@dataclass(frozen=True)
class Instance:
    series: Series
    number: int
    source: str  # a pydicom test file name
    # Reference UIDs inside the source -> the instance/study/series key they must point at.
    references: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.series.key}/{self.number:02d}"

    @property
    def relative_path(self) -> str:
        return f"{self.key}.dcm"


VANDERMEER = Patient(
    key="vandermeer",
    name="Vandermeer^Eleanor^Mae",
    patient_id="WDX-40127-EV",
    issuer="Lindqvist Memorial Hospital",
    birth_date="19580314",
    sex="F",
    address="17 Quarrington Lane, Hollowmere FX9 3QT",
    telephone="+44 1632 960142",
    other_id="OPX-7781-EVM",
    other_id_issuer="Brackenfield Clinic",
)
QUILLFEATHER = Patient(
    key="quillfeather",
    name="Quillfeather^Bartholomew^Ignatius",
    patient_id="WDX-88213-BQ",
    issuer="Harrowgate Vale Imaging",
    birth_date="19410927",
    sex="M",
    address="4 Wrenshaw Court, Pellingbrook PB2 8ZZ",
    telephone="+44 1632 960377",
    other_id="OPX-1193-BIQ",
    other_id_issuer="Pellingbrook Family Practice",
)
PATIENTS = (VANDERMEER, QUILLFEATHER)

_LINDQVIST = ("Lindqvist Memorial Hospital", "1 Ostrander Way, Hollowmere FX9 1AA")
_HARROWGATE = ("Harrowgate Vale Imaging", "22 Tamsworth Row, Pellingbrook PB1 4XY")

CT_RT_STUDY = Study(
    "vandermeer/ct-rt-thorax", VANDERMEER, "20230314", "091522", "ACC7730418", "CT4471",
    "CT THORAX RT PLANNING", "Okonkwo-Brandt^Cassius^^Dr", *_LINDQVIST,
)
MR_STUDY = Study(
    "vandermeer/mr-brain", VANDERMEER, "20230402", "143005", "ACC7731950", "MR2208",
    "MR BRAIN WITH AND WITHOUT CONTRAST", "Okonkwo-Brandt^Cassius^^Dr", *_LINDQVIST,
)
US_STUDY = Study(
    "quillfeather/us-abdomen", QUILLFEATHER, "20240119", "102747", "HVI0093316", "US0517",
    "US ABDOMEN LIVER", "Marchetti-Vos^Lucinda^^Dr", *_HARROWGATE,
)
SC_STUDY = Study(
    "quillfeather/outside-images", QUILLFEATHER, "20240122", "160310", "HVI0093402", "OT0021",
    "OUTSIDE IMAGES IMPORT", "Marchetti-Vos^Lucinda^^Dr", *_HARROWGATE,
)
STUDIES = (CT_RT_STUDY, MR_STUDY, US_STUDY, SC_STUDY)


def _series(study: Study, number: int, modality: str, description: str, station: str, serial: str,
            operator: str, performer: str, name: str) -> Series:
    return Series(f"{study.key}/{number}-{name}", study, number, modality, description, station, serial,
                  operator, performer)


_CT = _series(CT_RT_STUDY, 1, "CT", "THORAX 5MM PLANNING", "LMHCTORION01", "SN-7F3Q-22981",
              "Pemberton-Fisk^Rowena", "Thorsdottir^Ingrid^^Dr", "ct")
_RTSTRUCT = _series(CT_RT_STUDY, 2, "RTSTRUCT", "PLANNING STRUCTURES", "LMHTPSLUMEN2", "SN-TPS-40552",
                    "Pemberton-Fisk^Rowena", "Thorsdottir^Ingrid^^Dr", "rtstruct")
_RTPLAN = _series(CT_RT_STUDY, 3, "RTPLAN", "LUNG SBRT PLAN", "LMHTPSLUMEN2", "SN-TPS-40552",
                  "Pemberton-Fisk^Rowena", "Thorsdottir^Ingrid^^Dr", "rtplan")
_RTDOSE = _series(CT_RT_STUDY, 4, "RTDOSE", "PLAN DOSE 15 FRAMES", "LMHTPSLUMEN2", "SN-TPS-40552",
                  "Pemberton-Fisk^Rowena", "Thorsdottir^Ingrid^^Dr", "rtdose")
_MR_T1 = _series(MR_STUDY, 1, "MR", "T1 AXIAL FIVE TRANSFER SYNTAXES", "LMHMRVESPER3", "SN-MR-118034",
                 "Abernathy-Kwan^Dashiell", "Ravensworth^Ottoline^^Dr", "t1")
_MR_OVERLAY = _series(MR_STUDY, 2, "MR", "T2 WITH OVERLAY", "LMHMRVESPER3", "SN-MR-118034",
                      "Abernathy-Kwan^Dashiell", "Ravensworth^Ottoline^^Dr", "overlay")
_MR_REPORT = _series(MR_STUDY, 3, "SR", "RADIOLOGY REPORT", "LMHREPORTSRV", "SN-RIS-55120",
                     "Abernathy-Kwan^Dashiell", "Ravensworth^Ottoline^^Dr", "report")
_US_CINE = _series(US_STUDY, 1, "US", "LIVER CINE 30 FRAMES", "HVIUSAURORA7", "SN-US-730661",
                   "Fairweather-Olsen^Tobias", "Marchetti-Vos^Lucinda^^Dr", "cine")
_SC_PHOTO = _series(SC_STUDY, 1, "OT", "SCANNED PHOTO JPEG", "HVISCANDESK1", "SN-SC-902174",
                    "Fairweather-Olsen^Tobias", "Marchetti-Vos^Lucinda^^Dr", "photo")
_SC_DEFLATED = _series(SC_STUDY, 2, "OT", "SCANNED FORM DEFLATED", "HVISCANDESK1", "SN-SC-902174",
                       "Fairweather-Olsen^Tobias", "Marchetti-Vos^Lucinda^^Dr", "form")

_CT_IMAGE = Instance(_CT, 1, "CT_small.dcm")
_MR_FIRST = Instance(_MR_T1, 1, "MR_small.dcm")
_STRUCTURE_SET = Instance(_RTSTRUCT, 1, "rtstruct.dcm", {
    "1.2.826.0.1.3680043.8.498.2010020400001.2.1": "study:" + CT_RT_STUDY.key,  # referenced study
    "1.2.826.0.1.3680043.8.498.2010020400001.2.1.1": "series:" + _CT.key,  # referenced CT series
    "1.2.826.0.1.3680043.8.498.2010020400001.2": "for:" + CT_RT_STUDY.key,
})
_PLAN = Instance(_RTPLAN, 1, "rtplan.dcm", {
    "1.2.333.444.55.6.7777.88888": _STRUCTURE_SET.key,
})
INSTANCES: tuple[Instance, ...] = (
    _CT_IMAGE,
    _STRUCTURE_SET,
    _PLAN,
    Instance(_RTDOSE, 1, "rtdose.dcm", {"1.2.123.456.78.9.0123.4567.89012345678901": _PLAN.key}),
    _MR_FIRST,
    Instance(_MR_T1, 2, "MR_small_implicit.dcm"),
    Instance(_MR_T1, 3, "MR_small_RLE.dcm"),
    Instance(_MR_T1, 4, "MR_small_jpeg_ls_lossless.dcm"),
    Instance(_MR_T1, 5, "MR_small_jp2klossless.dcm"),
    Instance(_MR_OVERLAY, 1, "examples_overlay.dcm"),
    Instance(_MR_REPORT, 1, "test-SR.dcm", {
        "1.2.3.4.5.0": _CT_IMAGE.key,  # evidence: a CT image
        "1.2.3.4.0.1": _MR_FIRST.key,  # evidence: an MR image
    }),
    Instance(_US_CINE, 1, "examples_ybr_color.dcm"),
    Instance(_SC_PHOTO, 1, "SC_rgb_jpeg_dcmtk.dcm"),
    Instance(_SC_DEFLATED, 1, "image_dfl.dcm"),
)

# Strings that exist only because the sample put them there: a de-identified response
# containing any of them leaked an identity.
IDENTIFYING_STRINGS: tuple[str, ...] = tuple(sorted({
    *(value for p in PATIENTS for value in (p.name, p.patient_id, p.address, p.other_id, p.birth_date)),
    *(value for s in STUDIES for value in (s.accession, s.referring_physician, s.institution, s.institution_address)),
    *(value for i in INSTANCES for value in (i.series.station, i.series.device_serial, i.series.operator,
                                             i.series.performing_physician)),
}))


def sample_uid(key: str) -> str:
    """The sample's UID for a key such as "study:<study key>" or an instance key; same on every build."""
    return str(generate_uid(entropy_srcs=[_UID_NAMESPACE, key]))


def build_sample(out_dir: Path) -> list[Path]:
    """Write the sample data set into out_dir (missing or differing files only); returns the DICOM file paths."""
    out_dir = Path(out_dir)
    _remove_partial_writes(out_dir)
    paths: list[Path] = []
    syntaxes: dict[str, pydicom.uid.UID] = {}
    for instance in INSTANCES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the test files' own quirks (a UID with a leading zero)
            ds = _sample_dataset(instance)
        syntaxes[instance.key] = ds.file_meta.TransferSyntaxUID
        path = out_dir / instance.relative_path
        _write_if_different(path, _encode(ds))
        paths.append(path)
    # Written last: a complete README means the DICOM files before it were complete too.
    _write_if_different(out_dir / README_NAME, _readme(syntaxes).encode("utf-8"))
    return paths


def describe_sample(out_dir: Path) -> list[dict[str, str | int]]:
    """One dict per sample file, read back from out_dir: file, patient, study/series/SOP UIDs, transfer syntax."""
    rows: list[dict[str, str | int]] = []
    for instance in INSTANCES:
        ds = pydicom.dcmread(Path(out_dir) / instance.relative_path, stop_before_pixels=True)
        rows.append({
            "file": instance.relative_path,
            "patient_name": str(ds.PatientName),
            "patient_id": ds.PatientID,
            "study_description": ds.StudyDescription,
            "series_description": ds.SeriesDescription,
            "modality": ds.Modality,
            "study_uid": ds.StudyInstanceUID,
            "series_uid": ds.SeriesInstanceUID,
            "sop_instance_uid": ds.SOPInstanceUID,
            "sop_class_uid": ds.SOPClassUID,
            "transfer_syntax_uid": ds.file_meta.TransferSyntaxUID,
            "number_of_frames": int(ds.get("NumberOfFrames") or 1),
        })
    return rows


# ---- building one file ---------------------------------------------------------------------

def _sample_dataset(instance: Instance) -> Dataset:
    ds = pydicom.dcmread(_source_path(instance.source), force=True)
    uid_map = {
        ds.StudyInstanceUID: sample_uid("study:" + instance.series.study.key),
        ds.SeriesInstanceUID: sample_uid("series:" + instance.series.key),
        ds.SOPInstanceUID: sample_uid(instance.key),
    }
    if "FrameOfReferenceUID" in ds:
        uid_map[ds.FrameOfReferenceUID] = sample_uid("for:" + instance.series.study.key)
    uid_map.update({original: sample_uid(key) for original, key in instance.references.items()})
    _replace_identity_uids(ds, uid_map, instance.key)
    _apply_identity(ds, instance)
    _ensure_file_meta(ds)
    ds.preamble = b"\x00" * 128  # some sources carry a TIFF header there; it would point nowhere now
    return ds


def _source_path(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is not installed")
    return str(path)


def _replace_identity_uids(ds: Dataset, uid_map: dict[str, str], instance_key: str) -> None:
    """Swap every identity UID, however deep; unknown ones get a UID derived from this instance."""
    for element in ds.iterall():
        if element.VR != "UI" or element.keyword not in _IDENTITY_UID_KEYWORDS or not element.value:
            continue
        original = str(element.value)
        if original not in uid_map:
            uid_map[original] = sample_uid(f"{instance_key}/ref/{original}")
        element.value = uid_map[original]


def _apply_identity(ds: Dataset, instance: Instance) -> None:
    series, study = instance.series, instance.series.study
    patient = study.patient
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = f"{_age_in_years(patient.birth_date, study.date):03d}Y"
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = patient.telephone
    other = Dataset()
    other.PatientID = patient.other_id
    other.IssuerOfPatientID = patient.other_id_issuer
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])

    ds.StudyDate, ds.StudyTime = study.date, study.time
    ds.SeriesDate, ds.SeriesTime = study.date, study.time
    for keyword in _VISIT_DATE_KEYWORDS:
        if keyword in ds:
            setattr(ds, keyword, study.date)
    ds.AccessionNumber = study.accession
    ds.StudyID = study.study_id
    ds.StudyDescription = study.description
    ds.ReferringPhysicianName = study.referring_physician
    ds.InstitutionName = study.institution
    ds.InstitutionAddress = study.institution_address

    ds.Modality = series.modality
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description
    ds.StationName = series.station
    ds.DeviceSerialNumber = series.device_serial
    ds.OperatorsName = series.operator
    ds.PerformingPhysicianName = series.performing_physician
    ds.InstanceNumber = instance.number


def _age_in_years(birth: str, on: str) -> int:
    years = int(on[:4]) - int(birth[:4])
    return years - 1 if on[4:] < birth[4:] else years


def _ensure_file_meta(ds: Dataset) -> None:
    meta = ds.get("file_meta") or FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        # Only rtstruct.dcm lacks file meta; it is a raw Implicit VR Little Endian data set.
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    # The encoding follows file meta's transfer syntax, so each file keeps its source's syntax.
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# ---- writing files safely ---------------------------------------------------------------------

def _write_if_different(path: Path, content: bytes) -> None:
    try:
        if path.read_bytes() == content:
            return
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + _PARTIAL_SUFFIX)
    partial.write_bytes(content)
    os.replace(partial, path)  # readers (and the indexer) never see a half-written file


def _remove_partial_writes(out_dir: Path) -> None:
    if out_dir.is_dir():
        for leftover in out_dir.rglob("*" + _PARTIAL_SUFFIX):
            leftover.unlink()


# ---- README ------------------------------------------------------------------------------------

def _readme(syntaxes: dict[str, pydicom.uid.UID]) -> str:
    lines = [
        "wadows sample data set",
        "======================",
        "",
        "Fictional patients built from pydicom's test files by wadows.sample.build_sample.",
        "Every name, ID, address and UID here is invented; none belongs to a real person or study.",
        "This file is not DICOM: the indexer skips it.",
        "",
    ]
    for study in STUDIES:
        patient = study.patient
        lines += [
            f"Patient {patient.name} (ID {patient.patient_id}, born {patient.birth_date}, {patient.sex})",
            f"  Study {study.description}, {study.date}, accession {study.accession}",
            f"  Study Instance UID {sample_uid('study:' + study.key)}",
        ]
        for series in _series_of(study):
            lines.append(f"    Series {series.number} {series.modality} {series.description}")
            lines.append(f"    Series Instance UID {sample_uid('series:' + series.key)}")
            for instance in (i for i in INSTANCES if i.series == series):
                lines.append(f"      {instance.relative_path}  {syntaxes[instance.key].name}")
                lines.append(f"        SOP Instance UID {sample_uid(instance.key)}")
        lines.append("")
    return "\n".join(lines)


def _series_of(study: Study) -> list[Series]:
    seen: list[Series] = []
    for instance in INSTANCES:
        if instance.series.study == study and instance.series not in seen:
            seen.append(instance.series)
    return seen

