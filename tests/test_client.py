"""wadows.client and `wadows retrieve` against the real server: exact bytes, including a trailing CR LF."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydicom
import zeep

from wadows.client import DocumentSpec, WadoWsClient

REPO = Path(__file__).resolve().parents[1]


def test_client_keeps_a_trailing_cr_lf_that_plain_zeep_loses(server, crlf):
    expected = crlf["path"].read_bytes()
    assert expected.endswith(b"\r\n")
    spec = DocumentSpec(crlf["study_uid"], crlf["series_uid"], crlf["sop_instance_uid"])

    with WadoWsClient(server.endpoint).retrieve([spec]) as result:
        documents = [(d.document_uid, d.read()) for d in result.documents]
    assert documents == [(crlf["sop_instance_uid"], expected)]

    # zeep issue 1249: zeep strips CR/LF at the ends of binary parts. This is why the client parses MTOM itself.
    plain = zeep.Client(f"{server.endpoint}?wsdl").service.ImagingDocumentSource_RetrieveImagingDocumentSet(
        StudyRequest=[{"studyInstanceUID": spec.study_uid, "SeriesRequest": [
            {"seriesInstanceUID": spec.series_uid, "DocumentRequest": [{"DocumentUniqueId": spec.document_uid}]}]}],
        TransferSyntaxUIDList={"TransferSyntaxUID": ["1.2.840.10008.1.2.1"]})
    assert plain.DocumentResponse[0].Document == expected.rstrip(b"\r\n")


def study_files(store_dir: Path, study_uid: str) -> dict[str, bytes]:
    """SOP Instance UID -> bytes of every stored file of the study (the sample's and the tests' own)."""
    found = {}
    for path in store_dir.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.StudyInstanceUID == study_uid:
            found[ds.SOPInstanceUID] = path.read_bytes()
    return found


def test_client_lists_and_streams_a_whole_study_with_errors_reported(server, sample, store_dir):
    study = sample[0]["study_uid"]
    client = WadoWsClient(server.endpoint)
    specs = client.instances(study)
    expected = study_files(store_dir, study)
    assert {s.document_uid for s in specs} == set(expected)
    with client.retrieve(specs + [DocumentSpec(study, specs[0].series_uid, "1.2.3.4.404")]) as result:
        got = {d.document_uid: d.read() for d in result.documents}
    assert got == expected
    assert result.status.endswith("PartialSuccess")
    assert [(e.code, e.location) for e in result.errors] == [("XDSDocumentUniqueIdError", "1.2.3.4.404")]


def test_retrieve_command_writes_the_study(server, sample, store_dir, tmp_path):
    study = sample[0]["study_uid"]
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "wadows", "retrieve", "--url", server.endpoint, "--study", study,
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = {f"{uid}.dcm": data for uid, data in study_files(store_dir, study).items()}
    assert {p.name: p.read_bytes() for p in out.iterdir()} == expected
    assert f"{len(expected)} of {len(expected)} documents saved" in done.stdout


def test_example_script_runs(server, sample, store_dir, tmp_path):
    study = sample[0]["study_uid"]
    done = subprocess.run([sys.executable, str(REPO / "examples" / "retrieve_study.py"), server.endpoint, study,
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.glob("*.dcm"))) == len(study_files(store_dir, study))
    assert done.stdout.strip().endswith("Success")
