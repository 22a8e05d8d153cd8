"""Configuration: a TOML file, overridden by WADOWS_<SECTION>_<KEY> environment variables, overridden by the
command line. Secrets (the anonymization key) are never logged or printed."""

from __future__ import annotations

import os
import secrets
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

# Every section and key the server knows, with its default. [anonymize] is handed to the de-identification
# profile, which checks its own keys.
DEFAULTS: dict[str, dict[str, Any]] = {
    "server": {
        "host": "127.0.0.1",
        "port": 8080,
        "workers": 1,
        "threads": 8,
        "public_url": "",          # base URL written into the WSDL when behind a proxy, e.g. https://pacs-gw.example
        "max_request_bytes": 10 * 1024 * 1024,
        "max_xml_depth": 64,
        "max_documents": 10_000,
        "prepare_ahead": True,     # a helper process per worker prepares half of a large anonymized request
        "forwarded_allow_ips": [],  # proxies whose X-Forwarded-Proto is believed (TLS terminated there)
    },
    "store": {
        "folder": "",
        "url": "",                 # a DICOMweb root instead of a folder, e.g. http://pacs:8042/dicom-web
        "auth": "",                # "user:password" or "Bearer TOKEN" (never logged)
        "token_file": "",          # a file holding a bearer token that something else renews (read when it changes)
        "ca_bundle": "",           # PEM file of the CA(s) that signed an https PACS's certificate (in-house CA)
        "connect_timeout": 3.05,   # seconds
        "read_timeout": 30.0,      # the longest silence tolerated from the PACS, not a whole transfer
        "retries": 2,              # further tries after a connection failure or HTTP 502/503/504
        "series_spool_bytes": 4 << 30,  # local copies of whole series one request may keep (data dir/spool); 0: off
    },
    "repository": {
        "unique_id": "",           # default: generated once, kept in the data dir
        "home_community_id": "",   # set when the server answers XCA-I requests for a community
    },
    "anonymize": {},
    "policy": {
        "unauthenticated": "anonymized",   # anonymized | deny | full (a closed network: everyone trusted)
        "original_users": [],              # users who may receive originals; ["*"] = every authenticated user
        "original_certificates": [],       # client certificate CNs who may; ["*"] = any the CA accepts
        "users_file": "",                  # default: <data dir>/users.jsonl (wadows user add)
        "basic_over_http": False,          # accept Basic credentials without TLS (a TLS-terminating proxy)
    },
    "tls": {
        "cert": "",
        "key": "",
        "client_ca": "",                   # CA bundle for client certificates (optional)
    },
    "audit": {
        "file": "",                        # default: <data dir>/audit.jsonl; "off" disables the trail
    },
}


class ConfigError(ValueError):
    """A configuration problem, named so that the operator can fix it."""


@dataclass
class Config:
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        return self.sections.get(section, {}).get(key, DEFAULTS.get(section, {}).get(key))

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections.get(name, {}))


def load(path: Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    sections: dict[str, dict[str, Any]] = {name: {} for name in DEFAULTS}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"configuration file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
        for name, table in data.items():
            if name not in DEFAULTS:
                raise ConfigError(f"unknown section [{name}] in {path} (known: {', '.join(DEFAULTS)})")
            if not isinstance(table, dict):
                raise ConfigError(f"[{name}] in {path} must be a table")
            sections[name].update(table)
    for var, raw in environ.items():
        if not var.startswith("WADOWS_"):
            continue
        section, _, key = var[len("WADOWS_"):].lower().partition("_")
        if section in DEFAULTS and key:
            text = isinstance(DEFAULTS[section].get(key), str) or (section, key) in _TEXT_SETTINGS
            sections[section][key] = raw if text else _env_value(raw)
    for name, table in sections.items():
        known = DEFAULTS[name]
        if known:
            for key, value in table.items():
                if key not in known:
                    raise ConfigError(f"unknown setting {name}.{key} (known: {', '.join(known)})")
                _check_type(name, key, value, known[key])
    return Config(sections)


# Text settings of the sections whose keys are checked elsewhere: an environment value stays text even when it
# reads as a number (a key of digits must not become an int).
_TEXT_SETTINGS = {("anonymize", "key")}


def _env_value(raw: str) -> Any:
    # Environment values are read as TOML literals when they are one (numbers, booleans, arrays), else as text.
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _check_type(section: str, key: str, value: Any, default: Any) -> None:
    expected = type(default)
    if expected is list and isinstance(value, str):
        return  # from an environment variable: "alice,bob"
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{section}.{key} must be {expected.__name__}, not {type(value).__name__}")


def repository_uid(data_dir: Path, configured: str | None) -> str:
    """The RepositoryUniqueId: configured, or generated once and kept so it survives restarts."""
    if configured:
        return configured
    return _kept_value(data_dir / "repository-uid", lambda: f"2.25.{uuid.uuid4().int}")


def anonymization_key(data_dir: Path, configured: str | None) -> bytes:
    """The secret behind UID remapping and date shifting: configured, or generated once (mode 0600)."""
    if configured is not None and not isinstance(configured, str):
        raise ConfigError("anonymize.key must be text: quote it in the configuration file")
    if configured:
        return configured.encode("utf-8")
    return kept_secret(data_dir / "anonymization.key")


def kept_secret(path: Path) -> bytes:
    """A random secret generated once into `path` (mode 0600) and read back ever after."""
    return _kept_value(path, lambda: secrets.token_hex(32)).encode("ascii")


def _kept_value(path: Path, make) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(make() + "\n")
    return path.read_text().strip()
