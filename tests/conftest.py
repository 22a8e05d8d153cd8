"""Shared fixtures: one real store folder and one real `wadows serve` process for the session."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from support import ServerProcess
from wadows.sample import build_sample, describe_sample


def crlf_instance(path: Path) -> dict:
    """An MR whose file ends in CR LF: the last two pixel bytes are 0x0D 0x0A (zeep issue 1249 bait)."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["wadows test crlf study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["wadows test crlf series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["wadows test crlf sop"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PixelData = ds.PixelData[:-2] + b"\r\n"
    for tag in [t for t in ds.keys() if t > 0x7FE00010]:  # trailing padding would hide the CR LF
        del ds[tag]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    assert path.read_bytes().endswith(b"\r\n")
    return {"study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID,
            "sop_instance_uid": ds.SOPInstanceUID, "path": path}


def presentation_state(path: Path, image: Path, rotation: int = 90) -> dict:
    """A Grayscale Softcopy Presentation State for one image: rotated, with its own window, in its own series."""
    target = pydicom.dcmread(image, stop_before_pixels=True)
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["wadows test gsps", str(rotation)])
    ds.StudyInstanceUID = target.StudyInstanceUID
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["wadows test gsps series"])
    ds.Modality = "PR"
    ds.PatientName, ds.PatientID = target.PatientName, target.PatientID
    ds.ContentLabel = "ROTATED"
    ds.PresentationCreationDate, ds.PresentationCreationTime = "20240101", "120000"
    ds.InstanceNumber, ds.SeriesNumber = 1, 99
    ref_image = pydicom.Dataset()
    ref_image.ReferencedSOPClassUID, ref_image.ReferencedSOPInstanceUID = target.SOPClassUID, target.SOPInstanceUID
    ref_series = pydicom.Dataset()
    ref_series.SeriesInstanceUID = target.SeriesInstanceUID
    ref_series.ReferencedImageSequence = [ref_image]
    ds.ReferencedSeriesSequence = [ref_series]
    area = pydicom.Dataset()
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [int(target.Columns), int(target.Rows)]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelSpacing = [1, 1]
    ds.DisplayedAreaSelectionSequence = [area]
    ds.ImageRotation = rotation
    ds.ImageHorizontalFlip = "N"
    voi = pydicom.Dataset()
    voi.WindowCenter, voi.WindowWidth = 40, 400
    ds.SoftcopyVOILUTSequence = [voi]
    ds.PresentationLUTShape = "IDENTITY"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return {"sop_instance_uid": ds.SOPInstanceUID, "series_uid": ds.SeriesInstanceUID, "path": path}


def interop_store(store: Path) -> tuple[list[dict], dict, dict]:
    """The store the interop suites serve under `store`: the sample (rows with their paths), the CR LF object, and
    the objects planted with identifying values (tests/planting.py)."""
    import planting

    build_sample(store / "sample")
    sample = describe_sample(store / "sample")
    for row in sample:
        row["path"] = store / "sample" / row["file"]
    return sample, crlf_instance(store / "extra" / "crlf.dcm"), planting.write_planted_store(store / "planted")


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store")
    build_sample(root / "sample")
    crlf_instance(root / "extra" / "crlf.dcm")
    ct = next((root / "sample").rglob("1-ct/*.dcm"))
    presentation_state(root / "extra" / "gsps.dcm", ct)
    (root / "extra" / "notes.txt").write_text("not DICOM: the index skips it\n")
    return root


@pytest.fixture(scope="session")
def sample(store_dir) -> list[dict]:
    rows = describe_sample(store_dir / "sample")
    for row in rows:
        row["path"] = store_dir / "sample" / row["file"]
    return rows


@pytest.fixture(scope="session")
def crlf(store_dir) -> dict:
    ds = pydicom.dcmread(store_dir / "extra" / "crlf.dcm", stop_before_pixels=True)
    return {"study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID,
            "sop_instance_uid": ds.SOPInstanceUID, "path": store_dir / "extra" / "crlf.dcm"}


@pytest.fixture(scope="session")
def gsps(store_dir) -> dict:
    ds = pydicom.dcmread(store_dir / "extra" / "gsps.dcm")
    return {"sop_instance_uid": ds.SOPInstanceUID, "series_uid": ds.SeriesInstanceUID,
            "study_uid": ds.StudyInstanceUID, "path": store_dir / "extra" / "gsps.dcm"}


def load_into_orthanc(orthanc, folder: Path) -> int:
    """Upload every DICOM Part 10 file under `folder` through Orthanc's REST API."""
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.read_bytes()[128:132] == b"DICM":
            orthanc.upload(path)
            count += 1
    return count


@pytest.fixture(scope="module")
def sample_orthanc(store_dir, tmp_path_factory):
    """A real Orthanc holding the sample, for the tests of one module."""
    from orthanc import Orthanc

    orthanc = Orthanc(tmp_path_factory.mktemp("sample-orthanc")).start()
    load_into_orthanc(orthanc, store_dir / "sample")
    yield orthanc
    orthanc.stop()


@pytest.fixture(scope="session", params=["folder", "orthanc"])
def server(request, store_dir, tmp_path_factory):
    """The same suite against both stores: the folder, and a real Orthanc reached over DICOMweb."""
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    # A closed test network: anonymous callers may have originals. The policy has its own tests.
    args = ["--unauthenticated", "full"]
    orthanc = None
    if request.param == "orthanc":
        from orthanc import Orthanc

        orthanc = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
        load_into_orthanc(orthanc, store_dir)
        process = ServerProcess(None, data_dir, data_dir / "server.log", args + ["--store-url", orthanc.dicomweb_url])
    else:
        process = ServerProcess(store_dir, data_dir, data_dir / "server.log", args)
    process.store_kind = request.param
    yield process
    process.stop()
    if orthanc is not None:
        orthanc.stop()
