"""identify(): Basic users, TLS client certificates over a real loopback connection, and anonymous callers."""

from __future__ import annotations

import base64
import contextlib
import queue
import socket
import ssl
import threading

import pytest
import trustme

from wadows.policy.access import AccessPolicy, AuthenticationFailed, Caller, is_tls
from wadows.policy.credentials import certificate_name
from wadows.policy.users import UsersFile

PASSWORD = "s3cret:with:colons"


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    users = UsersFile(tmp_path_factory.mktemp("policy") / "users.jsonl")
    users.add("alice", PASSWORD)
    users.add("bob", "bob's password")
    return users


def basic(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}", "wsgi.url_scheme": "https"}


@pytest.mark.parametrize("setting, allowed, originals", [
    ("anonymized", True, False), ("deny", False, False), ("full", True, True)])
def test_anonymous_caller_per_setting(users, setting, allowed, originals):
    policy = AccessPolicy(unauthenticated=setting, users=users)
    assert policy.identify({"wsgi.url_scheme": "http"}) == Caller("anonymous", None, allowed, originals)


def test_default_is_anonymized_without_originals():
    assert AccessPolicy().identify({}) == Caller("anonymous", None, True, False)


@pytest.mark.parametrize("setting", ["anonymized", "deny", "full"])
def test_user_with_and_without_originals(users, setting):
    policy = AccessPolicy(unauthenticated=setting, original_users=["alice"], users=users)
    assert policy.identify(basic("alice", PASSWORD)) == Caller("user", "alice", True, True)
    assert policy.identify(basic("bob", "bob's password")) == Caller("user", "bob", True, False)


def test_star_gives_every_user_originals(users):
    policy = AccessPolicy(original_users=["*"], users=users)
    assert policy.identify(basic("bob", "bob's password")).originals


@pytest.mark.parametrize("user, password", [("alice", "not-it"), ("alice", PASSWORD[:-1]), ("mallory", PASSWORD),
                                            ("Alice", PASSWORD), ("alice", "")])
def test_bad_credentials_fail_without_echoing_them(users, user, password):
    policy = AccessPolicy(unauthenticated="full", users=users)  # even a fully open server refuses bad credentials
    with pytest.raises(AuthenticationFailed) as info:
        policy.identify(basic(user, password))
    assert password not in str(info.value) or not password


