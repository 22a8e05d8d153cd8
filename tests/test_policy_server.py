"""Who may get what, through a real server: anonymous callers, users, client certificates over TLS, the audit
trail and the metrics."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import requests
import trustme

from support import ServerProcess, doc, envelope, post, rad69_body, registry
from wadows.sample import IDENTIFYING_STRINGS

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"


def ct(sample):
    return next(r for r in sample if r["modality"] == "CT")


def uri(server, row, auth=None, cert=None, headers=None, **params):
    # verify is passed per call: a Session's own setting loses to REQUESTS_CA_BUNDLE in the environment.
    return requests.get(f"{server.url}/wado", timeout=30, auth=auth, cert=cert, verify=server.verify, headers=headers,
                        params={
        "requestType": "WADO", "studyUID": row["study_uid"], "seriesUID": row["series_uid"],
        "objectUID": row["sop_instance_uid"], "contentType": "application/dicom", **params})


def audit_records(path, at_least: int, timeout: float = 10) -> list[dict]:
    """The audit trail once it holds `at_least` records: a record is written when the server has finished
    sending the answer, which may be a moment after the client has read it all."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= at_least or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


def settled_count(path, quiet: float = 0.3) -> int:
    """How many records the audit trail holds once no earlier answer is still adding one."""
    count = -1
    while True:
        now = len(path.read_text().splitlines()) if path.exists() else 0
        if now == count:
            return now
        count = now
        time.sleep(quiet)


def add_user(data_dir, name, password, config=None):
    args = [sys.executable, "-m", "wadows", "user", "add", name, "--password-stdin", "--data-dir", str(data_dir)]
    if config:
        args += ["--config", str(config)]
    done = subprocess.run(args, input=password + "\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def default_server(store_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("policy-default")
    server = ServerProcess(store_dir, data, data / "log")
    yield server
    server.stop()


def test_anonymous_callers_get_anonymized_objects_only(default_server, sample):
    row = ct(sample)
    reply = post(default_server.endpoint, envelope(rad69_body([doc(row)])))
    status, errors = registry(reply.envelope())
    assert status == FAILURE and errors[0]["errorCode"] == "XDSDocumentUniqueIdError"
    assert "not authorized" in errors[0]["codeContext"] and b"Include" not in reply.mtom().root
    reply = post(default_server.endpoint, envelope(rad69_body([doc(row)], anonymize="yes")))
    assert registry(reply.envelope())[0] == SUCCESS
    original = uri(default_server, row)
    assert original.status_code == 401 and original.headers["WWW-Authenticate"].startswith("Basic")
    assert uri(default_server, row, anonymize="yes").status_code == 200
    rendered = requests.get(f"{default_server.url}/wado", params={
        "requestType": "WADO", "studyUID": row["study_uid"], "seriesUID": row["series_uid"],
        "objectUID": row["sop_instance_uid"]}, timeout=30)
    assert rendered.status_code == 401  # a rendering shows the original's pixels and annotation
    assert requests.get(f"{default_server.url}/studies/{row['study_uid']}/instances", timeout=30).status_code == 200


def test_users_may_get_originals_as_configured(store_dir, sample, tmp_path):
    config = tmp_path / "wadows.toml"
    config.write_text('[policy]\noriginal_users = ["alice"]\nbasic_over_http = true\n')
    data = tmp_path / "data"
    add_user(data, "alice", "correct horse battery staple", config)
    add_user(data, "bob", "another long password", config)
    server = ServerProcess(store_dir, data, tmp_path / "log", ["--config", str(config)])
    try:
        row = ct(sample)
        alice, bob = ("alice", "correct horse battery staple"), ("bob", "another long password")
        reply = requests.post(server.endpoint, data=envelope(rad69_body([doc(row)])), auth=alice, timeout=30,
                              headers={"Content-Type": "application/soap+xml"})
        assert reply.status_code == 200 and b"not authorized" not in reply.content
        assert row["path"].read_bytes() in reply.content
        assert requests.get(f"{server.url}/wado", auth=alice, timeout=30, params={
            "requestType": "WADO", "studyUID": row["study_uid"], "seriesUID": row["series_uid"],
            "objectUID": row["sop_instance_uid"], "contentType": "application/dicom", "transferSyntax": "*"}
        ).content == row["path"].read_bytes()
        assert uri(server, row, auth=bob).status_code == 403
        wrong = requests.post(server.endpoint, data=envelope(rad69_body([doc(row)])), auth=("alice", "nope"),
                              timeout=30, headers={"Content-Type": "application/soap+xml"})
        assert wrong.status_code == 401 and b"Sender" in wrong.content and "WWW-Authenticate" in wrong.headers
        assert uri(server, row, auth=("mallory", "x")).status_code == 401
        log = server.log()
        assert "correct horse" not in log and "another long password" not in log
    finally:
        server.stop()


def test_basic_credentials_over_plain_http_are_refused_by_default(default_server, sample):
    reply = uri(default_server, ct(sample), auth=("alice", "secret"))
    assert reply.status_code == 403 and "TLS" in reply.text


def test_a_forwarded_scheme_is_believed_only_from_the_configured_proxies(default_server, store_dir, sample,
                                                                           tmp_path):
    """X-Forwarded-Proto: https from a client nobody declared a proxy (127.0.0.1 included, which gunicorn trusts
    by default) does not make plain HTTP count as TLS; from a declared proxy it does."""
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "ssl"}
    reply = uri(default_server, ct(sample), auth=("alice", "secret"), headers=forwarded)
    assert reply.status_code == 403 and "TLS" in reply.text
    data = tmp_path / "data"
    add_user(data, "alice", "correct horse battery staple")
    config = tmp_path / "wadows.toml"
    config.write_text('[server]\nforwarded_allow_ips = ["127.0.0.1"]\n[policy]\noriginal_users = ["alice"]\n')
    proxied = ServerProcess(store_dir, data, tmp_path / "log", ["--config", str(config)])
    try:
        alice = ("alice", "correct horse battery staple")
        assert uri(proxied, ct(sample), auth=alice).status_code == 403  # no forwarded scheme: plain HTTP
        reply = uri(proxied, ct(sample), auth=alice, headers={"X-Forwarded-Proto": "https"}, transferSyntax="*")
        assert reply.status_code == 200 and reply.content == ct(sample)["path"].read_bytes()
    finally:
        proxied.stop()


