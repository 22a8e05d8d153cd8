"""Assembling a running server from configuration: store, identity, de-identifier, policy, WSGI app."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from wadows import config as cfg
from wadows.app import WadowsApp
from wadows.deid import Deidentifier, PixelRuleSet, Profile
from wadows.policy.access import AccessPolicy
from wadows.policy.audit import AuditLog
from wadows.policy.metrics import Metrics
from wadows.policy.users import UsersFile
from wadows.soap.endpoint import Limits
from wadows.store.dicomweb import DicomWebStore
from wadows.store.folder import FolderStore, index_folder
from wadows.store.store_auth import BearerTokenFile
from wadows.wado.prepare_ahead import PrepareAhead
from wadows.wado.source import ImagingDocumentSource

INDEX_NAME = "index.sqlite3"
USERS_NAME = "users.jsonl"
AUDIT_NAME = "audit.jsonl"
SPOOL_NAME = "spool"


def _make_data_dir(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise cfg.ConfigError(f"the data dir {data_dir} is not a folder")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cfg.ConfigError(f"the data dir {data_dir} cannot be created ({exc.strerror or type(exc).__name__})") from None


def _store_auth(conf: cfg.Config):
    """[store] auth (fixed credentials), or [store] token_file (a bearer token renewed by something else)."""
    auth, token_file = conf.get("store", "auth") or None, conf.get("store", "token_file")
    if not token_file:
        return auth
    if auth:
        raise cfg.ConfigError("[store] auth and token_file exclude each other: the token file is the credential")
    try:
        return BearerTokenFile(token_file)
    except ValueError as exc:
        raise cfg.ConfigError(str(exc)) from None


def _ca_bundle(path: str) -> str | bool:
    """[store] ca_bundle: the file the PACS's certificate is checked against, or True (the certificates requests
    trusts, REQUESTS_CA_BUNDLE included)."""
    if not path:
        return True
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise cfg.ConfigError(f"[store] ca_bundle: {path} is not a readable file")
    return path


def build_app(conf: cfg.Config, folder: Path | None, data_dir: Path, repository_uid: str | None = None,
              show_progress: bool = False):
    """The application over a folder (indexed incrementally first) or, when `[store] url` is set, over a PACS
    through DICOMweb. Returns (app, a line saying what the store is)."""
    _make_data_dir(data_dir)
    url = conf.get("store", "url")
    if url:
        store = DicomWebStore(url, auth=_store_auth(conf), retries=conf.get("store", "retries"),
                              timeout=(conf.get("store", "connect_timeout"), conf.get("store", "read_timeout")),
                              spool_dir=str(data_dir / SPOOL_NAME),
                              series_bytes=conf.get("store", "series_spool_bytes"),
                              verify=_ca_bundle(conf.get("store", "ca_bundle")))
        summary = f"DICOMweb store at {_without_credentials(url)}"
    else:
        summary = index_folder(folder, data_dir, show_progress=show_progress)
        store = FolderStore(folder, data_dir / INDEX_NAME)
    source = ImagingDocumentSource(
        store=store,
        repository_uid=cfg.repository_uid(data_dir, repository_uid or conf.get("repository", "unique_id")),
        home_community_id=conf.get("repository", "home_community_id") or None,
        deidentifier=build_deidentifier(conf, data_dir),
        max_documents=conf.get("server", "max_documents"),
    )
    if conf.get("server", "prepare_ahead") and source.deidentifier is not None and isinstance(store, FolderStore):
        source.prepare_ahead = PrepareAhead(source.deidentifier, store)
    limits = Limits(max_request_bytes=conf.get("server", "max_request_bytes"),
                    max_xml_depth=conf.get("server", "max_xml_depth"))
    app = WadowsApp(source, limits, public_url=conf.get("server", "public_url"),
                    policy=build_policy(conf, data_dir), audit=build_audit(conf, data_dir),
                    metrics=Metrics(), basic_over_http=conf.get("policy", "basic_over_http"))
    return app, summary


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()


def users_file(conf: cfg.Config, data_dir: Path) -> Path:
    return Path(conf.get("policy", "users_file") or data_dir / USERS_NAME)


def build_policy(conf: cfg.Config, data_dir: Path) -> AccessPolicy:
    settings = conf.section("policy")
    settings.pop("basic_over_http", None)
    settings.pop("users_file", None)
    try:
        return AccessPolicy.from_mapping(settings, UsersFile(users_file(conf, data_dir)))
    except ValueError as exc:
        raise cfg.ConfigError(str(exc)) from None


def build_audit(conf: cfg.Config, data_dir: Path) -> AuditLog:
    """The audit trail (on by default), its UIDs hashed with a key of its own kept in the data dir."""
    configured = conf.get("audit", "file")
    if configured == "off":
        return AuditLog(None, b"")
    key = cfg.kept_secret(data_dir / "audit.key")
    return AuditLog(Path(configured or data_dir / AUDIT_NAME), key)


def build_deidentifier(conf: cfg.Config, data_dir: Path) -> Deidentifier:
    """The profile, key and pixel rules of the [anonymize] section (key generated into data_dir if absent)."""
    settings = conf.section("anonymize")
    key = cfg.anonymization_key(data_dir, settings.pop("key", None))
    rules = settings.pop("pixel_rules", [])
    try:
        profile = Profile.from_mapping(settings)
        pixel_rules = PixelRuleSet.from_mapping(rules)
    except ValueError as exc:
        raise cfg.ConfigError(f"[anonymize]: {exc}") from None
    return Deidentifier(profile, key, pixel_rules)
