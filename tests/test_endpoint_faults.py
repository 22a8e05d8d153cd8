"""An unexpected failure inside the operation becomes a SOAP 1.2 Receiver fault that says nothing of it.

The failure is injected by a store whose index lookups raise, in process: no running server can be made to
fail that way on demand.
"""

from __future__ import annotations

import io

from lxml import etree

from support import SOAP12, doc, envelope, rad69_body
from wadows.app import WadowsApp
from wadows.policy.access import AccessPolicy
from wadows.store.folder import FolderStore
from wadows.wado.source import ImagingDocumentSource


class BrokenIndexStore(FolderStore):
    def locate(self, sop_instance_uid):
        raise RuntimeError(f"disk I/O error while looking up {sop_instance_uid} in /secret/path")


def test_internal_error_is_a_receiver_fault_without_internals(store_dir, sample, tmp_path):
    from wadows.store.folder import index_folder

    index_folder(store_dir, tmp_path, show_progress=False)
    app = WadowsApp(ImagingDocumentSource(BrokenIndexStore(store_dir, tmp_path / "index.sqlite3"), "1.2.3"),
                    policy=AccessPolicy("full"))
    body = envelope(rad69_body([doc(sample[0])]))
    status = {}
    raw = b"".join(app({"REQUEST_METHOD": "POST", "PATH_INFO": "/wado-ws", "CONTENT_TYPE": "application/soap+xml",
                        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)},
                       lambda s, h: status.update(line=s, headers=dict(h))))
    assert status["line"].startswith("500")
    assert status["headers"]["Content-Type"].startswith("application/soap+xml")
    fault = etree.fromstring(raw).find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value") == "env:Receiver"
    assert b"secret" not in raw and b"disk I/O" not in raw and sample[0]["sop_instance_uid"].encode() not in raw