@pytest.mark.parametrize("header", [
    "Basic !!!not base64!!!", "Basic " + base64.b64encode(b"no colon").decode(),
    "Basic " + base64.b64encode(b":password only").decode(), "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    "Basic", "Bearer abc.def.ghi", "Digest username=alice", "Basic " + "A" * 5000])
def test_malformed_authorization_is_a_failure_not_anonymous(users, header):
    with pytest.raises(AuthenticationFailed):
        AccessPolicy(users=users).identify({"HTTP_AUTHORIZATION": header})


def test_basic_without_users_file_fails():
    with pytest.raises(AuthenticationFailed):
        AccessPolicy().identify(basic("alice", PASSWORD))


def test_scheme_is_case_insensitive(users):
    env = basic("alice", PASSWORD)
    env["HTTP_AUTHORIZATION"] = env["HTTP_AUTHORIZATION"].replace("Basic", "bASIC")
    assert AccessPolicy(users=users).identify(env).name == "alice"


def test_is_tls():
    assert is_tls({"wsgi.url_scheme": "https"})
    assert not is_tls({"wsgi.url_scheme": "http"}) and not is_tls({})


# -- configuration


def test_from_mapping_defaults_and_values(users):
    assert AccessPolicy.from_mapping({}, None).identify({}) == Caller("anonymous", None, True, False)
    policy = AccessPolicy.from_mapping({"unauthenticated": "deny", "original_users": "alice, bob",
                                        "original_certificates": ["modality-1"], "users_file": "x"}, users)
    assert policy.unauthenticated == "deny"
    assert policy.original_users == {"alice", "bob"} and policy.original_certificates == {"modality-1"}


@pytest.mark.parametrize("table, fragment", [
    ({"unauthenticated": "open"}, "policy.unauthenticated"),
    ({"unauthenticated": 1}, "policy.unauthenticated"),
    ({"anonymous": "deny"}, "unknown setting policy.anonymous"),
    ({"original_users": [1]}, "policy.original_users"),
    ({"original_users": ["a:b"]}, "'a:b' is not a valid user name"),
    ({"original_certificates": [""]}, "policy.original_certificates"),
])
def test_from_mapping_errors_are_clear(users, table, fragment):
    with pytest.raises(ValueError, match=fragment):
        AccessPolicy.from_mapping(table, users)


def test_original_users_need_a_users_file():
    with pytest.raises(ValueError, match="no users file"):
        AccessPolicy.from_mapping({"original_users": ["alice"]}, None)


# -- TLS client certificates, on a real loopback connection


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@contextlib.contextmanager
def tls_connection(ca, client_cert=None):
    """Yield the server side SSLSocket of a loopback TLS connection (what gunicorn puts in gunicorn.socket)."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: queue.Queue = queue.Queue()
    done = threading.Event()

    def serve():
        conn, _ = listener.accept()
        try:
            accepted.put(server_ctx.wrap_socket(conn, server_side=True))
        except Exception as exc:  # handshake failure: hand it to the test
            accepted.put(exc)
        done.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    if client_cert is not None:
        client_cert.configure_cert(client_ctx)
    raw = socket.create_connection(listener.getsockname())
    client = client_ctx.wrap_socket(raw, server_hostname="localhost")
    try:
        server_side = accepted.get(timeout=10)
        if isinstance(server_side, Exception):
            raise server_side
        try:
            yield server_side
        finally:
            server_side.close()
    finally:
        done.set()
        client.close()
        listener.close()
        thread.join(10)


def test_client_certificate_cn(ca):
    cert = ca.issue_cert("modality-1.example", common_name="modality-1")
    policy = AccessPolicy(original_certificates=["modality-1"])
    with tls_connection(ca, cert) as sock:
        assert isinstance(sock, ssl.SSLSocket)
        caller = policy.identify({"gunicorn.socket": sock, "wsgi.url_scheme": "https"})
    assert caller == Caller("certificate", "modality-1", True, True)


def test_client_certificate_without_originals_still_allowed_when_anonymous_denied(ca):
    cert = ca.issue_cert("viewer.example", common_name="viewer")
    policy = AccessPolicy(unauthenticated="deny", original_certificates=["modality-1"])
    with tls_connection(ca, cert) as sock:
        assert policy.identify({"gunicorn.socket": sock}) == Caller("certificate", "viewer", True, False)
        assert AccessPolicy(original_certificates=["*"]).identify({"gunicorn.socket": sock}).originals


def test_certificate_without_cn_is_named_by_its_subject(ca):
    cert = ca.issue_cert("nocn.example", organization_name="Example Hospital", organization_unit_name="Radiology")
    with tls_connection(ca, cert) as sock:
        caller = AccessPolicy().identify({"gunicorn.socket": sock})
    assert caller.kind == "certificate"
    assert caller.name == "O=Example Hospital, OU=Radiology"


@pytest.mark.parametrize("setting, allowed", [("anonymized", True), ("deny", False)])
def test_tls_without_client_certificate_is_anonymous(ca, setting, allowed):
    with tls_connection(ca) as sock:
        assert sock.getpeercert() is None
        caller = AccessPolicy(unauthenticated=setting).identify({"gunicorn.socket": sock, "wsgi.url_scheme": "https"})
    assert caller == Caller("anonymous", None, allowed, False)


def test_certificate_from_another_ca_never_reaches_identify(ca):
    stranger = trustme.CA().issue_cert("evil.example", common_name="modality-1")
    with pytest.raises(ssl.SSLError):
        with tls_connection(ca, stranger):
            pass


def test_basic_credentials_win_over_a_certificate(ca, users):
    cert = ca.issue_cert("modality-1.example", common_name="modality-1")
    policy = AccessPolicy(original_certificates=["modality-1"], users=users)
    with tls_connection(ca, cert) as sock:
        env = {**basic("bob", "bob's password"), "gunicorn.socket": sock}
        assert policy.identify(env) == Caller("user", "bob", True, False)
        env = {**basic("bob", "not-it"), "gunicorn.socket": sock}
        with pytest.raises(AuthenticationFailed):  # no fallback to the certificate
            policy.identify(env)


def test_plain_socket_and_unverified_certificate_are_no_certificate():
    a, b = socket.socketpair()
    with a, b:
        assert certificate_name({"gunicorn.socket": a}) is None

    class Unverified:  # what getpeercert() returns under CERT_NONE
        def getpeercert(self):
            return {}

    class Closed:
        def getpeercert(self):
            raise ValueError("handshake not done")

    assert certificate_name({"gunicorn.socket": Unverified()}) is None
    assert certificate_name({"gunicorn.socket": Closed()}) is None
    assert certificate_name({}) is None


def test_several_cns_take_the_last_and_subject_values_are_escaped():
    class Peer:
        def __init__(self, subject):
            self.subject = subject

        def getpeercert(self):
            return {"subject": self.subject}

    two = ((("commonName", "outer"),), (("organizationName", "X"),), (("commonName", "inner"),))
    assert certificate_name({"gunicorn.socket": Peer(two)}) == "inner"
    tricky = ((("organizationName", "Acme, Inc."),), (("countryName", "DE"),))
    assert certificate_name({"gunicorn.socket": Peer(tricky)}) == "O=Acme\\, Inc., C=DE"
