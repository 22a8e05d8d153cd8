"""A PACS that wants a short-lived bearer token: `[store] token_file` names a file something else renews, and the
next request carries the new token without a restart. The PACS is a real Orthanc behind a loopback relay that
checks `Authorization: Bearer <the token of the moment>` on every request (Orthanc itself only knows Basic)."""

from __future__ import annotations

import re
import socket

import pytest

from support import ServerProcess, doc, envelope, post, rad69_body, registry, serve_loopback

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"


class TokenCheckingRelay:
    """http://127.0.0.1:port in front of Orthanc, one request per connection: a request without the expected
    bearer token gets 401, the others go to Orthanc (with Connection: close) and its answer comes back."""

    def __init__(self, upstream_port: int, token: str):
        self.upstream_port, self.token = upstream_port, token
        self.refused = 0
        self.listener = serve_loopback(self._serve)
        self.port = self.listener.getsockname()[1]

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(1 << 16)
                if not data:
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            sent = re.search(rb"(?im)^authorization:\s*bearer\s+(\S+)\s*$", head)
            if sent is None or sent.group(1).decode() != self.token:
                self.refused += 1
                client.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                upstream.sendall(_closing(head) + rest)
                answer = b""
                while b"\r\n\r\n" not in answer and (data := upstream.recv(1 << 16)):
                    answer += data
                # The answer says the connection closes after it: the client must not keep it for the next request.
                answer_head, _, answer_rest = answer.partition(b"\r\n\r\n")
                client.sendall(_closing(answer_head) + answer_rest)
                while data := upstream.recv(1 << 16):
                    client.sendall(data)

    def close(self) -> None:
        self.listener.close()


def _closing(head: bytes) -> bytes:
    """An HTTP head (without its blank line) with `Connection: close` instead of whatever it said, and the blank
    line."""
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join(lines + [b"Connection: close", b"", b""])


def test_a_renewed_token_is_used_without_a_restart(sample_orthanc, sample, tmp_path):
    relay = TokenCheckingRelay(sample_orthanc.http_port, "first-token")
    token_file = tmp_path / "pacs-token"
    token_file.write_text("first-token\n")
    config = tmp_path / "wadows.toml"
    config.write_text(f'[store]\ntoken_file = "{token_file}"\nretries = 0\n')
    server = ServerProcess(None, tmp_path / "data", tmp_path / "log", [
        "--unauthenticated", "full", "--store-url", f"http://127.0.0.1:{relay.port}/dicom-web",
        "--config", str(config)])
    try:
        first, second = sample[0], next(r for r in sample if r["series_uid"] != sample[0]["series_uid"])
        reply = post(server.endpoint, envelope(rad69_body([doc(first)], [first["transfer_syntax_uid"]])))
        assert registry(reply.envelope())[0] == SUCCESS

        relay.token = "second-token"  # the PACS moves on; the agent has not renewed the file yet
        reply = post(server.endpoint, envelope(rad69_body([doc(second)], [second["transfer_syntax_uid"]])))
        status, errors = registry(reply.envelope())
        assert status == FAILURE and "refused the store's credentials (HTTP 401)" in errors[0]["codeContext"]

        token_file.write_text("second-token\n")  # renewed: the next request carries it
        reply = post(server.endpoint, envelope(rad69_body([doc(second)], [second["transfer_syntax_uid"]])))
        assert registry(reply.envelope())[0] == SUCCESS
        assert list(reply.mtom().parts.values())[0] == second["path"].read_bytes()
        assert "first-token" not in server.log() and "second-token" not in server.log()
    finally:
        server.stop()
        relay.close()


def test_a_token_file_and_fixed_credentials_exclude_each_other(sample_orthanc, tmp_path):
    token_file = tmp_path / "pacs-token"
    token_file.write_text("a-token\n")
    config = tmp_path / "wadows.toml"
    config.write_text(f'[store]\ntoken_file = "{token_file}"\nauth = "Bearer another"\n')
    with pytest.raises(RuntimeError, match="auth and token_file exclude each other"):
        ServerProcess(None, tmp_path / "data", tmp_path / "log", [
            "--store-url", sample_orthanc.dicomweb_url, "--config", str(config)])


@pytest.mark.parametrize("content", [None, "", "two words\n"])
def test_a_token_file_without_a_token_stops_the_start(sample_orthanc, tmp_path, content):
    token_file = tmp_path / "pacs-token"
    if content is not None:
        token_file.write_text(content)
    config = tmp_path / "wadows.toml"
    config.write_text(f'[store]\ntoken_file = "{token_file}"\n')
    with pytest.raises(RuntimeError, match="token_file: .* holds no token that can be read"):
        ServerProcess(None, tmp_path / "data", tmp_path / "log", [
            "--store-url", sample_orthanc.dicomweb_url, "--config", str(config)])
