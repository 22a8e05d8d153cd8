"""The client examples in examples/ run as a user would run them (a subprocess each) against a real server on
loopback, and what they write is checked: plain objects byte for byte against the stored files, anonymized ones
for the documented UID algorithm and for the absence of the sample's identifying values."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from lxml import etree
from PIL import Image

from support import XDS, ServerProcess, WADO, doc, envelope, post
from wadows.sample import IDENTIFYING_STRINGS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PASSWORD = "examples-password"
NATIVE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"


@pytest.fixture(scope="module")
def example_server(store_dir, tmp_path_factory):
    """The server as examples/wadows.toml configures it (its pixel rule releases the scanned photo), with the
    default policy (anonymous callers: anonymized only) and one user, alice, allowed originals. Basic over plain
    HTTP is allowed here only because the test has no TLS."""
    data_dir = tmp_path_factory.mktemp("examples-data")
    subprocess.run([sys.executable, "-m", "wadows", "user", "add", "alice", "--password-stdin",
                    "--data-dir", str(data_dir)], input=f"{PASSWORD}\n", text=True, check=True,
                   capture_output=True)
    server = ServerProcess(store_dir, data_dir, data_dir / "server.log",
                           ["--config", str(EXAMPLES / "wadows.toml")],
                           env={"WADOWS_POLICY_ORIGINAL_USERS": "alice", "WADOWS_POLICY_BASIC_OVER_HTTP": "true"})
    yield server
    server.stop()


def run(script: str, server, uids: tuple[str, str, str], *options: str, cwd: Path,
        user: bool = False) -> subprocess.CompletedProcess:
    """`python examples/<script> --url ... STUDY SERIES SOP [options]`, as the examples' usage line says."""
    args = [sys.executable, str(EXAMPLES / script), "--url", server.endpoint, *uids, *options]
    env = {**os.environ, "WADOWS_PASSWORD": PASSWORD}
    if user:
        args += ["--user", "alice"]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def keyed_uid(server, uid: str) -> str:
    """The documented UID algorithm, written here independently: 2.25. + HMAC-SHA256(key, UID)[:128 bits]."""
    key = (server.data_dir / "anonymization.key").read_text().strip().encode()
    return "2.25." + str(int.from_bytes(hmac.new(key, uid.encode(), hashlib.sha256).digest()[:16], "big"))


def row(sample, modality: str, syntax: str | None = None) -> dict:
    return next(r for r in sample if r["modality"] == modality
                and (syntax is None or r["transfer_syntax_uid"] == syntax))


def leaks(data: bytes, row_: dict) -> list[str]:
    """Identifying values of the sample and the object's original UIDs found in `data`."""
    originals = (row_["study_uid"], row_["series_uid"], row_["sop_instance_uid"])
    return [value for value in (*IDENTIFYING_STRINGS, *originals) if value.encode() in data]


# ---- RAD-69: zeep and the standard-library client --------------------------------------------------------------

RETRIEVERS = ["zeep_retrieve.py", "raw_http_rad69.py"]
STORED_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80",
                   "1.2.840.10008.1.2.4.90"]


