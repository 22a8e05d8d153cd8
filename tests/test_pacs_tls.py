"""A PACS reached over https with an in-house CA: `[store] ca_bundle` names the CA, and wins over whatever
REQUESTS_CA_BUNDLE says; without it the certificate is refused, per document, saying so without data.

The PACS is a real Orthanc behind a TLS-terminating relay on loopback (Orthanc's own TLS would need its build
options); the certificates come from trustme."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
import requests
import trustme

from support import ServerProcess, doc, envelope, post, rad69_body, registry, relay, serve_loopback

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"


class TlsRelay:
    """https://127.0.0.1:port in front of http://127.0.0.1:upstream_port, a pair of threads per connection."""

    def __init__(self, upstream_port: int, context: ssl.SSLContext):
        self.upstream_port, self.context = upstream_port, context
        self.listener = serve_loopback(self._serve)
        self.port = self.listener.getsockname()[1]

    def _serve(self, client: socket.socket) -> None:
        try:
            secure = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            client.close()  # a client that does not trust our certificate gives up during the handshake
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=relay, args=(upstream, secure), daemon=True).start()
        relay(secure, upstream)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def https_pacs(sample_orthanc, tmp_path_factory):
    work = tmp_path_factory.mktemp("pacs-tls")
    ca, other_ca = trustme.CA(), trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    relay = TlsRelay(sample_orthanc.http_port, context)
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    other_ca.cert_pem.write_to_path(str(work / "other-ca.pem"))
    yield f"https://127.0.0.1:{relay.port}/dicom-web", work
    relay.close()


def _server(tmp_path, url: str, config: str, env: dict[str, str], healthy: bool = True) -> ServerProcess:
    (tmp_path / "wadows.toml").write_text(config)
    return ServerProcess(None, tmp_path / "data", tmp_path / "server.log",
                         ["--unauthenticated", "full", "--store-url", url, "--config", str(tmp_path / "wadows.toml")],
                         env=env, healthy=healthy)


def test_the_configured_ca_is_trusted_whatever_requests_is_told(https_pacs, sample, tmp_path):
    url, work = https_pacs
    # REQUESTS_CA_BUNDLE names another CA: the setting of wadows must win for the PACS.
    server = _server(tmp_path, url, f'[store]\nca_bundle = "{work / "ca.pem"}"\n',
                     {"REQUESTS_CA_BUNDLE": str(work / "other-ca.pem")})
    try:
        row = sample[0]
        reply = post(server.endpoint, envelope(rad69_body([doc(row)])))
        assert registry(reply.envelope())[0] == SUCCESS
        [part] = reply.mtom().parts.values()
        assert part == row["path"].read_bytes()
    finally:
        server.stop()


def test_without_the_ca_the_pacs_is_refused_per_document(https_pacs, sample, tmp_path):
    url, work = https_pacs
    server = _server(tmp_path, url, "[store]\nretries = 0\n", {"REQUESTS_CA_BUNDLE": str(work / "other-ca.pem")},
                     healthy=False)
    try:
        # It starts all the same, says why it cannot count the PACS's instances, and /health says it is not ready.
        assert "TLS connection to the PACS failed" in server.log()
        assert "Traceback" not in server.log()
        assert requests.get(f"{server.url}/health", timeout=10).status_code == 503
        row = sample[0]
        reply = post(server.endpoint, envelope(rad69_body([doc(row)])))
        status, errors = registry(reply.envelope())
        assert status.endswith(":Failure")
        assert [e["errorCode"] for e in errors] == ["XDSRepositoryError"]
        assert "TLS connection to the PACS failed" in errors[0]["codeContext"]
        assert row["sop_instance_uid"] not in errors[0]["codeContext"]
    finally:
        server.stop()


def test_a_ca_bundle_that_is_not_there_stops_the_start(https_pacs, tmp_path):
    url, work = https_pacs
    with pytest.raises(RuntimeError, match=r"ca_bundle: .* is not a readable file"):
        _server(tmp_path, url, f'[store]\nca_bundle = "{work / "missing.pem"}"\n', {})