def test_deny_lets_anonymous_callers_have_nothing(store_dir, sample, tmp_path):
    server = ServerProcess(store_dir, tmp_path / "data", tmp_path / "log", ["--unauthenticated", "deny"])
    try:
        row = ct(sample)
        reply = post(server.endpoint, envelope(rad69_body([doc(row)], anonymize="yes")))
        status, errors = registry(reply.envelope())
        assert status == FAILURE and "not authorized" in errors[0]["codeContext"]
        assert uri(server, row, anonymize="yes").status_code == 401
        assert requests.get(f"{server.url}/studies/{row['study_uid']}/instances", timeout=30).status_code == 401
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_server(store_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("policy-tls")
    ca, stranger_ca = trustme.CA(), trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(data / "server.pem"))
    ca.cert_pem.write_to_path(str(data / "ca.pem"))
    clients = {name: issuer.issue_cert(f"{name}.example", common_name=name)
               for name, issuer in (("viewer", ca), ("intruder", stranger_ca), ("trial", ca))}
    for name, cert in clients.items():
        cert.private_key_and_cert_chain_pem.write_to_path(str(data / f"{name}.pem"))
    config = data / "wadows.toml"
    config.write_text('[policy]\noriginal_certificates = ["viewer"]\noriginal_users = ["alice"]\n')
    add_user(data / "data", "alice", "a tls password", config)
    server = ServerProcess(store_dir, data / "data", data / "log", [
        "--config", str(config), "--tls-cert", str(data / "server.pem"), "--tls-key", str(data / "server.pem"),
        "--tls-client-ca", str(data / "ca.pem")], https_ca=str(data / "ca.pem"))
    yield server, data
    server.stop()


