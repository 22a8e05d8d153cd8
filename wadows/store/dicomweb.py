"""A store in front of a real PACS, over DICOMweb: QIDO-RS finds instances, WADO-RS fetches them.

Tested against Orthanc 1.10 with its DICOMweb plugin 1.7 (Debian bookworm); only standard DICOMweb is
needed, with two shortcuts when the server is an Orthanc (see orthanc_rest). What the server must do:
- QIDO-RS at {base}/instances, {base}/studies/{st}/instances, {base}/studies/{st}/series/{se}/instances;
- WADO-RS of one instance as `multipart/related; type="application/dicom"` with `transfer-syntax=*`, which
  asks for the object as stored. Orthanc then sends the uploaded file byte for byte (without the
  parameter it converts to Explicit VR Little Endian).
- For a request of many instances of a series (local_copies): WADO-RS of the series, the same way. A server
  that refuses it costs one failed request per series, then each instance is fetched alone.

A record's transfer syntax comes from the QIDO-RS answer when the server gives Available Transfer Syntax
UID (0008,3002) with one value, else from the local copy of the object when the request fetched its series,
else from Orthanc's REST API when the server is an Orthanc, else from the first bytes of the object itself.
Sizes are unknown (None) unless those first bytes came with a length.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import BinaryIO
from urllib.parse import quote

import requests
from requests.auth import AuthBase

from wadows import logs
from wadows.store.base import InstanceGone, InstanceRecord, StoreError, StoreUnavailable
from wadows.store.dicom_json import (INSTANCE_FIELDS, NUMBER_OF_STUDY_RELATED_INSTANCES, SERIES_UID,
                                     SOP_INSTANCE_UID, STUDY_UID, ListedInstance, integer_value, listed_instance)
from wadows.store.dicom_part import dicom_part
from wadows.store.local_copies import LocalCopies
from wadows.store.meta_prefix import MetaIncomplete, transfer_syntax_in
from wadows.store.orthanc_rest import OrthancRest
from wadows.store.pacs_http import PacsHttp
from wadows.store.recent import RecentAnswers
from wadows.store.series_fetch import WADO_ACCEPT, fetch_series
from wadows.store.series_spool import LocalCopy, SeriesSpool
from wadows.store.spool import spool
from wadows.store.store_auth import parse_store_auth

QIDO_ACCEPT = "application/dicom+json, application/json"
QIDO_PAGE = 1000  # results asked per QIDO-RS request; servers may cap lower, paging carries on
META_PREFIX_LIMIT = 1 << 20  # a file meta group longer than this is not one
SERIES_SIZE = "00201209"  # Number of Series Related Instances
SERIES_MIN_WANTED = 2  # one instance alone is fetched alone: a series request would buy nothing
_UNKNOWN = object()

log = logging.getLogger(__name__)


class DicomWebStore:
    """The Store protocol over DICOMweb. Safe to share between threads; each process builds its own pool."""

    def __init__(self, base_url: str, auth: AuthBase | str | None = None,
                 timeout: tuple[float, float] = (3.05, 30.0), retries: int = 2,
                 spool_threshold: int = 16 << 20, pool_size: int = 16, cache_ttl: float = 30.0,
                 cache_entries: int = 20_000, chunk_size: int = 256 << 10, spool_dir: str | None = None,
                 verify: bool | str = True, orthanc_url: str | None = None, detect_orthanc: bool = True,
                 series_bytes: int = 4 << 30):
        """base_url: the DICOMweb root (Orthanc: http://host:8042/dicom-web). auth: a requests auth object, or
        the `--store-auth` text ("user:password" or "Bearer TOKEN"). timeout: (connect, read) seconds, read
        being the longest silence tolerated, not a limit on a whole transfer. retries: further tries after a
        connection failure or HTTP 502/503/504. spool_threshold: bytes of a fetched object kept in memory
        before it moves to a temporary file in spool_dir (default: the system's). verify: TLS certificate
        checking, True, False or a CA bundle path. pool_size: keep-alive connections shared by the threads (one
        per server thread is right). cache_ttl/cache_entries: how long and how many located records are
        trusted without asking again. orthanc_url: Orthanc's REST root, when it is not base_url without
        "/dicom-web" (detect_orthanc=False never looks for one). series_bytes: what the local copies of one
        request may take on disk, in spool_dir (0: never fetch a series whole; see local_copies)."""
        if isinstance(auth, str):
            auth = parse_store_auth(auth)
        self.base_url = base_url.rstrip("/")
        self.spool_threshold = spool_threshold
        self.spool_dir = spool_dir
        self.series_bytes = series_bytes
        self.chunk_size = chunk_size
        self.http = PacsHttp(auth, timeout, retries, pool_size=pool_size, verify=verify)
        self._recent: RecentAnswers[str, InstanceRecord] = RecentAnswers(cache_entries, cache_ttl)
        self._orthanc_lock = threading.Lock()
        self._orthanc: OrthancRest | None | object = (
            OrthancRest(self.http, orthanc_url) if orthanc_url else _UNKNOWN if detect_orthanc else None)

    # ---- the Store protocol --------------------------------------------------------------------

    def locate(self, sop_instance_uid: str) -> InstanceRecord | None:
        """The instance's record, or None when the PACS does not hold it. Raises StoreUnavailable when the
        PACS cannot be asked, StoreError when it answers nonsense."""
        known = self._recent.get(sop_instance_uid)
        if known is not None:
            return known
        items = self._qido(f"{self.base_url}/instances", {"SOPInstanceUID": sop_instance_uid}, paged=False)
        for listed in items:
            if listed.sop_instance_uid == sop_instance_uid:  # a server that ignores the filter lists others
                try:
                    return self._remember(self._record(listed))
                except InstanceGone:  # deleted since the query answered
                    return None
        return None

    def locate_series(self, study_uid: str, series_uid: str) -> dict[str, InstanceRecord]:
        """Every instance of a series by SOP Instance UID, with one QIDO-RS request (paged for big series);
        locate() and available() then answer from memory for cache_ttl seconds."""
        return {record.sop_instance_uid: record for record in self.instances(study_uid, series_uid)}

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        return self._records(self._listing(study_uid, series_uid))

    def local_copies(self, wanted: Iterable[tuple[str, str, str]]) -> LocalCopies:
        """This store as one request sees it. wanted: (study, series, SOP instance) UIDs of the documents the
        request will open. A series of which two or more instances, and at least half, are wanted is fetched
        whole with one WADO-RS request into local copies, at most series_bytes for the request. A series with
        wanted instances not copied is then listed (as locate_series does), and those are fetched one at a
        time, as ever. Never raises: the documents report the store's failures."""
        by_series: dict[tuple[str, str], set[str]] = {}
        for study, series, sop in wanted:
            by_series.setdefault((study, series), set()).add(sop)
        spool, records = None, {}
        try:
            for (study, series), sops in by_series.items():
                listing = None
                if self.series_bytes > 0 and len(sops) >= SERIES_MIN_WANTED:
                    size = self._series_size(study, series)
                    if size is None:  # the server does not say: count a listing (its records are wanted anyway)
                        listing = self._listing(study, series)
                        size = len(listing)
                    if 0 < size <= 2 * len(sops):
                        spool = spool or self._new_spool()
                        if spool is not None and spool.has_room():
                            url = f"{self.base_url}/studies/{_path(study)}/series/{_path(series)}"
                            fetch_series(self.http, url, study, series, sops, spool)
                copies = {sop: copy for sop in sops if spool is not None and (copy := spool.copy(sop)) is not None}
                records.update((sop, _copied_record(copy)) for sop, copy in copies.items())
                if len(copies) < len(sops):  # the others are looked up in one listing, as locate_series does
                    self._records(listing if listing is not None else self._listing(study, series))
        except StoreUnavailable:
            pass  # the PACS is down: each document will say so
        except StoreError as exc:
            log.info("looking up a series failed (%s): the documents are looked up one by one", exc)
        except Exception as exc:  # noqa: BLE001 - a case the series path does not foresee: one by one instead
            log.warning("fetching a series failed: %s at %s; the documents are fetched one by one",
                        type(exc).__name__, logs.where(exc))
        return LocalCopies(self, spool, records)

    def available(self, record: InstanceRecord) -> int | None:
        """None or the exact size the next open() will give. A record located moments ago is taken as still
        there; otherwise one QIDO-RS request checks. InstanceGone, StoreUnavailable, StoreError otherwise."""
        if self._recent.get(record.sop_instance_uid) == record:
            return record.size
        url = (f"{self.base_url}/studies/{_path(record.study_uid)}/series/{_path(record.series_uid)}"
               f"/instances")
        try:
            items = self._qido(url, {"SOPInstanceUID": record.sop_instance_uid}, paged=False)
        except InstanceGone:
            items = []
        if not any(listed.sop_instance_uid == record.sop_instance_uid for listed in items):
            self._recent.forget(record.sop_instance_uid)
            raise InstanceGone("the PACS no longer has the instance")
        self._remember(record)
        return record.size

    def open(self, record: InstanceRecord) -> BinaryIO:
        """The object as the PACS stores it, fetched whole into a spool (memory, then a temporary file) and
        returned seekable at offset 0; it has no fileno() (see spool). Raises StoreError."""

        def fetch(response: requests.Response) -> BinaryIO:
            part = dicom_part(response, self.chunk_size)
            return spool(part.chunks, self.spool_threshold, part.declared_length, self.spool_dir)

        try:
            return self.http.get(f"{self.base_url}/{record.locator}", fetch, accept=WADO_ACCEPT, compressed=False)
        except InstanceGone:
            self._recent.forget(record.sop_instance_uid)
            raise InstanceGone("the PACS no longer has the instance (HTTP 404)") from None

    def count(self) -> int:
        """Exact on an Orthanc (its /statistics); elsewhere the sum of Number of Study Related Instances
        (0020,1208) over all studies, one paged QIDO-RS listing: approximate where a server leaves it out."""
        orthanc = self._orthanc_rest()
        if orthanc is not None:
            return orthanc.instance_count()
        total = 0
        for item in self._qido_pages(f"{self.base_url}/studies", {"includefield": NUMBER_OF_STUDY_RELATED_INSTANCES},
                                     key=STUDY_UID):
            total += integer_value(item, NUMBER_OF_STUDY_RELATED_INSTANCES) or 0
        return total

    def health(self) -> int | None:
        """Orthanc's instance count (one cheap REST call); elsewhere one QIDO-RS request for a single study, and
        no count: count() lists every study, which a load balancer's probe every few seconds must not cause."""
        orthanc = self._orthanc_rest()
        if orthanc is not None:
            return orthanc.instance_count()
        self._qido_page(f"{self.base_url}/studies", {"limit": "1"})
        return None

    # ---- records --------------------------------------------------------------------------------

    def _listing(self, study_uid: str, series_uid: str | None) -> list[ListedInstance]:
        url = f"{self.base_url}/studies/{_path(study_uid)}"
        url += f"/series/{_path(series_uid)}/instances" if series_uid else "/instances"
        try:
            items = self._qido(url, {}, paged=True)
        except InstanceGone:  # QIDO-RS on an unknown study or series
            return []
        return [listed for listed in items if listed.study_uid == study_uid
                and (not series_uid or listed.series_uid == series_uid)]

    def _records(self, listing: list[ListedInstance]) -> list[InstanceRecord]:
        records = []
        for listed in listing:
            known = self._recent.get(listed.sop_instance_uid)
            if known is None or (known.study_uid, known.series_uid) != (listed.study_uid, listed.series_uid):
                try:
                    known = self._remember(self._record(listed))
                except InstanceGone:  # deleted since the query answered
                    continue
            records.append(known)
        return records

    def _series_size(self, study_uid: str, series_uid: str) -> int | None:
        """Number of Series Related Instances, from one series-level QIDO-RS request (5 ms on Orthanc, where
        listing 200 instances takes 0.4 s); None when the server does not give it."""
        url = f"{self.base_url}/studies/{_path(study_uid)}/series"
        try:
            items = self._qido_page(url, {"SeriesInstanceUID": series_uid, "includefield": SERIES_SIZE})
        except StoreUnavailable:
            raise
        except StoreError:  # refused or not understood: a listing will tell
            return None
        sizes = [integer_value(item, SERIES_SIZE) for item in items if _values(item, SERIES_UID) == [series_uid]]
        return sizes[0] if len(sizes) == 1 else None

    def _new_spool(self) -> SeriesSpool | None:
        try:
            return SeriesSpool(self.spool_dir, self.series_bytes)
        except OSError as exc:
            log.warning("no local copies for series (%s): one request per instance", exc.strerror or type(exc).__name__)
            return None

    def _record(self, listed: ListedInstance) -> InstanceRecord:
        locator = _locator(listed.study_uid, listed.series_uid, listed.sop_instance_uid)
        syntax, size = listed.transfer_syntax_uid, None
        if syntax is None:
            orthanc = self._orthanc_rest()
            syntax = orthanc.transfer_syntax(listed) if orthanc is not None else None
        if syntax is None:
            syntax, size = self._syntax_from_object(locator)
        if syntax is None:
            raise StoreError("the PACS's copy of an instance names no transfer syntax")
        return InstanceRecord(study_uid=listed.study_uid, series_uid=listed.series_uid,
                              sop_instance_uid=listed.sop_instance_uid, sop_class_uid=listed.sop_class_uid,
                              transfer_syntax_uid=syntax, size=size, locator=locator)

    def _remember(self, record: InstanceRecord) -> InstanceRecord:
        self._recent.put(record.sop_instance_uid, record)
        return record

    def _syntax_from_object(self, locator: str) -> tuple[str | None, int | None]:
        """The transfer syntax in the object's file meta, reading only until it is found, and the object's
        length when the server declared one."""

        def first_bytes(response: requests.Response) -> tuple[str | None, int | None]:
            part = dicom_part(response, 16 << 10)
            prefix = b""
            for chunk in part.chunks:
                prefix += chunk
                try:
                    return transfer_syntax_in(prefix), part.declared_length
                except MetaIncomplete:
                    if len(prefix) > META_PREFIX_LIMIT:
                        break
            return None, None  # closing the response drops the rest of the object unread

        try:
            return self.http.get(f"{self.base_url}/{locator}", first_bytes, accept=WADO_ACCEPT,
                                 compressed=False)
        except InstanceGone:
            raise InstanceGone("the PACS listed an instance it cannot send (HTTP 404)") from None

    def _orthanc_rest(self) -> OrthancRest | None:
        with self._orthanc_lock:
            if self._orthanc is _UNKNOWN:
                self._orthanc = OrthancRest.beside(self.http, self.base_url)  # StoreUnavailable: ask again later
            return self._orthanc  # type: ignore[return-value]

    # ---- QIDO-RS --------------------------------------------------------------------------------

    def _qido(self, url: str, filters: dict[str, str], paged: bool) -> list[ListedInstance]:
        params = {**filters, "includefield": ",".join(INSTANCE_FIELDS)}
        items = self._qido_pages(url, params, key=SOP_INSTANCE_UID) if paged else self._qido_page(url, params)
        return [listed for listed in map(listed_instance, items) if listed is not None]

    def _qido_pages(self, url: str, params: dict[str, str], key: str) -> list[dict]:
        """Every result, QIDO_PAGE at a time; stops when a page brings nothing new (a server that ignores
        offset would otherwise be asked forever)."""
        results: list[dict] = []
        seen: set[str] = set()
        while True:
            page = self._qido_page(url, {**params, "limit": str(QIDO_PAGE), "offset": str(len(results))})
            fresh = [item for item in page if _key(item, key) not in seen]
            seen.update(_key(item, key) for item in fresh)
            results.extend(fresh)
            if len(page) < QIDO_PAGE or not fresh:
                return results

    def _qido_page(self, url: str, params: dict[str, str]) -> list[dict]:
        def results(response: requests.Response) -> list[dict]:
            if response.status_code == 204 or not response.content.strip():
                return []
            try:
                body = response.json()
            except ValueError:
                raise StoreError("the PACS answered a QIDO-RS query with something that is not JSON") from None
            if not isinstance(body, list):
                raise StoreError("the PACS answered a QIDO-RS query with something other than a list")
            return [item for item in body if isinstance(item, dict)]

        return self.http.get(url, results, accept=QIDO_ACCEPT, params=params)


def _copied_record(copy: LocalCopy) -> InstanceRecord:
    """From the copy's own header: no lookup. Size None as for any record (the copy tells its own)."""
    facts = copy.facts
    return InstanceRecord(study_uid=facts.study_uid, series_uid=facts.series_uid,
                          sop_instance_uid=facts.sop_instance_uid, sop_class_uid=facts.sop_class_uid,
                          transfer_syntax_uid=facts.transfer_syntax_uid, size=None,
                          locator=_locator(facts.study_uid, facts.series_uid, facts.sop_instance_uid))


def _locator(study_uid: str, series_uid: str, sop_instance_uid: str) -> str:
    return f"studies/{_path(study_uid)}/series/{_path(series_uid)}/instances/{_path(sop_instance_uid)}"


def _path(uid: str) -> str:
    # UIDs are digits and dots; quoting keeps anything else from changing the URL's meaning.
    return quote(uid, safe="")


def _key(item: dict, tag: str) -> str:
    values = _values(item, tag)
    return str(values) if values else json.dumps(item, sort_keys=True)


def _values(item: dict, tag: str) -> list:
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return values if isinstance(values, list) else []