@pytest.mark.parametrize("script", RETRIEVERS)
def test_plain_retrieval_writes_the_stored_files_byte_for_byte(example_server, sample, crlf, script, tmp_path):
    # The five transfer syntaxes of the sample's MR series, a deflated object, and a file ending in CR LF (zeep
    # alone would cut those two bytes off: the zeep example restores the exact MIME part).
    rows = [row(sample, "MR", ts) for ts in STORED_SYNTAXES]
    rows += [row(sample, "OT", "1.2.840.10008.1.2.1.99"), crlf]
    for expected in rows:
        result = run(script, example_server, doc(expected), "--out", "out", cwd=tmp_path, user=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "status: Success" in result.stdout
        written = tmp_path / "out" / f"{expected['sop_instance_uid']}.dcm"
        assert written.read_bytes() == expected["path"].read_bytes(), expected["path"]


def test_anonymized_retrieval_gives_a_keyed_uid_and_no_identity_the_same_from_both_clients(
        example_server, sample, tmp_path):
    ct = row(sample, "CT")
    outputs = {}
    for script in RETRIEVERS:
        result = run(script, example_server, doc(ct), "--anonymize", "--out", script, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        new_uid = keyed_uid(example_server, ct["sop_instance_uid"])
        assert f"new SOP Instance UID {new_uid}" in result.stdout
        path = tmp_path / script / f"{new_uid}.dcm"
        outputs[script] = path.read_bytes()
        assert leaks(outputs[script], ct) == []

        ds = pydicom.dcmread(path)
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == new_uid
        assert ds.StudyInstanceUID == keyed_uid(example_server, ct["study_uid"])
        assert ds.SeriesInstanceUID == keyed_uid(example_server, ct["series_uid"])
        assert ds.SOPClassUID == ct["sop_class_uid"]  # well-known UIDs never change
        assert not str(ds.get("PatientName", ""))
        assert ds.PatientIdentityRemoved == "YES"
        assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100"]
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    # One key, one answer: the two clients' requests gave the same bytes.
    assert outputs["zeep_retrieve.py"] == outputs["raw_http_rad69.py"]


def test_the_pixel_rule_of_the_sample_configuration_cleans_the_scanned_photo(example_server, sample, tmp_path):
    photo = row(sample, "OT", "1.2.840.10008.1.2.4.50")
    result = run("zeep_retrieve.py", example_server, doc(photo), "--anonymize", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    ds = pydicom.dcmread(tmp_path / f"{keyed_uid(example_server, photo['sop_instance_uid'])}.dcm")
    assert ds.BurnedInAnnotation == "NO"
    assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100", "113101"]
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"  # JPEG Baseline is never re-compressed
    assert not ds.pixel_array[:10].any()  # the rule's band: the top ten rows


@pytest.mark.parametrize("script", RETRIEVERS)
def test_refusals_are_reported_and_nothing_is_written(example_server, sample, script, tmp_path):
    us = row(sample, "US")  # burned-in text suspected, no pixel rule for it
    refused = run(script, example_server, doc(us), "--anonymize", cwd=tmp_path)
    assert refused.returncode == 1
    assert "urn:dicom:wado:0001" in refused.stdout and "burned-in annotation" in refused.stdout
    ct = row(sample, "CT")
    anonymous = run(script, example_server, doc(ct), cwd=tmp_path)  # originals, without credentials
    assert anonymous.returncode == 1
    assert "XDSDocumentUniqueIdError" in anonymous.stdout and "not authorized" in anonymous.stdout
    assert not list(tmp_path.glob("*.dcm"))


# ---- rendered -------------------------------------------------------------------------------------------------

def rendered_over_raw_http(server, uids, content_type: str) -> bytes:
    """The rendering's MIME part as the server sent it, read without zeep."""
    study, series, sop = uids
    body = (f'<wado:RetrieveRenderedImagingDocumentSetRequest xmlns:wado="{WADO}" xmlns:ihe="{XDS}">'
            f'<wado:StudyRequest studyInstanceUID="{study}"><wado:SeriesRequest seriesInstanceUID="{series}">'
            f'<wado:RenderedDocumentRequest><ihe:DocumentUniqueId>{sop}</ihe:DocumentUniqueId>'
            f'<wado:ContentTypeList><wado:ContentType>{content_type}</wado:ContentType></wado:ContentTypeList>'
            f'</wado:RenderedDocumentRequest></wado:SeriesRequest></wado:StudyRequest>'
            f'</wado:RetrieveRenderedImagingDocumentSetRequest>')
    reply = post(server.endpoint, envelope(body, action="urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet"),
                 auth=("alice", PASSWORD))
    (part,) = reply.mtom().parts.values()
    return part


def test_rendered_image_plain_and_anonymized(example_server, sample, tmp_path):
    ct = row(sample, "CT")
    plain = run("zeep_rendered.py", example_server, doc(ct), "--rows", "64", "--output", "plain.jpg", cwd=tmp_path,
                user=True)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "Rows=64" in plain.stdout and "Anonymize" not in plain.stdout
    assert Image.open(tmp_path / "plain.jpg").size[1] == 64

    anonymized = run("zeep_rendered.py", example_server, doc(ct), "--anonymize", "--annotation", "patient",
                     "--content-type", "image/png", cwd=tmp_path)
    assert anonymized.returncode == 0, anonymized.stdout + anonymized.stderr
    assert "Anonymize=yes" in anonymized.stdout and "Annotation=patient" in anonymized.stdout
    assert Image.open(tmp_path / "rendered.png").format == "PNG"


def test_rendered_report_text_keeps_its_last_line_break(example_server, sample, tmp_path):
    sr = row(sample, "SR")
    result = run("zeep_rendered.py", example_server, doc(sr), "--content-type", "text/plain", cwd=tmp_path,
                 user=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (tmp_path / "rendered.txt").read_bytes()
    assert text.endswith(b"\n")  # what zeep alone would strip
    assert text == rendered_over_raw_http(example_server, doc(sr), "text/plain")

    anonymized = run("zeep_rendered.py", example_server, doc(sr), "--anonymize", "--content-type", "text/html",
                     "--annotation", "patient", cwd=tmp_path)
    assert anonymized.returncode == 0, anonymized.stdout + anonymized.stderr
    assert leaks((tmp_path / "rendered.html").read_bytes(), sr) == []


def test_rendered_multiframe_needs_a_frame(example_server, sample, tmp_path):
    dose = row(sample, "RTDOSE")
    missing = run("zeep_rendered.py", example_server, doc(dose), cwd=tmp_path, user=True)
    assert missing.returncode == 1 and "urn:dicom:wado:0008" in missing.stdout
    framed = run("zeep_rendered.py", example_server, doc(dose), "--frame", "2", cwd=tmp_path, user=True)
    assert framed.returncode == 0 and "FrameNumber=2" in framed.stdout


# ---- metadata -------------------------------------------------------------------------------------------------

def test_metadata_plain_answers_each_xpath_in_order(example_server, sample, tmp_path):
    ct = row(sample, "CT")
    result = run("zeep_metadata.py", example_server, doc(ct), "--xpath",
                 'string(//dcm:DicomAttribute[@keyword="PatientName"]/dcm:PersonName/dcm:Alphabetic/dcm:FamilyName)',
                 "--xpath", 'string(/NativeDicomModel/DicomAttribute[@keyword="Modality"]/Value)',
                 "--xpath", '//dcm:DicomAttribute[@keyword="NoSuchKeyword"]', cwd=tmp_path, user=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split("\n")[:3] == [ct["patient_name"].split("^")[0], "CT", ""]


def test_metadata_anonymized_model_has_the_new_uids_and_no_identity(example_server, sample, tmp_path):
    ct = row(sample, "CT")
    result = run("zeep_metadata.py", example_server, doc(ct), "--anonymize", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert leaks(result.stdout.encode(), ct) == []
    model = etree.fromstring(result.stdout.strip().encode())

    def values(keyword):
        return model.xpath(f'//n:DicomAttribute[@keyword="{keyword}"]/n:Value/text()', namespaces={"n": NATIVE})

    assert values("SOPInstanceUID") == [keyed_uid(example_server, ct["sop_instance_uid"])]
    assert values("PatientIdentityRemoved") == ["YES"]
    assert not model.xpath('//n:DicomAttribute[@keyword="PatientName"]/*', namespaces={"n": NATIVE})
