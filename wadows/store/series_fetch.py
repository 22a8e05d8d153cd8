"""One WADO-RS request for a whole series, its wanted instances kept as local copies while it streams in.

Nothing here retries: a series cut half-way is not fetched again from the start (what came whole is kept,
the rest is fetched one instance at a time), and a server that refuses series retrieval is asked once.
"""

from __future__ import annotations

import logging

import requests

from wadows.store.base import StoreError
from wadows.store.dicom_part import dicom_parts
from wadows.store.pacs_http import PacsHttp
from wadows.store.series_spool import SeriesSpool

log = logging.getLogger(__name__)

WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
READ_SIZE = 256 << 10  # 1 MiB reads made the multipart parsing 4x slower (fresh large buffers: page faults)


def fetch_series(http: PacsHttp, series_url: str, study_uid: str, series_uid: str, wanted: set[str],
                 spool: SeriesSpool) -> None:
    """GET series_url (`{base}/studies/{st}/series/{se}`) into the spool; logs why it stopped early, if it did."""

    def keep(response: requests.Response) -> str | None:
        # Never raises (a cut is a stop, not a failure): PacsHttp would otherwise fetch the series again.
        return spool.take(dicom_parts(response, READ_SIZE), study_uid, series_uid, wanted)

    try:
        stopped = http.get(series_url, keep, accept=WADO_ACCEPT, compressed=False)
    except StoreError as exc:  # refused (e.g. HTTP 400 or 406), gone or unreachable
        stopped = str(exc)
    if stopped:
        log.info("series retrieval stopped early (%s): the rest is fetched one instance at a time", stopped)
