"""Who is calling and what they may have (DESIGN §6; PS3.18 §8.1.7 note 1: unknown callers get anonymized data
or nothing). Basic credentials win over a client certificate; with neither the caller is anonymous.

Basic credentials over plain HTTP, where anyone on the path can read them, are refused by the application
(wadows.app) unless configured otherwise; `is_tls(environ)` is what it asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from wadows.policy.credentials import AuthenticationFailed, basic_credentials, certificate_name, is_tls
from wadows.policy.users import NAME_PATTERN, UsersFile

__all__ = ["AccessPolicy", "AuthenticationFailed", "Caller", "POLICY_DEFAULTS", "UNAUTHENTICATED", "is_tls"]

ANONYMOUS, USER, CERTIFICATE = "anonymous", "user", "certificate"
UNAUTHENTICATED = ("anonymized", "deny", "full")
ANY = "*"

# The [policy] table of the configuration file. users_file is opened by the caller of from_mapping.
POLICY_DEFAULTS: dict[str, Any] = {
    "unauthenticated": "anonymized",   # anonymized | deny | full (full: a closed network, everyone trusted)
    "original_users": [],              # user names that may receive originals; "*" = every authenticated user
    "original_certificates": [],       # certificate CNs (or subjects) that may receive originals; "*" = any
    "users_file": "",                  # path of the users file (wadows user add)
}


@dataclass(frozen=True)
class Caller:
    kind: str            # "anonymous" | "user" | "certificate"
    name: str | None     # user name, or the certificate subject's CN (or full subject string)
    allowed: bool        # may use the service at all
    originals: bool      # may receive objects that are not anonymized


class AccessPolicy:
    def __init__(self, unauthenticated: str = "anonymized", original_users: Iterable[str] = (),
                 original_certificates: Iterable[str] = (), users: UsersFile | None = None):
        if unauthenticated not in UNAUTHENTICATED:
            raise ValueError(f"policy.unauthenticated must be one of {', '.join(UNAUTHENTICATED)}, "
                             f"not {unauthenticated!r}")
        self.unauthenticated = unauthenticated
        self.original_users = frozenset(original_users)
        self.original_certificates = frozenset(original_certificates)
        self.users = users
        for name in self.original_users - {ANY}:
            if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
                raise ValueError(f"policy.original_users: {name!r} is not a valid user name")
        for name in self.original_certificates:
            if not isinstance(name, str) or not name:
                raise ValueError("policy.original_certificates: entries must be non-empty strings")
        if self.original_users and users is None:
            raise ValueError("policy.original_users names users but no users file is configured (policy.users_file)")

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any] | None, users: UsersFile | None) -> AccessPolicy:
        """From the TOML [policy] table (see POLICY_DEFAULTS). Lists may also be given as one comma-separated
        string, which is what an environment variable yields."""
        m = dict(m or {})
        unknown = sorted(set(m) - set(POLICY_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown setting policy.{unknown[0]} (known: {', '.join(POLICY_DEFAULTS)})")
        unauthenticated = m.get("unauthenticated", POLICY_DEFAULTS["unauthenticated"])
        if not isinstance(unauthenticated, str):
            raise ValueError("policy.unauthenticated must be a string")
        return cls(unauthenticated.strip().lower(), _names(m, "original_users"), _names(m, "original_certificates"),
                   users)

    def identify(self, environ: dict) -> Caller:
        """The caller of this request. Raises AuthenticationFailed for Basic credentials that are malformed,
        of an unknown user or with a wrong password. A not-allowed anonymous caller should get a 401 (with
        credentials.WWW_AUTHENTICATE) or a Sender fault from the transport."""
        credentials = basic_credentials(environ)
        if credentials is not None:
            name, password = credentials
            if self.users is None or not self.users.verify(name, password):
                raise AuthenticationFailed("unknown user or wrong password")
            return Caller(USER, name, True, ANY in self.original_users or name in self.original_users)
        subject = certificate_name(environ)
        if subject is not None:
            return Caller(CERTIFICATE, subject, True,
                          ANY in self.original_certificates or subject in self.original_certificates)
        return Caller(ANONYMOUS, None, self.unauthenticated != "deny", self.unauthenticated == "full")


def _names(m: Mapping[str, Any], key: str) -> list[str]:
    value = m.get(key, [])
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"policy.{key} must be a list of strings")
    return list(value)
