"""Assembling a running server from configuration: store, identity, de-identifier, WSGI app."""

from __future__ import annotations

from pathlib import Path

from wadows import config as cfg
from wadows.app import WadowsApp
from wadows.deid import Deidentifier, PixelRuleSet, Profile
from wadows.soap.endpoint import Limits
from wadows.store.folder import FolderStore, index_folder
from wadows.wado.source import ImagingDocumentSource

INDEX_NAME = "index.sqlite3"


def build_app(conf: cfg.Config, folder: Path, data_dir: Path, repository_uid: str | None = None,
              show_progress: bool = False):
    """Index the folder (incrementally), then build the application. Returns (app, index summary)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    summary = index_folder(folder, data_dir, show_progress=show_progress)
    store = FolderStore(folder, data_dir / INDEX_NAME)
    source = ImagingDocumentSource(
        store=store,
        repository_uid=cfg.repository_uid(data_dir, repository_uid or conf.get("repository", "unique_id")),
        home_community_id=conf.get("repository", "home_community_id") or None,
        deidentifier=build_deidentifier(conf, data_dir),
        max_documents=conf.get("server", "max_documents"),
    )
    limits = Limits(max_request_bytes=conf.get("server", "max_request_bytes"),
                    max_xml_depth=conf.get("server", "max_xml_depth"))
    return WadowsApp(source, limits, public_url=conf.get("server", "public_url")), summary


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