def test_tls_with_client_certificates(tls_server, sample):
    server, data = tls_server
    row = ct(sample)
    ca = str(data / "ca.pem")
    assert server.url.startswith("https://")
    anonymous = requests.get(f"{server.url}/wado", verify=ca, timeout=30, params={
        "requestType": "WADO", "studyUID": row["study_uid"], "seriesUID": row["series_uid"],
        "objectUID": row["sop_instance_uid"], "contentType": "application/dicom"})
    assert anonymous.status_code == 401
    viewer = uri(server, row, cert=str(data / "viewer.pem"), transferSyntax="*")
    assert viewer.status_code == 200 and viewer.content == row["path"].read_bytes()
    trial = uri(server, row, cert=str(data / "trial.pem"))
    assert trial.status_code == 403  # a known certificate, but not one allowed originals
    assert uri(server, row, cert=str(data / "trial.pem"), anonymize="yes").status_code == 200
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        uri(server, row, cert=str(data / "intruder.pem"))
    basic = requests.get(f"{server.url}/wado", verify=ca, timeout=30, auth=("alice", "a tls password"), params={
        "requestType": "WADO", "studyUID": row["study_uid"], "seriesUID": row["series_uid"],
        "objectUID": row["sop_instance_uid"], "contentType": "application/dicom"})
    assert basic.status_code == 200
    assert requests.get(f"{server.url}/health", verify=ca, timeout=30).json()["status"] == "ok"


def test_audit_trail_and_metrics(default_server, sample):
    row = ct(sample)
    audit = default_server.data_dir / "audit.jsonl"
    before = settled_count(audit)
    post(default_server.endpoint, envelope(rad69_body([doc(row)], anonymize="yes")))
    uri(default_server, row)  # refused: 401
    records = audit_records(audit, before + 2)
    assert any(r["operation"] == "RetrieveImagingDocumentSet" and r["anonymized"] == 1 and r["returned"] == 1
               for r in records)
    assert any(r["operation"] == "WADO-URI" and r["refused"] == 1 for r in records)
    assert all(d.startswith("h:") for r in records for d in r["documents"])
    text = audit.read_text()
    for value in [row["sop_instance_uid"], row["study_uid"], *IDENTIFYING_STRINGS]:
        assert value not in text
    metrics = requests.get(f"{default_server.url}/metrics", timeout=10).text
    assert 'wadows_requests_total{operation="RetrieveImagingDocumentSet"' in metrics
    assert row["sop_instance_uid"] not in metrics
    assert all(r["delivered"] for r in records)


def test_refused_logins_and_refusals_are_audited_and_counted(default_server, sample):
    """A refused login leaves an audit record (no user name, no UID: the request is not read further); a WADO-URI
    policy refusal is counted under its HTTP outcome, not as a failed retrieval."""
    row = ct(sample)
    audit = default_server.data_dir / "audit.jsonl"

    def metric(outcome):
        text = requests.get(f"{default_server.url}/metrics", timeout=10).text
        found = re.search(rf'wadows_requests_total{{operation="WADO-URI",outcome="{outcome}"}} (\d+)', text)
        return int(found.group(1)) if found else 0

    before = settled_count(audit)  # earlier answers all accounted for (metrics first, then the audit record)
    unauthorized, failed = metric("unauthorized"), metric("failure")
    assert uri(default_server, row, auth=("QZVMALLORY", "pw")).status_code == 403  # Basic without TLS
    assert requests.post(default_server.endpoint, data=b"<x/>", auth=("QZVMALLORY", "pw"), timeout=30,
                         headers={"Content-Type": "application/soap+xml"}).status_code == 403
    assert uri(default_server, row).status_code == 401  # an original, anonymously
    new = audit_records(audit, before + 3)[before:]
    assert [(r["operation"], r["outcome"]) for r in new] == [("WADO-URI", 403), ("WADO-WS", 403), ("WADO-URI", 401)]
    assert new[0]["caller_kind"] is None and new[0]["documents"] == []
    assert "QZVMALLORY" not in audit.read_text()
    assert (metric("unauthorized"), metric("failure")) == (unauthorized + 1, failed)
