"""Interop: Node's `soap` package (npm) as a WADO-WS client of a real server on loopback.

tests/interop/node/client.js uses node-soap the way a Node application would: the WSDL the server publishes,
`forceSoap12Headers` (SOAP 1.2 envelope, `application/soap+xml; action=...`) and `parseReponseAttachments` (the
MIME parts of an MTOM answer). node-soap leaves `xop:Include` unresolved, so the script matches each href to a
part by Content-ID (RFC 2392) and writes the bytes to files, with the metadata answers and what was sent.
This test checks those files: stored objects byte for byte (one ends in CR LF), anonymized objects without any
planted value and with a new SOP Instance UID, metadata plain and anonymized, RegistryErrors and a SOAP fault
as node-soap surfaces them, and the request node-soap built against our XSDs.

Packages come from tests/interop/node/package-lock.json: `npm ci` into pytest's cache directory, keyed by the
lock file, unless tests/interop/node/node_modules exists. Skipped (with the reason) only when node or npm is
missing or `npm ci` fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from lxml import etree

import planting
from conftest import interop_store
from support import SOAP12, WSA, ServerProcess, validate_envelope
from test_rad69 import ALL_SYNTAXES
from wadows.soap import contract

NODE_DIR = Path(__file__).parent / "interop" / "node"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
RETRIEVE = "ImagingDocumentSource_RetrieveImagingDocumentSet"
INFORMATION = "ImagingDocumentSource_RetrieveImagingDocumentSetInformation"
MESSAGE_ID = "urn:uuid:5b0d6a36-4e3c-4c59-9d0e-6c1d0f1e2a77"
NATIVE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
# sc-jpeg is refused (urn:dicom:wado:0001: burned-in annotation suspected, and no pixel rule is configured here)
ANONYMIZED_KEYS = [k for k in planting.SOURCES if k != "sc-jpeg"]


def version(text: str) -> tuple[int, ...]:
    """(20, 19, 0) from "v20.19.0" or ">=20.19.0"."""
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def node_modules(cache_root: Path) -> Path:
    """A node_modules folder holding the locked packages: the developer's own, or `npm ci` into the cache."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("interop with node-soap needs node on PATH (not found)")
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    needed = lock["packages"]["node_modules/soap"]["engines"]["node"]
    have = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    if version(have) < version(needed):
        pytest.skip(f"the locked node-soap needs node {needed}; this node is {have}")
    local = NODE_DIR / "node_modules"
    if (local / "soap").is_dir():
        return local
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("interop with node-soap needs npm on PATH to install tests/interop/node (not found)")
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    target = cache_root / hashlib.sha256(lock).hexdigest()[:16]
    if (target / "node_modules" / "soap").is_dir():
        return target / "node_modules"
    cache_root.mkdir(parents=True, exist_ok=True)
    for stale in cache_root.iterdir():  # installs for earlier lock files
        shutil.rmtree(stale, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(NODE_DIR / name, target / name)
    run = subprocess.run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
                         cwd=target, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        pytest.skip(f"`npm ci` for node-soap failed (exit {run.returncode}): {(run.stderr or run.stdout)[-800:]}")
    return target / "node_modules"


def documents_arg(rows: list[dict], **fields) -> list[dict]:
    """node-soap's shape of StudyRequest/SeriesRequest/DocumentRequest (attributes under `attributes`)."""
    studies: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        series = studies.setdefault(row["study_uid"], {}).setdefault(row["series_uid"], [])
        series.append({"DocumentUniqueId": row["sop_instance_uid"], **fields})
    return [{"attributes": {"studyInstanceUID": study}, "SeriesRequest": [
        {"attributes": {"seriesInstanceUID": series}, "DocumentRequest": docs} for series, docs in by_series.items()]}
            for study, by_series in studies.items()]


def information_arg(rows: list[dict], xpaths: list[str], **fields) -> list[dict]:
    studies = documents_arg(rows, XPath=xpaths, **fields)
    for study in studies:
        for series in study["SeriesRequest"]:
            series["DocumentInformationRequest"] = series.pop("DocumentRequest")
    return studies


@pytest.fixture(scope="module")
def world(tmp_path_factory, pytestconfig):
    cache = getattr(pytestconfig, "cache", None)  # absent under -p no:cacheprovider
    modules = node_modules(Path(cache.mkdir("interop-node")) if cache else
                           Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wadows-interop-node")
    root = tmp_path_factory.mktemp("interop-node")
    store = root / "store"
    sample, crlf, planted = interop_store(store)
    server = ServerProcess(store, root / "data", root / "server.log", ["--unauthenticated", "full"])
    ct = next(r for r in sample if r["modality"] == "CT")
    unknown = {**ct, "sop_instance_uid": "1.2.3.4.5.6.7.8.9"}
    syntaxes = {"TransferSyntaxUID": ALL_SYNTAXES}
    calls = [
        {"name": "plain", "operation": RETRIEVE,
         "args": {"StudyRequest": documents_arg(sample + [crlf]), "TransferSyntaxUIDList": syntaxes}},
        {"name": "anonymized", "operation": RETRIEVE,
         "args": {"StudyRequest": documents_arg([planted[k] for k in ANONYMIZED_KEYS], Anonymize="yes"),
                  "TransferSyntaxUIDList": syntaxes}},
        {"name": "metadata", "operation": INFORMATION,
         "soapHeaders": [f'<wsa:MessageID xmlns:wsa="{WSA}">{MESSAGE_ID}</wsa:MessageID>'],
         "args": {"StudyRequest": information_arg([ct], [
             "/", 'string(//DicomAttribute[@keyword="Modality"]/Value)',
             'string(//DicomAttribute[@keyword="PatientName"]/PersonName/Alphabetic/FamilyName)'])}},
        {"name": "metadata-anonymized", "operation": INFORMATION,
         "args": {"StudyRequest": information_arg([planted["ct"]], ["/"], Anonymize="yes")}},
        {"name": "unknown-uid", "operation": RETRIEVE,
         "args": {"StudyRequest": documents_arg([unknown]), "TransferSyntaxUIDList": syntaxes}},
        {"name": "bad-anonymize", "operation": RETRIEVE,
         "args": {"StudyRequest": documents_arg([ct], Anonymize="maybe"),
                  "TransferSyntaxUIDList": syntaxes}},
        {"name": "must-understand", "operation": RETRIEVE,
         "soapHeaders": ['<x:Unknown xmlns:x="urn:example:unknown" soap:mustUnderstand="1">x</x:Unknown>'],
         "args": {"StudyRequest": documents_arg([ct]), "TransferSyntaxUIDList": syntaxes}},
    ]
    out = root / "out"
    job = root / "job.json"
    job.write_text(json.dumps({"wsdl": f"{server.endpoint}?wsdl", "out": str(out), "calls": calls}))
    try:
        run = subprocess.run([shutil.which("node"), str(NODE_DIR / "client.js"), str(job)], capture_output=True,
                             text=True, timeout=300, env={**os.environ, "NODE_PATH": str(modules)})
        assert run.returncode == 0, run.stderr
        yield {"out": out, "server": server, "sample": sample, "crlf": crlf, "planted": planted, "ct": ct}
    finally:
        server.stop()


def got(world, name: str) -> dict:
    folder = world["out"] / name
    assert not (folder / "error.json").exists(), (folder / "error.json").read_text()
    return {"folder": folder, "result": json.loads((folder / "result.json").read_text()),
            "response": (folder / "response.xml").read_bytes(),
            "documents": json.loads((folder / "documents.json").read_text())}


def leaks(haystack: bytes, needles) -> list[str]:
    low = haystack.lower()
    return [n for n in needles if any(e and e.lower() in low for e in
                                      (n.encode("utf-8"), n.encode("latin-1", "ignore"), n.encode("utf-16-le")))]


def errors_of(result: dict) -> list[dict]:
    listed = result["RegistryResponse"].get("RegistryErrorList", {}).get("RegistryError", [])
    return [e["attributes"] for e in (listed if isinstance(listed, list) else [listed])]


def test_node_soap_sends_soap12_with_the_action_and_a_request_our_xsds_accept(world):
    for name in ("plain", "anonymized", "metadata"):
        folder = world["out"] / name
        headers = json.loads((folder / "request-headers.json").read_text())
        content_type = headers["Content-Type"]
        assert content_type.startswith("application/soap+xml"), content_type
        assert 'action="urn:' in content_type
        sent = etree.fromstring((folder / "request.xml").read_bytes())
        assert sent.tag == f"{{{SOAP12}}}Envelope"
        contract.validate(sent.find(f"{{{SOAP12}}}Body")[0])


def test_plain_retrieval_gives_every_stored_object_byte_for_byte(world):
    answer = got(world, "plain")
    assert answer["result"]["RegistryResponse"]["attributes"]["status"] == SUCCESS
    rows = world["sample"] + [world["crlf"]]
    by_uid = {r["sop_instance_uid"]: r for r in rows}
    assert sorted(d["documentUniqueId"] for d in answer["documents"]) == sorted(by_uid)
    for entry in answer["documents"]:
        assert entry["file"], f"no MIME part for {entry['href']}"
        assert entry["newDocumentUniqueId"] is None and entry["mimeType"] == "application/dicom"
        data = (answer["folder"] / entry["file"]).read_bytes()
        assert data == by_uid[entry["documentUniqueId"]]["path"].read_bytes(), entry["documentUniqueId"]
    crlf = next(e for e in answer["documents"] if e["documentUniqueId"] == world["crlf"]["sop_instance_uid"])
    assert (answer["folder"] / crlf["file"]).read_bytes().endswith(b"\r\n")
    # the SOAP part node-soap took as the answer is the XSD-valid root
    parts = {e["contentId"]: (answer["folder"] / e["file"]).read_bytes() for e in answer["documents"]}
    validate_envelope(etree.fromstring(answer["response"]), parts)


def test_anonymized_retrieval_has_no_planted_value_and_new_sop_instance_uids(world):
    answer = got(world, "anonymized")
    planted = world["planted"]
    assert answer["result"]["RegistryResponse"]["attributes"]["status"] == SUCCESS, answer["result"]
    assert len(answer["documents"]) == len(ANONYMIZED_KEYS)
    by_uid = {planted[k]["sop_instance_uid"]: planted[k] for k in ANONYMIZED_KEYS}
    original_uids = set().union(*(planted[k]["uids"] for k in ANONYMIZED_KEYS))
    everything = answer["response"]
    for entry in answer["documents"]:
        data = (answer["folder"] / entry["file"]).read_bytes()
        everything += data
        item = by_uid[entry["documentUniqueId"]]
        new_uid = entry["newDocumentUniqueId"]
        assert new_uid and new_uid.startswith("2.25.") and new_uid != item["sop_instance_uid"]
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.SOPInstanceUID == new_uid and ds.PatientIdentityRemoved == "YES"
        assert leaks(data, [item["sop_instance_uid"]]) == []
    assert leaks(everything, planting.PLANTED) == []
    assert leaks(everything, original_uids) == []
    assert leaks(world["server"].log().encode(), planting.PLANTED) == []


def test_metadata_reaches_node_as_xml_text_and_relates_to_its_message_id(world):
    answer = got(world, "metadata")
    ct = world["ct"]
    assert answer["result"]["RegistryResponse"]["attributes"]["status"] == SUCCESS
    model, modality, family = [(answer["folder"] / "xpath" / f"0-{i}.xml").read_text() for i in range(3)]
    root = etree.fromstring(model.encode())
    assert root.tag == f"{{{NATIVE}}}NativeDicomModel"
    sop = root.find(f'{{{NATIVE}}}DicomAttribute[@tag="00080018"]/{{{NATIVE}}}Value').text
    assert sop == ct["sop_instance_uid"]
    assert modality == "CT" and family == ct["patient_name"].split("^")[0]
    header = etree.fromstring(answer["response"]).find(f"{{{SOAP12}}}Header")
    assert header.findtext(f"{{{WSA}}}RelatesTo") == MESSAGE_ID


def test_anonymized_metadata_has_no_planted_value_and_the_uid_of_the_anonymized_object(world):
    answer = got(world, "metadata-anonymized")
    item = world["planted"]["ct"]
    assert answer["result"]["RegistryResponse"]["attributes"]["status"] == SUCCESS, answer["result"]
    model = (answer["folder"] / "xpath" / "0-0.xml").read_bytes()
    assert leaks(answer["response"] + model, planting.PLANTED) == []
    assert leaks(model, item["uids"] | {item["sop_instance_uid"]}) == []
    root = etree.fromstring(model)
    new_sop = root.find(f'{{{NATIVE}}}DicomAttribute[@tag="00080018"]/{{{NATIVE}}}Value').text
    retrieved = next(e for e in got(world, "anonymized")["documents"]
                     if e["documentUniqueId"] == item["sop_instance_uid"])
    assert new_sop == retrieved["newDocumentUniqueId"]


def test_registry_errors_reach_node_as_parsed_attributes(world):
    unknown = got(world, "unknown-uid")["result"]
    assert unknown["RegistryResponse"]["attributes"]["status"] == FAILURE
    errors = [(e["errorCode"], e["location"]) for e in errors_of(unknown)]
    assert errors == [("XDSDocumentUniqueIdError", "1.2.3.4.5.6.7.8.9")]
    assert "DocumentResponse" not in unknown
    bad = got(world, "bad-anonymize")["result"]
    assert bad["RegistryResponse"]["attributes"]["status"] == FAILURE
    [error] = errors_of(bad)
    assert error["errorCode"] == "urn:dicom:wado:0012" and "Anonymize" in error["codeContext"]


def test_a_soap_fault_reaches_node_as_an_error_with_the_parsed_fault(world):
    error = json.loads((world["out"] / "must-understand" / "error.json").read_text())
    assert error["status"] == 500  # SOAP 1.2 HTTP binding: MustUnderstand is a 500
    assert error["fault"]["Code"]["Value"] == "env:MustUnderstand"
    assert "mustUnderstand" in error["fault"]["Reason"]["Text"]["$value"]
