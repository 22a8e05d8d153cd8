"""wadows in front of a real Orthanc that goes away mid-suite: per-document errors, never a crash, and the next
request after Orthanc comes back works."""

from __future__ import annotations

import os
import time

import pytest

from conftest import load_into_orthanc
from support import ServerProcess, doc, envelope, post, rad69_body, registry

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"


@pytest.fixture()
def pacs(store_dir, tmp_path):
    from orthanc import Orthanc

    orthanc = Orthanc(tmp_path / "orthanc").start()
    load_into_orthanc(orthanc, store_dir / "sample")
    config = tmp_path / "wadows.toml"
    config.write_text("[store]\nconnect_timeout = 1.0\nread_timeout = 5.0\nretries = 1\n")
    server = ServerProcess(None, tmp_path / "data", tmp_path / "log", [
        "--unauthenticated", "full", "--store-url", orthanc.dicomweb_url, "--config", str(config)])
    yield orthanc, server
    server.stop()
    orthanc.stop()


def test_pacs_down_gives_per_document_errors_and_recovery(pacs, sample):
    orthanc, server = pacs
    # Other series than the ones asked for before the outage: nothing of them is cached.
    first, later = sample[0], next(r for r in sample if r["series_uid"] != sample[0]["series_uid"])
    reply = post(server.endpoint, envelope(rad69_body([doc(first)])))
    assert registry(reply.envelope())[0] == SUCCESS

    orthanc.stop()
    started = time.monotonic()
    reply = post(server.endpoint, envelope(rad69_body([doc(later)], anonymize="yes")))
    assert reply.status == 200 and time.monotonic() - started < 20
    status, errors = registry(reply.envelope())
    assert status == FAILURE
    assert errors[0]["errorCode"] == "XDSRepositoryBusy" and "not available" in errors[0]["codeContext"]
    assert errors[0]["location"] == later["sop_instance_uid"]
    import requests

    health = requests.get(f"{server.url}/health", timeout=30)
    assert health.status_code == 503 and health.json()["status"] == "unavailable"  # it answers: no crash

    orthanc.start()
    reply = post(server.endpoint, envelope(rad69_body([doc(later)], [later["transfer_syntax_uid"]])))
    status, errors = registry(reply.envelope())
    assert status == SUCCESS, errors
    assert reply.mtom().parts and list(reply.mtom().parts.values())[0] == later["path"].read_bytes()
    log = server.log()
    assert later["sop_instance_uid"] not in log and "Traceback" not in log


def test_object_deleted_in_the_pacs_is_a_document_error(pacs, sample):
    orthanc, server = pacs
    row = sample[1]
    orthanc.delete_instance(row["sop_instance_uid"])
    reply = post(server.endpoint, envelope(rad69_body([doc(row), doc(sample[0])])))
    status, errors = registry(reply.envelope())
    assert status.endswith("PartialSuccess")
    assert [(e["errorCode"], e["location"]) for e in errors] == [("XDSDocumentUniqueIdError", row["sop_instance_uid"])]


def test_a_whole_series_while_orthanc_is_down_then_back(pacs, sample):
    """The series path (one WADO-RS request for the series, local copies) with the PACS gone: one error per
    document; back up, the series comes whole; either way no local copy is left behind."""
    orthanc, server = pacs
    series = max({r["series_uid"] for r in sample}, key=lambda s: sum(r["series_uid"] == s for r in sample))
    rows = [r for r in sample if r["series_uid"] == series]
    body = envelope(rad69_body([doc(r) for r in rows], sorted({r["transfer_syntax_uid"] for r in rows})))
    spool = server.data_dir / "spool"
    orthanc.stop()
    try:
        reply = post(server.endpoint, body)
        status, errors = registry(reply.envelope())
        assert status == FAILURE
        assert sorted(e["location"] for e in errors) == sorted(r["sop_instance_uid"] for r in rows)
        assert {e["errorCode"] for e in errors} == {"XDSRepositoryBusy"}
    finally:
        orthanc.start()
    reply = post(server.endpoint, body)
    status, errors = registry(reply.envelope())
    assert status == SUCCESS, errors
    assert sorted(reply.mtom().parts.values()) == sorted(r["path"].read_bytes() for r in rows)
    deadline = time.monotonic() + 10
    while spool.exists() and os.listdir(spool):
        assert time.monotonic() < deadline, os.listdir(spool)
        time.sleep(0.1)


def test_a_pacs_down_at_start_does_not_stop_the_server(store_dir, sample, tmp_path):
    """The start banner counts the store's instances; a PACS that does not answer then is said so in one line, the
    server serves (documents get errors, /health says unavailable) and picks the PACS up when it comes."""
    import requests

    from orthanc import Orthanc

    orthanc = Orthanc(tmp_path / "orthanc")  # its port chosen, nothing listening on it yet
    config = tmp_path / "wadows.toml"
    config.write_text("[store]\nconnect_timeout = 0.5\nretries = 0\n")
    server = ServerProcess(None, tmp_path / "data", tmp_path / "log", [
        "--unauthenticated", "full", "--store-url", orthanc.dicomweb_url, "--config", str(config)], healthy=False)
    try:
        assert "a store that cannot be counted now: " in server.log() and "Traceback" not in server.log()
        assert requests.get(f"{server.url}/health", timeout=30).status_code == 503
        reply = post(server.endpoint, envelope(rad69_body([doc(sample[0])])))
        status, errors = registry(reply.envelope())
        assert status == FAILURE and errors[0]["errorCode"] == "XDSRepositoryBusy"

        orthanc.start()
        load_into_orthanc(orthanc, store_dir / "sample")
        reply = post(server.endpoint, envelope(rad69_body([doc(sample[0])], [sample[0]["transfer_syntax_uid"]])))
        assert registry(reply.envelope())[0] == SUCCESS
        assert list(reply.mtom().parts.values())[0] == sample[0]["path"].read_bytes()
        assert requests.get(f"{server.url}/health", timeout=30).status_code == 200
    finally:
        server.stop()
        orthanc.stop()
