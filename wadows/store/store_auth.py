"""The credentials the store sends to the PACS (`--store-auth`): HTTP Basic or a bearer token, given once or
kept in a file that something else renews (`[store] token_file`: short-lived OAuth 2.0 tokens).

No kind ever shows its secret in a repr, a log line or an error message.
"""

from __future__ import annotations

import logging
import os
import threading

import requests
from requests.auth import AuthBase, HTTPBasicAuth

log = logging.getLogger(__name__)


class BearerToken(AuthBase):
    """`Authorization: Bearer <token>` on every request (requests drops it on redirects to another host)."""

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerToken(***)"


class BearerTokenFile(AuthBase):
    """`Authorization: Bearer <the token in the file>`, the file read again whenever it changes (an agent that
    renews the token, a mounted secret: replaced in place or by a rename). A file that cannot be read or is empty
    for a moment leaves the last token in use."""

    def __init__(self, path: str):
        self._path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None  # inode, size, mtime of the file the token was read from
        self._token = ""
        self._complained = False
        if not self._refresh():
            raise ValueError(f"[store] token_file: {path} holds no token that can be read")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self._refresh()
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def _refresh(self) -> bool:
        """Read the file again if it changed; whether a token is in use."""
        try:
            info = os.stat(self._path)
            seen = (info.st_ino, info.st_size, info.st_mtime_ns)
            if seen == self._seen:
                return True
            with open(self._path, encoding="utf-8") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            self._complain(f"cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})")
            return bool(self._token)
        if not token or any(c.isspace() for c in token):
            self._complain("holds no single token")
            return bool(self._token)
        with self._lock:
            self._token, self._seen, self._complained = token, seen, False
        return True

    def _complain(self, why: str) -> None:
        if self._token and not self._complained:  # once per trouble, and never the token
            self._complained = True
            log.warning("the PACS token file %s: the last token read is still used", why)

    def __repr__(self) -> str:
        return "BearerTokenFile(***)"


class BasicCredentials(HTTPBasicAuth):
    """HTTP Basic with a repr that names the user only."""

    def __repr__(self) -> str:
        return f"BasicCredentials({self.username!r}, ***)"


def parse_store_auth(text: str | None) -> AuthBase | None:
    """"Bearer TOKEN" gives a bearer token, "user:password" HTTP Basic, None or "" no authentication."""
    if not text:
        return None
    scheme, _, token = text.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return BearerToken(token.strip())
    user, sep, password = text.partition(":")
    if not sep or not user:
        # The text itself is a secret: the message must not quote it.
        raise ValueError("store credentials must be 'user:password' or 'Bearer TOKEN'")
    return BasicCredentials(user, password)
