"""The credentials the store sends to the PACS (`--store-auth`): HTTP Basic or a bearer token.

Neither kind ever shows its secret in a repr, a log line or an error message.
"""

from __future__ import annotations

import requests
from requests.auth import AuthBase, HTTPBasicAuth


class BearerToken(AuthBase):
    """`Authorization: Bearer <token>` on every request (requests drops it on redirects to another host)."""

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerToken(***)"


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
