"""Unexpected failures, injected in process through a store that raises (no running server fails on demand):
inside one document's preparation they become that document's error; outside, a Receiver fault. Neither
answer says anything of the failure's text."""

from __future__ import annotations

import io

from lxml import etree

from support import SOAP12, doc, envelope, rad69_body, registry
from wadows.app import WadowsApp
from wadows.policy.access import AccessPolicy
from wadows.store.folder import FolderStore, index_folder
from wadows.wado.source import ImagingDocumentSource

SECRET = "disk I/O error in /secret/path"


class BrokenIndexStore(FolderStore):
    def locate(self, sop_instance_uid):
        raise RuntimeError(f"{SECRET} while looking up {sop_instance_uid}")


class BrokenListingStore(FolderStore):
    def locate_series(self, study_uid, series_uid):
        raise RuntimeError(f"{SECRET} while listing {series_uid}")


def call(app, body):
    status = {}
    raw = b"".join(app({"REQUEST_METHOD": "POST", "PATH_INFO": "/wado-ws", "CONTENT_TYPE": "application/soap+xml",
                        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)},
                       lambda s, h: status.update(line=s, headers=dict(h))))
    return status, raw


def app_with(store_class, store_dir, tmp_path):
    index_folder(store_dir, tmp_path, show_progress=False)
    source = ImagingDocumentSource(store_class(store_dir, tmp_path / "index.sqlite3"), "1.2.3")
    return WadowsApp(source, policy=AccessPolicy("full"))


def test_a_failure_inside_one_document_is_that_documents_error(store_dir, sample, tmp_path):
    status, raw = call(app_with(BrokenIndexStore, store_dir, tmp_path), envelope(rad69_body([doc(sample[0])])))
    assert status["line"].startswith("200")
    payload = raw.split(b"\r\n\r\n", 1)[1]
    envelope_xml = payload[:payload.index(b"</env:Envelope>") + len(b"</env:Envelope>")]
    state, errors = registry(etree.fromstring(envelope_xml))
    assert [e["errorCode"] for e in errors] == ["urn:dicom:wado:0014"]
    assert b"secret" not in raw and b"disk I/O" not in raw


def test_an_unexpected_failure_outside_documents_is_a_receiver_fault(store_dir, sample, tmp_path):
    status, raw = call(app_with(BrokenListingStore, store_dir, tmp_path), envelope(rad69_body([doc(sample[0])])))
    assert status["line"].startswith("500")
    assert status["headers"]["Content-Type"].startswith("application/soap+xml")
    fault = etree.fromstring(raw).find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value") == "env:Receiver"
    assert b"secret" not in raw and b"disk I/O" not in raw and sample[0]["sop_instance_uid"].encode() not in raw
