"""The bundled sample data set: complete, consistent, deterministic, and indexable."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from wadows.sample import IDENTIFYING_STRINGS, INSTANCES, PATIENTS, README_NAME, build_sample, describe_sample
from wadows.store.index import FolderIndex


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    build_sample(out)
    return out


def datasets(out: Path) -> dict[str, pydicom.Dataset]:
    return {i.relative_path: pydicom.dcmread(out / i.relative_path) for i in INSTANCES}


def all_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_build_writes_every_planned_file_and_a_readme(tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    assert paths == [tmp_path / i.relative_path for i in INSTANCES]
    assert all(p.is_file() for p in paths)
    files = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert files == set(paths) | {tmp_path / README_NAME}
    readme = (tmp_path / README_NAME).read_text()
    for row in describe_sample(tmp_path):
        assert row["study_uid"] in readme and row["sop_instance_uid"] in readme and row["file"] in readme


def test_every_file_parses_and_its_pixels_decode(built: Path) -> None:
    for rel, ds in datasets(built).items():
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID, rel
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID, rel
        assert ds.preamble == b"\0" * 128, rel
        if "PixelData" in ds:
            frames = int(ds.get("NumberOfFrames") or 1)
            assert ds.pixel_array.shape[0 if frames > 1 else -1] > 0, rel


def test_uids_are_consistent_within_studies_and_series(built: Path) -> None:
    study_uids: dict[str, set[str]] = defaultdict(set)
    series_uids: dict[str, set[str]] = defaultdict(set)
    series_study: dict[str, set[str]] = defaultdict(set)
    patient_of_study: dict[str, set[tuple[str, str]]] = defaultdict(set)
    sop_uids = []
    for instance, ds in zip(INSTANCES, datasets(built).values()):
        study_uids[instance.series.study.key].add(ds.StudyInstanceUID)
        series_uids[instance.series.key].add(ds.SeriesInstanceUID)
        series_study[ds.SeriesInstanceUID].add(ds.StudyInstanceUID)
        patient_of_study[ds.StudyInstanceUID].add((str(ds.PatientName), ds.PatientID))
        sop_uids.append(ds.SOPInstanceUID)
    assert all(len(uids) == 1 for uids in study_uids.values())
    assert all(len(uids) == 1 for uids in series_uids.values())
    assert all(len(studies) == 1 for studies in series_study.values())
    assert all(len(patients) == 1 for patients in patient_of_study.values())
    distinct_studies = {uid for uids in study_uids.values() for uid in uids}
    distinct_series = {uid for uids in series_uids.values() for uid in uids}
    assert len(distinct_studies) == len(study_uids) >= 3
    assert len(distinct_series) == len(series_uids)
    assert len(set(sop_uids)) == len(sop_uids)
    assert {p for ps in patient_of_study.values() for p in ps} == {(p.name, p.patient_id) for p in PATIENTS}


def test_the_promised_transfer_syntaxes_modalities_and_features_are_there(built: Path) -> None:
    found = datasets(built).values()
    syntaxes = {ds.file_meta.TransferSyntaxUID for ds in found}
    assert {ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, JPEGLSLossless, JPEG2000Lossless,
            JPEGBaseline8Bit, DeflatedExplicitVRLittleEndian} <= syntaxes
    assert {"CT", "MR", "SR", "RTSTRUCT", "RTPLAN", "RTDOSE", "US", "OT"} <= {ds.Modality for ds in found}
    assert any(int(ds.get("NumberOfFrames") or 1) > 1 for ds in found)
    assert any(0x60003000 in ds for ds in found)  # overlay data
    mr_series = [ds for ds in found if ds.Modality == "MR" and ds.SeriesNumber == 1]
    assert len({ds.file_meta.TransferSyntaxUID for ds in mr_series}) == 5
    assert len({ds.SeriesInstanceUID for ds in mr_series}) == 1


def test_each_file_keeps_its_source_transfer_syntax(built: Path) -> None:
    for instance, ds in zip(INSTANCES, datasets(built).values()):
        source = pydicom.dcmread(get_testdata_file(instance.source, download=False), force=True)
        expected = source.file_meta.get("TransferSyntaxUID", ImplicitVRLittleEndian)  # rtstruct has no meta
        assert ds.file_meta.TransferSyntaxUID == expected, instance.source


def test_deflated_file_is_deflated_on_disk(built: Path) -> None:
    [instance] = [i for i in INSTANCES if i.source == "image_dfl.dcm"]
    raw = (built / instance.relative_path).read_bytes()
    ds = pydicom.dcmread(built / instance.relative_path)
    assert str(ds.PatientName).encode() not in raw  # the data set is compressed, not plain
    assert str(ds.PatientName) == instance.series.study.patient.name


def test_references_point_inside_the_sample(built: Path) -> None:
    by_modality = {ds.Modality: ds for ds in datasets(built).values()}
    plan, dose, struct = by_modality["RTPLAN"], by_modality["RTDOSE"], by_modality["RTSTRUCT"]
    ct, sr = by_modality["CT"], by_modality["SR"]
    assert plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == struct.SOPInstanceUID
    assert dose.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == plan.SOPInstanceUID
    assert dose.FrameOfReferenceUID == ct.FrameOfReferenceUID
    frame = struct.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert frame.RTReferencedStudySequence[0].ReferencedSOPInstanceUID == ct.StudyInstanceUID
    assert frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID == ct.SeriesInstanceUID
    sr_refs = {e.value for e in sr.iterall() if e.keyword == "ReferencedSOPInstanceUID"}
    assert ct.SOPInstanceUID in sr_refs


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # a source file's own UID has a leading zero
def test_no_source_uid_survives_and_identities_are_fictional(built: Path) -> None:
    identity_keywords = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "ReferencedSOPInstanceUID",
                         "FrameOfReferenceUID", "UID"}
    for instance, ds in zip(INSTANCES, datasets(built).values()):
        source_path = get_testdata_file(instance.source, download=False)
        source = pydicom.dcmread(source_path, force=True)
        old = {str(e.value) for e in source.iterall() if e.keyword in identity_keywords and e.value}
        new = {str(e.value) for e in ds.iterall() if e.VR == "UI"}
        assert not old & new, instance.source
        # The fictional strings exist only in the sample, so finding one in a response means a leak.
        source_bytes = Path(source_path).read_bytes()
        assert not [s for s in IDENTIFYING_STRINGS if s.encode() in source_bytes], instance.source
    ct = (built / INSTANCES[0].relative_path).read_bytes()
    assert b"Vandermeer^Eleanor^Mae" in ct and b"WDX-40127-EV" in ct


def test_second_build_writes_nothing(tmp_path: Path) -> None:
    build_sample(tmp_path)
    past = 1_000_000_000 * 1_600_000_000
    for path in tmp_path.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(past, past))
    build_sample(tmp_path)
    assert all(p.stat().st_mtime_ns == past for p in tmp_path.rglob("*") if p.is_file())


def test_partial_directory_is_rebuilt(tmp_path: Path) -> None:
    build_sample(tmp_path / "reference")
    complete = all_bytes(tmp_path / "reference")
    out = tmp_path / "partial"
    build_sample(out)
    (out / INSTANCES[1].relative_path).unlink()
    truncated = out / INSTANCES[4].relative_path
    truncated.write_bytes(truncated.read_bytes()[:500])
    (out / README_NAME).unlink()
    leftover = out / (INSTANCES[2].relative_path + ".wadows-partial")
    leftover.write_bytes(b"half a file")

    build_sample(out)
    assert all_bytes(out) == complete


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    build_sample(tmp_path / "one")
    build_sample(tmp_path / "two")
    first, second = all_bytes(tmp_path / "one"), all_bytes(tmp_path / "two")
    assert first == second and len(first) == len(INSTANCES) + 1


def test_describe_sample_matches_the_files(built: Path) -> None:
    rows = describe_sample(built)
    assert [row["file"] for row in rows] == [i.relative_path for i in INSTANCES]
    for row, ds in zip(rows, datasets(built).values()):
        assert (row["study_uid"], row["series_uid"], row["sop_instance_uid"], row["transfer_syntax_uid"]) == (
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID)
    assert max(row["number_of_frames"] for row in rows) == 30


def test_the_index_takes_every_sample_file_and_skips_the_readme(built: Path, tmp_path: Path) -> None:
    index = FolderIndex(tmp_path / "index.sqlite3")
    summary = index.update(built)
    assert (summary.added, summary.skipped_non_dicom, summary.skipped_unreadable, summary.duplicates) == (
        len(INSTANCES), 1, 0, 0)
    for row in describe_sample(built):
        record = index.get(row["sop_instance_uid"])
        assert record is not None and record.study_uid == row["study_uid"]
        assert record.transfer_syntax_uid == row["transfer_syntax_uid"]
