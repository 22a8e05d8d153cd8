"""What the transport tells about a caller: HTTP Basic credentials and the TLS client certificate.

Input is a plain WSGI environ. Under gunicorn with TLS, `environ["gunicorn.socket"]` is the ssl.SSLSocket of the
connection; its getpeercert() is the verified client certificate (the server's CA file decides what verifies).
Request headers never count as a certificate: a proxy's X-SSL-Client-* headers could be sent by anyone.
"""

from __future__ import annotations

import binascii

# Real Basic headers are under 300 bytes; gunicorn caps a header at 8190. Decoding stops well before.
_MAX_BASIC_HEADER = 4096

# Sent with 401 answers (RFC 7617): the charset parameter tells clients we read user-id:password as UTF-8.
WWW_AUTHENTICATE = 'Basic realm="wadows", charset="UTF-8"'

_SHORT_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
                "localityName": "L", "stateOrProvinceName": "ST", "emailAddress": "emailAddress",
                "domainComponent": "DC", "serialNumber": "serialNumber"}


class AuthenticationFailed(Exception):
    """The caller presented credentials that do not hold: the transport answers 401 (with WWW_AUTHENTICATE) or a
    SOAP Sender fault. The text says why in general terms and never repeats the credentials."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def is_tls(environ: dict) -> bool:
    """True when the request came over TLS (as the WSGI server reports it; behind a proxy, only if the server
    trusts the proxy's forwarded scheme)."""
    return environ.get("wsgi.url_scheme") == "https"


def basic_credentials(environ: dict) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic` header; None when there is no Authorization header.
    Any other Authorization header (another scheme, bad base64, no ':', not UTF-8) raises AuthenticationFailed:
    a client that meant to authenticate must not be served silently as anonymous."""
    header = environ.get("HTTP_AUTHORIZATION")
    if header is None:
        return None
    if len(header) > _MAX_BASIC_HEADER:
        raise AuthenticationFailed("Authorization header too long")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise AuthenticationFailed("only HTTP Basic authentication is supported")
    try:
        decoded = binascii.a2b_base64(token.strip().encode("ascii"), strict_mode=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise AuthenticationFailed("malformed Basic credentials") from None
    user, colon, password = decoded.partition(":")
    if not colon or not user:
        raise AuthenticationFailed("malformed Basic credentials")
    return user, password


def certificate_name(environ: dict) -> str | None:
    """The verified client certificate's subject CN (the last one if several), or the whole subject as
    "C=.., O=.." when it has no CN; None when the connection is not TLS or the client sent no certificate."""
    sock = environ.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        cert = getpeercert()
    except (ValueError, OSError):  # handshake not done or connection gone: no certificate to speak of
        return None
    if not cert:  # None: no certificate sent; {}: sent but not verified (CERT_NONE)
        return None
    pairs = [(key, value) for rdn in cert.get("subject", ()) for key, value in rdn]
    names = [value for key, value in pairs if key == "commonName" and value]
    if names:
        return names[-1]
    subject = ", ".join(f"{_SHORT_NAMES.get(key, key)}={_escape(value)}" for key, value in pairs)
    return subject or None


def _escape(value: str) -> str:
    # Enough of RFC 4514 that a configured subject string can be matched without ambiguity.
    return "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
