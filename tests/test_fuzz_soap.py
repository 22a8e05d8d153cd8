"""Fuzzing the SOAP endpoint (POST /wado-ws) of a real `wadows serve`, with hypothesis (derandomized: the same
examples on every run).

Two servers for the whole module, both over the bundled sample: one with `--unauthenticated full`, one with the
default policy (anonymous callers get anonymized objects only) and a small document cap
(WADOWS_SERVER_MAX_DOCUMENTS=25). Properties checked for every example:

- the server answers: HTTP 200 with a RegistryResponse in the Body, or a SOAP 1.2 fault with a 4xx/5xx status
  (a SOAP/1.1 envelope: a SOAP/1.1 VersionMismatch fault with HTTP 500, SOAP 1.2 Part 1 Appendix A);
- the answer is well-formed XML (an MTOM answer is split independently of the server's code, support.split_mtom);
- a fault's reason is short and quotes nothing of the request (planted markers, 12-character windows of the
  free-form values the example generated); a RegistryError's codeContext neither;
- the default-policy server never returns an original object to an anonymous caller;
- afterwards the process is alive, /health answers and a known-good request still succeeds.

At the end, both server logs are searched for every marker planted in a request (test_server_logs_...: keep it
the last test of the module). Receiver faults (HTTP 500) are allowed by the property but signal an unforeseen
exception in the server: they are collected and reported as a warning at the end.

Failures found are reproduced one by one in tests named FUZZ-SOAP-n (xfail(strict=True) while open). Requests made
of many MIME parts have tests of their own (the fuzzing keeps to a few parts); requests refused before the
application runs are fuzzed too (test_http_headers), and test_gunicorn_refusals_... checks them on a server of its
own (bare_server), whose log is not the fuzzed servers'.
"""

from __future__ import annotations

import base64
import os
import random
import re
import socket
import warnings
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

import pytest
import requests
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from support import (EXPLICIT_LE, IMPLICIT_LE, RAD, SOAP12, WADO, WSA, XDS, XOP, ServerProcess, doc, envelope,
                     parse_http_answer, rad69_body, split_mtom)
from wadows.sample import IDENTIFYING_STRINGS
from wadows.soap.mtom_in import MAX_PARTS

RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
STATUSES = {SUCCESS, "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess",
            "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"}
SOAP11_VERSION_MISMATCH = "soap11:VersionMismatch"  # Answer.fault_code of the SOAP/1.1 fault
FAULT_CODES = {"env:Sender", "env:Receiver", "env:VersionMismatch", "env:MustUnderstand", "env:DataEncodingUnknown"}
RETRIEVE_ACTION = "urn:ihe:rad:2009:RetrieveImagingDocumentSet"
RENDERED_ACTION = "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet"
INFORMATION_ACTION = "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation"
CAP = 25  # WADOWS_SERVER_MAX_DOCUMENTS of the default-policy server
MAX_REQUEST = 10 * 1024 * 1024
ECHO_WINDOW = 12  # a fault reason may not contain this many consecutive characters of a generated value
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)

# Deterministic by default. For a longer campaign: WADOWS_FUZZ_SCALE=10 (ten times the examples) and
# WADOWS_FUZZ_RANDOM=1 (new examples on each run).
SCALE = float(os.environ.get("WADOWS_FUZZ_SCALE", "1"))
FUZZ = settings(derandomize=os.environ.get("WADOWS_FUZZ_RANDOM") != "1", database=None, deadline=None, print_blob=True,
                phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=max(1, int(examples * SCALE)))


PLANTED: set[str] = set()          # every marker any request of this module carried
RECEIVER_FAULTS: list[str] = []    # what produced an HTTP 500 (allowed, but worth a look)


# --- servers ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_server(store_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz-soap-full")
    server = ServerProcess(store_dir, data, data / "server.log", ["--unauthenticated", "full"])
    server.policy = "full"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def default_server(store_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz-soap-default")
    server = ServerProcess(store_dir, data, data / "server.log", env={"WADOWS_SERVER_MAX_DOCUMENTS": str(CAP)})
    server.policy = "anonymized"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rows(sample):
    def first(modality, ts=None):
        return next(r for r in sample if r["modality"] == modality and (ts is None or r["transfer_syntax_uid"] == ts))
    return {"ct": first("CT", EXPLICIT_LE), "mr": first("MR", EXPLICIT_LE), "mr-implicit": first("MR", IMPLICIT_LE),
            "us": first("US"), "sr": first("SR"), "ot": first("OT"), "rtdose": first("RTDOSE"), "all": sample}


# --- strategies -------------------------------------------------------------------------------------------------

markers = st.from_regex(r"QZV[A-Z0-9]{8}", fullmatch=True)
# Characters XML 1.0 allows (no C0 controls but tab/newline, no surrogates, no U+FFFE/U+FFFF).
xml_chars = st.characters(min_codepoint=0x20, exclude_categories=("Cs",), exclude_characters="\ufffe\uffff")
xml_text = st.text(xml_chars, max_size=40)


@dataclass
class Values:
    """What an example generated that the server must not echo: planted markers and free-form text."""

    free: list[str] = field(default_factory=list)

    def plant(self, data, around: bool = True) -> str:
        marker = data.draw(markers)
        PLANTED.add(marker)
        if around and data.draw(st.booleans()):
            marker = data.draw(xml_text) + marker + data.draw(xml_text)
        self.free.append(marker)
        return marker

    def text(self, data, strategy=xml_text) -> str:
        value = data.draw(strategy)
        self.free.append(value)
        return value


def anonymize_value(data, values: Values) -> str | None:
    kind = data.draw(st.sampled_from(["none", "listed", "listed", "unicode", "planted"]))
    if kind == "none":
        return None
    if kind == "listed":
        return data.draw(st.sampled_from([
            "yes", "no", "YES", "Yes", "yEs", "yes ", " yes", "\tyes\n", "true", "TRUE", "True", "1", "0", "false",
            "no ", "NO", "", " ", "\t", "\n", "yess", "y", "ye", "oui", "ja", "是", "\uff59\uff45\uff53", "yes\u00a0",
            "\u00a0yes", "yes\u2028", "\u3000no\u3000", "1.0", "+1", "01", "tRuE", "nO", "yes yes", "yes\x85",
            "ＹＥＳ", "\u0131", "da", "on", "off", "-1", "2", "null", "nil", "none", "yes\r\n", "\r1\r"]))
    if kind == "unicode":
        return values.text(data)
    return values.plant(data)


def xml_normalized(value: str) -> str:
    """What an XML parser hands the server for an element text we wrote escaped (end-of-line normalization)."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def xml_escaped(value: str | None) -> str | None:
    return None if value is None else escape(value)


def wants_anonymization(value: str | None) -> bool | None:
    """Documented (wadows.wado.anonymize, docs): yes/true/1 and no/false/0, any case, surrounding white space
    ignored; anything else is urn:dicom:wado:0012. None: no Anonymize element. Returns None for 'invalid'."""
    if value is None:
        return False
    word = xml_normalized(value).strip().lower()
    if word in ("yes", "true", "1"):
        return True
    if word in ("no", "false", "0"):
        return False
    return None


# --- requests ---------------------------------------------------------------------------------------------------

def raw_post(server, body: bytes, content_type: str | None = "application/soap+xml; charset=utf-8",
             headers: dict | None = None, timeout: float = 60):
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    try:
        r = requests.post(server.endpoint, data=body, headers=all_headers, timeout=timeout)
    except requests.RequestException as exc:  # a hang or a dropped connection
        pytest.fail(f"no answer ({type(exc).__name__}: {exc})")
    return r


def soap(body_xml: str, action: str = RETRIEVE_ACTION, message_id: str = "urn:uuid:0f8fad5b", extra_headers: str = "",
         soap_ns: str = SOAP12) -> bytes:
    return envelope(body_xml, action=action, message_id=message_id, extra_headers=extra_headers, soap_ns=soap_ns)


def rendered_body(docs: list[tuple[str, str, str, list[str]]]) -> str:
    """docs: (study, series, sop, raw XML children of the RenderedDocumentRequest besides DocumentUniqueId)."""
    out = [f'<wado:RetrieveRenderedImagingDocumentSetRequest xmlns:wado="{WADO}" xmlns:ihe="{XDS}">']
    for study, series, sop, children in docs:
        out.append(f'<wado:StudyRequest studyInstanceUID={quoteattr(study)}>'
                   f'<wado:SeriesRequest seriesInstanceUID={quoteattr(series)}><wado:RenderedDocumentRequest>'
                   f'<ihe:DocumentUniqueId>{escape(sop)}</ihe:DocumentUniqueId>{"".join(children)}'
                   f'</wado:RenderedDocumentRequest></wado:SeriesRequest></wado:StudyRequest>')
    out.append("</wado:RetrieveRenderedImagingDocumentSetRequest>")
    return "".join(out)


def information_body(study: str, series: str, sop: str, xpaths: list[str], anonymize: str | None) -> str:
    anon = f"<wado:Anonymize>{escape(anonymize)}</wado:Anonymize>" if anonymize is not None else ""
    paths = "".join(f"<wado:XPath>{escape(x)}</wado:XPath>" for x in xpaths)
    return (f'<wado:RetrieveImagingDocumentSetInformationRequest xmlns:wado="{WADO}" xmlns:ihe="{XDS}">'
            f'<wado:StudyRequest studyInstanceUID={quoteattr(study)}><wado:SeriesRequest '
            f'seriesInstanceUID={quoteattr(series)}><wado:DocumentInformationRequest>'
            f'<ihe:DocumentUniqueId>{escape(sop)}</ihe:DocumentUniqueId>{anon}{paths}'
            f'</wado:DocumentInformationRequest></wado:SeriesRequest></wado:StudyRequest>'
            f'</wado:RetrieveImagingDocumentSetInformationRequest>')


def multipart(boundary: str, parts: list[tuple[dict[str, str], bytes]], preamble: bytes = b"",
              epilogue: bytes = b"", close: bool = True) -> bytes:
    out = [preamble]
    for headers, content in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append(f"--{boundary}\r\n{head}\r\n".encode("latin-1", "replace") + content + b"\r\n")
    if close:
        out.append(f"--{boundary}--\r\n".encode("latin-1", "replace"))
    out.append(epilogue)
    return b"".join(out)


ROOT_HEADERS = {"Content-Type": 'application/xop+xml; charset=UTF-8; type="application/soap+xml"',
                "Content-Transfer-Encoding": "binary", "Content-ID": "<root@fuzz>"}


def mtom_type(boundary: str, start: str | None = "<root@fuzz>") -> str:
    return (f'multipart/related; type="application/xop+xml"; boundary="{boundary}"'
            + (f'; start="{start}"' if start is not None else "") + '; start-info="application/soap+xml"')


# --- the properties ---------------------------------------------------------------------------------------------

@dataclass
class Answer:
    status: int
    envelope: etree._Element
    fault_code: str | None = None
    reason: str | None = None
    registry_status: str | None = None
    errors: list[dict] = field(default_factory=list)
    documents: list[dict] = field(default_factory=list)
    parts: dict[str, bytes] = field(default_factory=dict)
    payload: etree._Element | None = None


def no_echo(text: str, values: Values, what: str) -> None:
    assert "QZV" not in text, f"{what} quotes a planted marker: {text!r}"
    for value in values.free:
        value = xml_normalized(value)[:65536]  # huge values are repetitive: their head is enough
        for i in range(max(0, len(text) - ECHO_WINDOW + 1)):
            window = text[i:i + ECHO_WINDOW]
            assert window not in value, f"{what} quotes the request ({window!r}): {text!r}"


def check(reply: requests.Response, values: Values, label: str = "") -> Answer:
    """The answer is either HTTP 200 + RegistryResponse or a SOAP fault with 4xx/5xx; well-formed; no echo."""
    content_type = reply.headers.get("Content-Type", "")
    if reply.status_code == 200:
        if content_type.startswith("multipart/related"):
            mtom = split_mtom(content_type, reply.content)
            env, parts = etree.fromstring(mtom.root, SAFE_PARSER), mtom.parts
        else:
            assert content_type.startswith("application/soap+xml"), content_type
            env, parts = etree.fromstring(reply.content, SAFE_PARSER), {}
        body = env.find(f"{{{SOAP12}}}Body")
        assert body is not None and len(body) == 1, etree.tostring(env)[:500]
        payload = body[0]
        registry = payload.find(f"{{{RS}}}RegistryResponse")
        assert registry is not None, etree.tostring(payload)[:500]
        assert registry.get("status") in STATUSES
        errors = [dict(e.attrib) for e in registry.iter(f"{{{RS}}}RegistryError")]
        for error in errors:
            no_echo(error.get("codeContext", ""), values, "a codeContext")
        documents = []
        for response in payload:
            include = response.find(f".//{{{XOP}}}Include")
            if include is not None:
                href = include.get("href")
                assert href.startswith("cid:") and href[4:] in parts, href
                documents.append({"uid": response.findtext(f"{{{XDS}}}DocumentUniqueId"),
                                  "new_uid": response.findtext(f"{{{XDS}}}NewDocumentUniqueId"),
                                  "cid": href[4:], "element": response})
            elif etree.QName(response).localname == "DocumentInformationResponse":
                documents.append({"uid": response.findtext(f"{{{XDS}}}DocumentUniqueId"), "element": response})
        return Answer(200, env, registry_status=registry.get("status"), errors=errors, documents=documents,
                      parts=parts, payload=payload)
    assert 400 <= reply.status_code < 600, (label, reply.status_code, reply.content[:300])
    if content_type.startswith("text/xml"):
        return soap11_fault(reply, values, label)
    assert content_type.startswith("application/soap+xml"), (label, reply.status_code, content_type,
                                                             reply.content[:300])
    env = etree.fromstring(reply.content, SAFE_PARSER)
    fault = env.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault is not None, reply.content[:500]
    code = fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value")
    reason = fault.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text") or ""
    assert code in FAULT_CODES, code
    assert len(reason) <= 300, reason
    assert "Traceback" not in reason and 'File "' not in reason
    no_echo(reason, values, "a fault reason")
    if reply.status_code == 500 and code == "env:Receiver":
        RECEIVER_FAULTS.append(f"{label}: {reason}")
    return Answer(reply.status_code, env, fault_code=code, reason=reason)


def soap11_fault(reply: requests.Response, values: Values, label: str) -> Answer:
    """The only SOAP/1.1 answer: VersionMismatch, with the Upgrade header block naming the SOAP 1.2 envelope."""
    assert reply.status_code == 500 and reply.headers["Content-Type"] == "text/xml; charset=utf-8", label
    env = etree.fromstring(reply.content, SAFE_PARSER)
    fault = env.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None, reply.content[:500]
    prefix, _, local = (fault.findtext("faultcode") or "").rpartition(":")
    assert (fault.nsmap.get(prefix or None), local) == (SOAP11, "VersionMismatch"), reply.content[:500]
    assert env.find(f"{{{SOAP11}}}Header/{{{SOAP12}}}Upgrade/{{{SOAP12}}}SupportedEnvelope") is not None
    reason = fault.findtext("faultstring") or ""
    assert len(reason) <= 300 and "Traceback" not in reason, reason
    no_echo(reason, values, "a faultstring")
    return Answer(500, env, fault_code=SOAP11_VERSION_MISMATCH, reason=reason)


def still_serving(server, rows) -> None:
    assert server.process.poll() is None, "the server process died"
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
    anonymize = None if server.policy == "full" else "yes"
    good = raw_post(server, soap(rad69_body([doc(rows["ct"])], anonymize=anonymize)))
    answer = check(good, Values(), "known-good request")
    assert answer.status == 200 and answer.registry_status == SUCCESS, answer.errors


@pytest.fixture(scope="module")
def servers(full_server, default_server):
    return {"full": full_server, "default": default_server}


def pick_server(data, servers):
    return servers[data.draw(st.sampled_from(["full", "default"]))]


def valid_request(data, rows) -> tuple[bytes, str]:
    """One of the three operations, well-formed, for a sample document: (envelope, action)."""
    row = data.draw(st.sampled_from([rows["ct"], rows["mr"], rows["sr"]]))
    kind = data.draw(st.sampled_from(["retrieve", "rendered", "information"]))
    if kind == "retrieve":
        return soap(rad69_body([doc(row)], anonymize="yes")), RETRIEVE_ACTION
    if kind == "rendered":
        body = rendered_body([(*doc(row), ["<wado:Anonymize>yes</wado:Anonymize>", "<wado:ContentTypeList>"
                                            "<wado:ContentType>*/*</wado:ContentType></wado:ContentTypeList>"])])
        return soap(body, action=RENDERED_ACTION), RENDERED_ACTION
    return soap(information_body(*doc(row), ["/"], "yes"), action=INFORMATION_ACTION), INFORMATION_ACTION


# --- 1. bytes that are hardly a request -------------------------------------------------------------------------

CONTENT_TYPES = ["application/soap+xml; charset=utf-8", "application/soap+xml", "text/xml; charset=utf-8",
                 "application/xml", "application/octet-stream", "text/plain", "", "multipart/related",
                 'multipart/related; boundary="b"', 'multipart/related; boundary=b; start="<x>"',
                 "application/soap+xml; charset=utf-16", "application/soap+xml; charset=ebcdic-cp-us",
                 "application/soap+xml; action=\"urn:ihe:rad:2009:RetrieveImagingDocumentSet\"",
                 "multipart/form-data; boundary=b", "application/soap+xml; charset*=utf-8''x", ";;;", "a/b; c"]


@fuzz(120)
@given(data=st.data())
def test_random_bytes(servers, rows, data):
    server = pick_server(data, servers)
    values = Values()
    body = data.draw(st.one_of(
        st.binary(max_size=2000),
        st.binary(max_size=200).map(lambda b: b"<?xml version='1.0'?>" + b),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"", b" ", b"\r\n", b"<", b"<>", b"<a", b"</a>", b"<?xml?>", b"\xef\xbb\xbf", b"\xff\xfe<\0a\0/\0>\0",
                         b"<a/><b/>", b"<!-- -->", b"<![CDATA[x]]>", b"&amp;", b"<a>&x;</a>", b"\0" * 64]),
    ))
    content_type = data.draw(st.sampled_from(CONTENT_TYPES))
    check(raw_post(server, body, content_type), values, f"random bytes {body[:40]!r} as {content_type!r}")
    still_serving(server, rows)


# --- 2. valid requests, truncated or mutated --------------------------------------------------------------------

@fuzz(120)
@given(data=st.data())
def test_truncated_and_mutated_envelopes(servers, rows, data):
    server = pick_server(data, servers)
    values = Values()
    body, action = valid_request(data, rows)
    for _ in range(data.draw(st.integers(1, 3))):
        operation = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete", "duplicate", "swap"]))
        n = len(body)
        i = data.draw(st.integers(0, max(0, n - 1)))
        j = data.draw(st.integers(i, min(n, i + 200)))
        if operation == "truncate":
            body = body[:i]
        elif operation == "flip":
            body = body[:i] + bytes([body[i] ^ data.draw(st.integers(1, 255))]) + body[i + 1:] if n else body
        elif operation == "insert":
            body = body[:i] + data.draw(st.binary(min_size=1, max_size=20)) + body[i:]
        elif operation == "delete":
            body = body[:i] + body[j:]
        elif operation == "duplicate":
            body = body[:j] + body[i:j] + body[j:]
        else:
            k = data.draw(st.integers(0, max(0, n - 1)))
            a, b = sorted((i, k))
            body = body[:a] + body[b:b + 1] + body[a + 1:b] + body[a:a + 1] + body[b + 1:] if a < b < n else body
    as_mtom = data.draw(st.booleans())
    if as_mtom:
        check(raw_post(server, multipart("mb", [(ROOT_HEADERS, body)]), mtom_type("mb")), values, "mutated mtom")
    else:
        check(raw_post(server, body), values, f"mutated {action}")
    still_serving(server, rows)


# --- 3. envelope structure: roots, versions, namespaces, header blocks -------------------------------------------

NAMESPACES = [SOAP12, SOAP11, RAD, XDS, WADO, WSA, XOP, RS, "", "urn:example", "http://www.w3.org/2003/05/soap-envelope/",
              "HTTP://WWW.W3.ORG/2003/05/SOAP-ENVELOPE", "urn:dicom:ws:wado:2011", "urn:ihe:rad:xdsi-b:2006"]
BODY_NAMES = ["RetrieveImagingDocumentSetRequest", "RetrieveRenderedImagingDocumentSetRequest",
              "RetrieveImagingDocumentSetInformationRequest", "RetrieveDocumentSetRequest", "Envelope", "Body", "Fault",
              "StudyRequest", "x"]


@fuzz(150)
@given(data=st.data())
def test_envelope_structure(servers, rows, data):
    server = pick_server(data, servers)
    values = Values()
    study, series, sop = doc(data.draw(st.sampled_from([rows["ct"], rows["mr"]])))
    # The body child: any of the operation names in any namespace; its children in their namespaces or swapped.
    name = data.draw(st.sampled_from(BODY_NAMES))
    body_ns = data.draw(st.sampled_from([RAD, WADO, XDS, RS, "", "urn:example"]))
    study_ns, doc_ns, anon_ns = (data.draw(st.sampled_from([RAD, XDS, WADO, ""])) for _ in range(3))
    anonymize = anonymize_value(data, values)
    anon = f"<a:Anonymize xmlns:a={quoteattr(anon_ns)}>{escape(anonymize)}</a:Anonymize>" \
        if anonymize is not None and anon_ns else (f"<Anonymize>{escape(anonymize)}</Anonymize>"
                                                   if anonymize is not None else "")
    children = (f'<s:StudyRequest xmlns:s={quoteattr(study_ns)} studyInstanceUID="{study}">'
                if study_ns else f'<StudyRequest studyInstanceUID="{study}">')
    children += (f'<s:SeriesRequest xmlns:s={quoteattr(study_ns)} seriesInstanceUID="{series}">'
                 if study_ns else f'<SeriesRequest seriesInstanceUID="{series}">')
    children += (f'<d:DocumentRequest xmlns:d={quoteattr(doc_ns)}><d:DocumentUniqueId>{sop}</d:DocumentUniqueId>'
                 f'{anon}</d:DocumentRequest>' if doc_ns else
                 f'<DocumentRequest><DocumentUniqueId>{sop}</DocumentUniqueId>{anon}</DocumentRequest>')
    children += "</s:SeriesRequest></s:StudyRequest>" if study_ns else "</SeriesRequest></StudyRequest>"
    request = (f"<b:{name} xmlns:b={quoteattr(body_ns)}>{children}</b:{name}>" if body_ns
               else f"<{name}>{children}</{name}>")
    extra_children = data.draw(st.lists(st.sampled_from([
        "stray text", "<!-- a comment -->", "<?pi data?>", "<![CDATA[cdata]]>", request, "<x:Other xmlns:x='urn:x'/>",
    ]), max_size=3))
    body_content = "".join([request] + extra_children) if data.draw(st.booleans()) else "".join(extra_children + [request])
    # The envelope: its namespace, its root name, header blocks.
    env_ns = data.draw(st.sampled_from([SOAP12] * 4 + NAMESPACES))
    root = data.draw(st.sampled_from(["Envelope"] * 4 + ["envelope", "Body", "Header", "Fault", "x"]))
    header_blocks = data.draw(st.lists(st.sampled_from([
        f"<a:Action s:mustUnderstand='1'>{RETRIEVE_ACTION}</a:Action>",
        "<a:MessageID>urn:uuid:1</a:MessageID>",
        "<a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo>",
        "<a:ReplyTo><a:Address>http://client.example/cb</a:Address></a:ReplyTo>",
        "<a:ReplyTo/>", "<a:Action/>", "<a:To>http://x</a:To>",
        "<x:Unknown xmlns:x='urn:x' s:mustUnderstand='true'/>",
        "<x:Unknown xmlns:x='urn:x' s:mustUnderstand='1' s:role='urn:someone-else'/>",
        "<x:Unknown xmlns:x='urn:x' s:mustUnderstand='0'/>",
        "<x:Unknown xmlns:x='urn:x' s:mustUnderstand=' TRUE '/>",
        "<Unqualified s:mustUnderstand='1'/>",
        "text in the header",
    ]), max_size=4))
    if data.draw(st.booleans()):
        marker = values.plant(data)
        header_blocks.append(f"<x:Note xmlns:x='urn:x'>{escape(marker)}</x:Note>")
        header_blocks.append(f"<a:MessageID>{escape(values.plant(data))}</a:MessageID>")
    parts = []
    if data.draw(st.booleans()):
        parts.append(f"<s:Header>{''.join(header_blocks)}</s:Header>")
    if data.draw(st.integers(0, 9)) > 0:
        parts.append(f"<s:Body>{body_content}</s:Body>")
    if data.draw(st.integers(0, 9)) == 0:
        parts.append("<s:Body/>")
    if data.draw(st.integers(0, 9)) == 0:
        parts.reverse()
    prolog = data.draw(st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.1"?>',
                                        '<?xml version="1.0" encoding="ISO-8859-1"?>', "\ufeff",
                                        '<?xml version="1.0" encoding="UTF-16"?>', '<?xml version="1.0" standalone="yes"?>',
                                        "<!DOCTYPE s:Envelope>", " \n"]))
    xml = (f"{prolog}<s:{root} xmlns:s={quoteattr(env_ns)} xmlns:a=\"{WSA}\">{''.join(parts)}</s:{root}>"
           if env_ns else f"{prolog}<{root} xmlns:a=\"{WSA}\">{''.join(parts)}</{root}>")
    content_type = data.draw(st.sampled_from(["application/soap+xml; charset=utf-8", "text/xml",
                                              f'application/soap+xml; action="{RETRIEVE_ACTION}"']))
    answer = check(raw_post(server, xml.encode("utf-8"), content_type), values, "structure")
    if env_ns == SOAP11 and root == "Envelope" and well_formed(xml.encode("utf-8")) and "DOCTYPE" not in prolog:
        assert answer.fault_code == SOAP11_VERSION_MISMATCH
    if answer.fault_code == SOAP11_VERSION_MISMATCH:
        assert env_ns == SOAP11 and root == "Envelope"
    if answer.status == 200 and server.policy == "anonymized":
        assert_nothing_original(answer, sop)
    still_serving(server, rows)


def well_formed(xml: bytes) -> bool:
    try:
        etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
        return True
    except etree.XMLSyntaxError:
        return False


def assert_nothing_original(answer: Answer, *original_uids: str) -> None:
    """What an anonymous caller of the default-policy server receives is de-identified."""
    for part in answer.parts.values():
        for uid in original_uids:
            assert uid.encode() not in part, "an original UID left for an anonymous caller"
        leaked = [s for s in IDENTIFYING_STRINGS if s.encode() in part]
        assert not leaked, f"identifying values left for an anonymous caller: {leaked}"
    for document in answer.documents:
        if "cid" in document:
            assert document["new_uid"], "a document without NewDocumentUniqueId went to an anonymous caller"


# --- 4. MTOM packaging ------------------------------------------------------------------------------------------

@fuzz(150)
@given(data=st.data())
def test_mtom_packaging(servers, rows, data):
    server = pick_server(data, servers)
    values = Values()
    row = rows["ct"]
    boundary = data.draw(st.sampled_from(["b", "MIMEBoundary_0123", "uuid:7d2c1a3e-5b1f", "a" * 70, "a" * 200,
                                          "with space", "--", "=_?", "\u00e9", "b\"q", "b;c"]))
    declared_boundary = boundary if data.draw(st.integers(0, 4)) else data.draw(
        st.sampled_from(["", "other", boundary + "x", boundary[:-1] or "z"]))
    # Where the DocumentUniqueId comes from: inline, or an xop:Include to a part (or to nothing).
    href_kind = data.draw(st.sampled_from(["inline", "cid", "cid", "cid-missing", "http", "file", "no-href", "empty",
                                           "cid-encoded", "CID", "data"]))
    include_count = data.draw(st.sampled_from([1, 1, 1, 2, 50, 300]))
    part_cid = data.draw(st.sampled_from(["uid@fuzz", "<uid@fuzz>", "uid%40fuzz", "", "root@fuzz", " uid@fuzz "]))
    part_cid_clean = part_cid.strip().strip("<>")
    href = {"cid": f"cid:{part_cid_clean}", "cid-missing": "cid:absent@fuzz", "http": "http://127.0.0.1:9/x",
            "file": "file:///etc/passwd", "no-href": None, "empty": "", "cid-encoded": "cid:uid%40fuzz",
            "CID": f"CID:{part_cid_clean}", "data": "data:text/plain,1.2.3", "inline": None}[href_kind]
    include = (f'<xop:Include xmlns:xop="{XOP}"' + (f" href={quoteattr(href)}" if href is not None else "") + "/>")
    sop_xml = row["sop_instance_uid"] if href_kind == "inline" else include * include_count
    body_xml = rad69_body([doc(row)], anonymize="yes").replace(
        f"<ihe:DocumentUniqueId>{row['sop_instance_uid']}</ihe:DocumentUniqueId>",
        f"<ihe:DocumentUniqueId>{sop_xml}</ihe:DocumentUniqueId>")
    if data.draw(st.booleans()):  # an include where nothing may be included
        body_xml = body_xml.replace("<iherad:TransferSyntaxUIDList>", f"<iherad:TransferSyntaxUIDList>{include}")
    root_headers = dict(ROOT_HEADERS)
    for name in data.draw(st.lists(st.sampled_from(list(ROOT_HEADERS)), max_size=2, unique=True)):
        del root_headers[name]
    root_cte = data.draw(st.sampled_from(["binary", "binary", "8bit", "base64", "quoted-printable", "x-unknown"]))
    if "Content-Transfer-Encoding" in root_headers:
        root_headers["Content-Transfer-Encoding"] = root_cte
    root_xml = soap(body_xml)
    if root_headers.get("Content-Transfer-Encoding") == "base64" and data.draw(st.booleans()):
        root_xml = base64.encodebytes(root_xml)
    parts = [(root_headers, root_xml)]
    attachment_headers = {"Content-Type": data.draw(st.sampled_from(["text/plain", "application/octet-stream",
                                                                     "application/dicom", "multipart/mixed"]))}
    if part_cid or data.draw(st.booleans()):
        attachment_headers["Content-ID"] = part_cid
    attachment_cte = data.draw(st.sampled_from([None, "binary", "base64", "quoted-printable"]))
    if attachment_cte:
        attachment_headers["Content-Transfer-Encoding"] = attachment_cte
    content = data.draw(st.one_of(st.just(row["sop_instance_uid"].encode()), st.binary(max_size=300),
                                  st.just(b"\0" * data.draw(st.sampled_from([0, 1, 1 << 16, 1 << 20])))))
    for _ in range(data.draw(st.integers(0, 3))):
        parts.append((attachment_headers, content))
    if data.draw(st.integers(0, 3)) == 0:
        parts.append(({"Content-ID": f"<{values.plant(data)}>"}, values.plant(data).encode()))
    if data.draw(st.integers(0, 4)) == 0:
        random.Random(data.draw(st.integers(0, 1000))).shuffle(parts)
    start = data.draw(st.sampled_from(["<root@fuzz>", "<root@fuzz>", "root@fuzz", None, "<absent@fuzz>",
                                       f"<{part_cid_clean}>"]))
    body = multipart(boundary, parts, preamble=data.draw(st.sampled_from([b"", b"preamble\r\n", b"\r\n"])),
                     epilogue=data.draw(st.sampled_from([b"", b"epilogue", b"\r\n--trailing--"])),
                     close=data.draw(st.integers(0, 4)) > 0)
    if data.draw(st.integers(0, 5)) == 0:
        body = body[:data.draw(st.integers(0, len(body)))]
    content_type = mtom_type(declared_boundary, start) if declared_boundary else \
        'multipart/related; type="application/xop+xml"; start="<root@fuzz>"'
    if data.draw(st.integers(0, 5)) == 0:
        content_type = content_type.replace('type="application/xop+xml"', data.draw(st.sampled_from(
            ['type="text/xml"', "", 'type="application/soap+xml"'])))
    answer = check(raw_post(server, body, content_type), values, f"mtom {href_kind} x{include_count}")
    if href_kind in ("http", "file", "data", "cid-missing") and answer.status != 200:
        assert answer.fault_code == "env:Sender", answer.reason
    if server.policy == "anonymized" and answer.status == 200:
        assert_nothing_original(answer, row["sop_instance_uid"])
    still_serving(server, rows)


# --- 5. huge values, within and beyond the request cap -----------------------------------------------------------

PLACES = ["message-id", "action", "header-block", "study-attribute", "document-uid", "anonymize", "unknown-attribute",
          "padding-element", "transfer-syntax", "body-text"]


@fuzz(14)
@given(place=st.sampled_from(PLACES), size=st.sampled_from([4096, 100_000, 2_000_000, 9_000_000, MAX_REQUEST,
                                                           MAX_REQUEST + 1, 11 * 1024 * 1024]),
       fill=st.sampled_from(["A", "7", "é", "QZVHUGE"]), chunked=st.booleans())
@example(place="padding-element", size=MAX_REQUEST - 2048, fill="A", chunked=False)
@example(place="study-attribute", size=MAX_REQUEST + 1, fill="7", chunked=True)
@example(place="message-id", size=9_000_000, fill="A", chunked=False)
def test_huge_values(full_server, rows, place, size, fill, chunked):
    values = Values()
    study, series, sop = doc(rows["ct"])
    value = (fill * (size // len(fill.encode()) + 1))[:size] if fill != "é" else "é" * (size // 2)
    if fill == "QZVHUGE":
        PLANTED.add("QZVHUGE")
        values.free.append("QZVHUGE" * 20)
    else:
        values.free.append(fill * 20)
    kwargs = {}
    body_xml = rad69_body([(study, series, sop)])
    if place == "message-id":
        kwargs["message_id"] = value
    elif place == "action":
        kwargs["action"] = value
    elif place == "header-block":
        kwargs["extra_headers"] = f"<x:Big xmlns:x='urn:x'>{value}</x:Big>"
    elif place == "study-attribute":
        body_xml = body_xml.replace(f'studyInstanceUID="{study}"', f'studyInstanceUID="{value}"')
    elif place == "document-uid":
        body_xml = body_xml.replace(f">{sop}<", f">{value}<")
    elif place == "anonymize":
        body_xml = rad69_body([(study, series, sop)], anonymize=value)
    elif place == "unknown-attribute":
        body_xml = body_xml.replace("<ihe:DocumentRequest>", f"<ihe:DocumentRequest big=\"{value}\">")
    elif place == "padding-element":
        body_xml = f"<x:Pad xmlns:x='urn:x'>{value}</x:Pad>" + body_xml
    elif place == "transfer-syntax":
        body_xml = body_xml.replace(EXPLICIT_LE, value)
    else:
        body_xml = value + body_xml
    body = soap(body_xml, **kwargs)
    if chunked:
        reply_ = requests.post(full_server.endpoint, data=(body[i:i + 65536] for i in range(0, len(body), 65536)),
                               headers={"Content-Type": "application/soap+xml"}, timeout=60)
    else:
        reply_ = raw_post(full_server, body)
    answer = check(reply_, values, f"huge {place}")
    if len(body) > MAX_REQUEST:
        assert answer.status == 413 and answer.fault_code == "env:Sender" and "larger" in answer.reason
    still_serving(full_server, rows)


# --- 6. deep nesting --------------------------------------------------------------------------------------------

@fuzz(40)
@given(depth=st.integers(1, 5000), place=st.sampled_from(["body", "header", "document", "root", "attribute-heavy"]),
       data=st.data())
@example(depth=64, place="root", data=None)
@example(depth=65, place="body", data=None)
@example(depth=3000, place="document", data=None)
def test_deep_nesting(servers, rows, depth, place, data):
    server = servers["full"] if data is None else pick_server(data, servers)
    values = Values()
    study, series, sop = doc(rows["ct"])
    if place == "attribute-heavy":
        opening = "".join(f"<n a='{i}' b='{i}'>" for i in range(depth))
    else:
        opening = "<n>" * depth
    nested = opening + "</n>" * depth
    body_xml = rad69_body([(study, series, sop)], anonymize="yes")
    if place == "body":
        xml = soap(f"<x:W xmlns:x='urn:x'>{nested}</x:W>" + body_xml)
    elif place == "header":
        xml = soap(body_xml, extra_headers=f"<x:W xmlns:x='urn:x'>{nested}</x:W>")
    elif place == "document":
        xml = soap(body_xml.replace("</ihe:DocumentRequest>", f"<x:W xmlns:x='urn:x'>{nested}</x:W></ihe:DocumentRequest>"))
    else:
        xml = nested.encode()
    answer = check(raw_post(server, xml), values, f"nesting {depth} in {place}")
    if depth > 64:
        assert answer.status == 400 and answer.fault_code == "env:Sender", (depth, place, answer.reason)
    still_serving(server, rows)


# --- 7. how many documents: around the cap, and at the default cap ------------------------------------------------

@fuzz(40)
@given(data=st.data())
@example(data=None)
def test_document_count_around_the_cap(default_server, rows, data):
    """The default-policy server has WADOWS_SERVER_MAX_DOCUMENTS=25: above it, one urn:dicom:wado:0005 error and
    nothing else; at or below it, one answer per document (anonymous: anonymized or refused)."""
    values = Values()
    if data is None:
        count, docs = CAP + 1, [doc(rows["ct"])] * (CAP + 1)
    else:
        count = data.draw(st.integers(0, 2 * CAP + 5))
        pool = [doc(r) for r in rows["all"]] + [(rows["ct"]["study_uid"], rows["ct"]["series_uid"], "1.2.3.4"),
                                                ("1.2.3", "1.2.4", "1.2.5")]
        docs = [data.draw(st.sampled_from(pool)) for _ in range(count)]
    anonymize = "yes" if data is None else anonymize_value(data, values)
    answer = check(raw_post(default_server, soap(rad69_body(docs, anonymize=xml_escaped(anonymize)))), values, f"{count} documents")
    assert answer.status == 200
    codes_ = [e["errorCode"] for e in answer.errors if e["severity"].endswith(":Error")]
    if count > CAP:
        assert codes_ == ["urn:dicom:wado:0005"] and not answer.documents, codes_
        assert f"at most {CAP}" in answer.errors[0]["codeContext"]
    elif count == 0:
        assert codes_ == ["XDSIRequestError"], codes_
    else:
        assert "urn:dicom:wado:0005" not in codes_
        assert len(answer.documents) + len(codes_) == count, (len(answer.documents), codes_)
    assert_nothing_original(answer, *(d[2] for d in docs))
    still_serving(default_server, rows)


def test_default_cap_of_10000_documents(full_server, rows):
    """WADOWS_SERVER_MAX_DOCUMENTS defaults to 10000: 10000 are answered document by document, 10001 get one
    clear urn:dicom:wado:0005."""
    study, series, _ = doc(rows["ct"])
    for count in (10000, 10001):
        docs = [(study, series, f"1.2.826.0.1.3680043.99.{i}") for i in range(count)]
        answer = check(raw_post(full_server, soap(rad69_body(docs))), Values(), f"{count} documents")
        assert answer.status == 200
        codes_ = [e["errorCode"] for e in answer.errors]
        if count == 10000:
            assert len(codes_) == 10000 and set(codes_) == {"XDSDocumentUniqueIdError"}
        else:
            assert codes_ == ["urn:dicom:wado:0005"]
            assert "10001" in answer.errors[0]["codeContext"] and "10000" in answer.errors[0]["codeContext"]
    still_serving(full_server, rows)


# --- 8. UIDs ----------------------------------------------------------------------------------------------------

def uid_value(data, values: Values, good: str) -> str:
    kind = data.draw(st.sampled_from(["good", "good", "long", "regex", "listed", "inserted", "planted", "text"]))
    if kind == "planted":
        return values.plant(data)
    if kind == "text":
        return values.text(data)
    return data.draw({
        "good": st.just(good),
        "long": st.just(good + ".1" * 20),  # valid syntax, over 64 characters
        "regex": st.from_regex(r"[1-9][0-9]{0,3}(\.(0|[1-9][0-9]{0,8})){15,20}", fullmatch=True),
        "listed": st.sampled_from(["", " ", "1.2.3.", ".1.2", "1..2", "01.2", "1.02", "1.2.3a", "1.2.3\u00a0",
                                   "\u0661.\u0662", "\uff11.\uff12", "1,2,3", "1.2.3 4", "1.2.3\n", "-1.2", "+1.2",
                                   "1.2e3", "0", "0.0", "1." + "9" * 62, "1." + "9" * 63, "2.25." + "1" * 60,
                                   good + "\t", good.upper()]),
        "inserted": st.builds(lambda c, i: good[:i] + c + good[i:], xml_chars, st.integers(0, len(good))),
    }[kind])


@fuzz(120)
@given(data=st.data())
def test_uids(servers, rows, data):
    server = pick_server(data, servers)
    values = Values()
    study, series, sop = doc(data.draw(st.sampled_from([rows["ct"], rows["mr-implicit"]])))
    study_v, series_v, sop_v = (uid_value(data, values, g) for g in (study, series, sop))
    repository = data.draw(st.sampled_from([None, server.health()["repositoryUniqueId"], "planted"]))
    if repository == "planted":
        repository = values.plant(data)
    syntaxes = [data.draw(st.sampled_from([EXPLICIT_LE, IMPLICIT_LE, "1.2.840.10008.1.2.4.50",
                                           "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"]))
                if data.draw(st.booleans()) else uid_value(data, values, EXPLICIT_LE)
                for _ in range(data.draw(st.integers(0, 4)))]
    anonymize = None if server.policy == "full" and data.draw(st.booleans()) else "yes"
    body = rad69_body([("\0", "\0", "\0")], syntaxes=[escape(x) for x in syntaxes],
                      repository=xml_escaped(repository), anonymize=anonymize)
    body = body.replace('studyInstanceUID="\0"', f"studyInstanceUID={quoteattr(study_v)}") \
        .replace('seriesInstanceUID="\0"', f"seriesInstanceUID={quoteattr(series_v)}") \
        .replace(">\0<", f">{escape(sop_v)}<")
    answer = check(raw_post(server, soap(body)), values, "uids")
    assert answer.status == 200, answer.reason
    exact = (study_v, series_v, sop_v) == (study, series, sop)
    if not exact:
        # XML white space around a UID is dropped by design; anything else is another UID.
        stripped = tuple(v.strip() for v in (study_v, series_v, sop_v)) == (study, series, sop)
        if not stripped:
            assert not answer.documents, ((study_v, series_v, sop_v), answer.errors)
    if server.policy == "anonymized":
        assert_nothing_original(answer, sop, study, series)
    still_serving(server, rows)


# --- 9. Anonymize values of every kind --------------------------------------------------------------------------

@fuzz(150)
@given(data=st.data())
def test_anonymize_values(servers, rows, data):
    server = pick_server(data, servers)
    values = Values()
    row = data.draw(st.sampled_from([rows["ct"], rows["mr"], rows["us"], rows["sr"]]))
    anonymize = anonymize_value(data, values)
    twice = data.draw(st.integers(0, 9)) == 0
    body = rad69_body([doc(row)], anonymize=xml_escaped(anonymize))
    if twice:  # a second Anonymize element in the same DocumentRequest
        body = body.replace("</ihe:DocumentRequest>", "<wado:Anonymize>no</wado:Anonymize></ihe:DocumentRequest>")
    answer = check(raw_post(server, soap(body)), values, f"anonymize {anonymize!r}")
    assert answer.status == 200 or twice, answer.reason
    if server.policy == "anonymized":
        assert_nothing_original(answer, row["sop_instance_uid"], row["study_uid"])
    if twice or answer.status != 200:
        return still_serving(server, rows)
    wanted = wants_anonymization(anonymize)
    codes_ = [e["errorCode"] for e in answer.errors if e["severity"].endswith(":Error")]
    if wanted is None:
        empty = anonymize is not None and not xml_normalized(anonymize).strip()
        assert codes_ == ["urn:dicom:wado:0012"] or (empty and server.policy == "full" and not codes_), \
            (anonymize, codes_)
    elif wanted:
        if answer.documents:
            assert answer.documents[0]["new_uid"] not in (None, row["sop_instance_uid"])
            assert_nothing_original(answer, row["sop_instance_uid"])
        else:
            assert codes_ == ["urn:dicom:wado:0001"], (anonymize, codes_)  # burned-in annotation: refused
    elif server.policy == "full":
        assert answer.documents and not answer.documents[0]["new_uid"], (anonymize, codes_)
        if row["transfer_syntax_uid"] == EXPLICIT_LE:  # the syntax asked for: the stored file as it is
            assert answer.parts[answer.documents[0]["cid"]] == row["path"].read_bytes()
    else:
        assert codes_ == ["XDSDocumentUniqueIdError"] and not answer.documents, (anonymize, codes_)
    still_serving(server, rows)


# --- 10. rendered parameters ------------------------------------------------------------------------------------

def rendered_children(data, values: Values, gsps: dict | None) -> list[str]:
    def maybe(name, strategy):
        if data.draw(st.booleans()):
            return f"<wado:{name}>{escape(data.draw(strategy))}</wado:{name}>"
        return ""

    numbers = st.sampled_from(["0", "1", "-1", "64", "512", "2048", "16385", "99999999999999999999", "1e3", "1.5",
                               " 64 ", "\u0666\u0664", "1_0", "abc", "", "NaN", "inf", "-inf", "0x10", "1e308", "3"])
    floats = st.one_of(numbers, st.floats(allow_nan=True, allow_infinity=True).map(repr),
                       st.integers(-70000, 70000).map(str))
    children = [
        maybe("Annotation", st.sampled_from(["patient", "technique", "patient,technique", "technique, patient",
                                             "PATIENT", "", "none", "patient,patient", "x"]) | xml_text),
        maybe("Rows", numbers), maybe("Columns", numbers),
        maybe("WindowCenter", floats), maybe("WindowWidth", floats),
        maybe("ImageQuality", st.sampled_from(["0", "1", "50", "100", "101", "-5", "x", "75.5"])),
        maybe("FrameNumber", st.sampled_from(["0", "1", "2", "3", "99", "-1", "x", "", "2147483648"])),
        maybe("Anonymize", st.sampled_from(["yes", "no", "YES", "true", "x", "", " yes "])),
    ]
    region = data.draw(st.sampled_from(["none", "text", "children", "partial"]))
    if region == "text":
        coords = data.draw(st.lists(floats, min_size=0, max_size=5))
        children.append(f"<wado:Region>{escape(','.join(coords))}</wado:Region>")
    elif region in ("children", "partial"):
        names = ["XMin", "YMin", "XMax", "YMax"] if region == "children" else \
            data.draw(st.lists(st.sampled_from(["XMin", "YMin", "XMax", "YMax", "Xmin", "Other"]), max_size=4))
        coords = "".join(f"<wado:{n}>{escape(data.draw(floats))}</wado:{n}>" for n in names)
        children.append(f"<wado:Region>{coords}</wado:Region>")
    if gsps is not None and data.draw(st.booleans()):
        pair = data.draw(st.sampled_from([(gsps["sop_instance_uid"], gsps["series_uid"]),
                                          (gsps["sop_instance_uid"], "1.2.3"), ("1.2.3", gsps["series_uid"]),
                                          (gsps["sop_instance_uid"], None), ("x", "y")]))
        children.append(f"<wado:PresentationUID>{pair[0]}</wado:PresentationUID>")
        if pair[1] is not None:
            children.append(f"<wado:PresentationSeriesUID>{pair[1]}</wado:PresentationSeriesUID>")
    types = data.draw(st.lists(st.sampled_from(["image/jpeg", "image/png", "image/gif", "image/jp2", "text/html",
                                                "text/plain", "application/pdf", "*/*", "image/*", "text/*",
                                                "application/dicom", "IMAGE/PNG", "image/png; q=0.5", "", "x"])
                               | xml_text, max_size=3))
    if types or data.draw(st.booleans()):
        children.append("<wado:ContentTypeList>" + "".join(f"<wado:ContentType>{escape(t)}</wado:ContentType>"
                                                            for t in types) + "</wado:ContentTypeList>")
    charsets = data.draw(st.lists(st.sampled_from(["utf-8", "UTF-8", "iso-8859-1", "latin1", "ascii", "utf-16",
                                                   "x-unknown", "", "ISO_IR 192", "cp1252"]), max_size=2))
    if charsets:
        children.append("<wado:CharsetList>" + "".join(f"<wado:Charset>{c}</wado:Charset>" for c in charsets)
                        + "</wado:CharsetList>")
    if data.draw(st.integers(0, 4)) == 0:
        children.append(f"<wado:Annotation>{escape(values.plant(data))}</wado:Annotation>")
    children = [c for c in children if c]
    if data.draw(st.integers(0, 3)) == 0:
        random.Random(data.draw(st.integers(0, 1000))).shuffle(children)
    return children


@fuzz(90)
@given(data=st.data())
def test_rendered_parameters(servers, rows, gsps, data):
    server = pick_server(data, servers)
    values = Values()
    count = data.draw(st.integers(1, 3))
    picked = [data.draw(st.sampled_from([rows["ct"], rows["mr"], rows["us"], rows["sr"], rows["ot"], rows["rtdose"]]))
              for _ in range(count)]
    docs = [(*doc(r), rendered_children(data, values, gsps if r is rows["ct"] else None)) for r in picked]
    answer = check(raw_post(server, soap(rendered_body(docs), action=RENDERED_ACTION)), values, "rendered")
    assert answer.status == 200, answer.reason
    assert len(answer.documents) + len([e for e in answer.errors if e["severity"].endswith(":Error")]) == count
    for document in answer.documents:
        mime = document["element"].findtext(f"{{{XDS}}}mimeType") or ""
        assert mime.split(";")[0] in ("image/jpeg", "image/png", "image/gif", "image/jp2", "text/html", "text/plain")
    if server.policy == "anonymized":
        for document in answer.documents:
            assert document["element"].findtext(f"{{{WADO}}}Anonymize") == "yes"
        for part in answer.parts.values():
            leaked = [s for s in IDENTIFYING_STRINGS if s.encode() in part]
            assert not leaked, leaked
    still_serving(server, rows)


# --- 11. metadata XPath -----------------------------------------------------------------------------------------

STEPS = ["NativeDicomModel", "DicomAttribute", "Value", "PersonName", "Alphabetic", "FamilyName", "GivenName",
         "Item", "BulkData", "InlineBinary", "*", "node()", "text()", "dcm:NativeDicomModel", "dcm:DicomAttribute",
         "dcm:Value", "x:y", "comment()", "processing-instruction()", "..", ".", "ancestor::*", "following-sibling::*",
         "@*", "@keyword", "@tag", "@vr", "@number"]
PREDICATES = ["[1]", "[last()]", "[position() < 3]", "[@keyword='PatientName']", "[@tag='00100010']",
              "[@keyword=\"Modality\"]", "[@vr='UI']", "[Value]", "[not(Value)]", "[contains(., 'QZV')]",
              "[string-length(.) > 3]", "[0]", "[-1]", "[1.5]", "[true()]", "[@number=1]", "[]", "[", "[[1]]"]


@st.composite
def xpath_paths(draw):
    out = draw(st.sampled_from(["/", "//", "", "/dcm:NativeDicomModel/"]))
    for i in range(draw(st.integers(1, 4))):
        if i:
            out += draw(st.sampled_from(["/", "//"]))
        out += draw(st.sampled_from(STEPS))
        if draw(st.integers(0, 2)) == 0:
            out += draw(st.sampled_from(PREDICATES))
    return out


@st.composite
def xpath_expressions(draw):
    kind = draw(st.sampled_from(["path", "path", "function", "union", "literal", "random", "listed"]))
    if kind == "path":
        return draw(xpath_paths())
    if kind == "union":
        return draw(xpath_paths()) + " | " + draw(xpath_paths())
    if kind == "function":
        fn = draw(st.sampled_from(["count", "string", "name", "local-name", "namespace-uri", "sum", "number",
                                   "boolean", "not", "normalize-space", "string-length", "id", "lang", "last",
                                   "document", "unknown-fn", "exsl:node-set", "re:test", "concat", "substring",
                                   "translate", "starts-with", "contains", "floor", "round", "position"]))
        args = draw(st.lists(st.one_of(xpath_paths(), st.sampled_from(["'a'", "\"QZVXPATHLIT\"", "1", "0 div 0",
                                                                        "1 div 0", "-0", "$var", "'"])),
                             max_size=3))
        return f"{fn}({', '.join(args)})"
    if kind == "literal":
        return draw(st.sampled_from(["1+1", "'x'", "1 = 1", "0 div 0", "-1 div 0", "9" * 400, "1e3", ".5", "'" + "a" * 5000 + "'",
                                     "/" * 50, "((((((((((1))))))))))", "(" * 200 + "1" + ")" * 200, "", " ", "/",
                                     "//*", "//node()", "//@*", "/descendant-or-self::node()"]))
    if kind == "random":
        return draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60))
    return draw(xml_text)


@fuzz(60)
@given(data=st.data())
@example(data=None)
def test_metadata_xpath(servers, rows, data):
    values = Values()
    if data is None:  # more expressions than a document may carry
        server, row, xpaths, anonymize = servers["full"], rows["ct"], ["/"] * 33, None
    else:
        server = pick_server(data, servers)
        row = data.draw(st.sampled_from([rows["ct"], rows["sr"], rows["mr-implicit"]]))
        xpaths = data.draw(st.lists(xpath_expressions(), min_size=0, max_size=3))
        if data.draw(st.integers(0, 5)) == 0:
            xpaths.append(f"//*[@keyword='{values.plant(data)}']")
        anonymize = anonymize_value(data, values) if data.draw(st.booleans()) else "yes"
    values.free.extend(x for x in xpaths if len(x) >= ECHO_WINDOW and "QZV" not in x and not set(x) <= set("/()9'a"))
    body = information_body(*doc(row), xpaths, anonymize)
    answer = check(raw_post(server, soap(body, action=INFORMATION_ACTION)), values, f"xpath {xpaths!r}")
    assert answer.status == 200, answer.reason
    codes_ = [e["errorCode"] for e in answer.errors if e["severity"].endswith(":Error")]
    if len(xpaths) > 32:
        assert codes_ == ["urn:dicom:wado:0005"]
    for document in answer.documents:
        texts = [t.text or "" for t in document["element"].iter(f"{{{WADO}}}XPathResponse")]
        assert len(texts) == len(xpaths)
        if server.policy == "anonymized" or wants_anonymization(anonymize):
            leaked = [s for s in IDENTIFYING_STRINGS if any(s in t for t in texts)]
            assert not leaked and not any(row["sop_instance_uid"] in t for t in texts), leaked
    still_serving(server, rows)


# --- 12. the HTTP request around the envelope -------------------------------------------------------------------

def raw_http(port: int, request: bytes, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Send exact bytes; read the whole answer (the request asks the server to close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                chunk = connection.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    assert data, "the connection was closed without an answer"
    return parse_http_answer(data)


class _RawReply:
    """requests.Response's few attributes check() uses."""

    def __init__(self, status, headers, content):
        self.status_code, self.content = status, content
        self.headers = requests.structures.CaseInsensitiveDict(headers)


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60)


@fuzz(100)
@given(data=st.data())
def test_http_headers(servers, rows, data):
    """Content-Type, SOAPAction, Content-Length, Expect and other request headers, random, sometimes over gunicorn's
    limits: whatever refuses the request, the answer is a SOAP fault quoting nothing."""
    server = pick_server(data, servers)
    values = Values()
    body, action = valid_request(data, rows)
    content_kind = data.draw(st.sampled_from(["listed", "listed", "text", "planted-action", "planted-boundary"]))
    content_type = {"text": lambda: values.text(data, header_text),
                    "planted-action": lambda: f'application/soap+xml; action="{values.plant(data, around=False)}"',
                    "planted-boundary": lambda: f"multipart/related; boundary={values.plant(data, around=False)}",
                    }.get(content_kind, lambda: None)()
    content_type = content_type if content_kind != "listed" else data.draw(
        st.sampled_from(CONTENT_TYPES + [
            f'application/soap+xml; action="{action}"', f'application/soap+xml;action={action}',
            'application/soap+xml; charset="utf-8"; action=""', "APPLICATION/SOAP+XML", "application/soap+xml;;",
            "multipart/related; boundary*=utf-8''%62", 'multipart/related; boundary=""', "multipart/related; boundary",
            'multipart/related; boundary="' + "b" * 5000 + '"', "application/soap+xml; charset=" + "x" * 3000]))
    headers = [("Host", "127.0.0.1"), ("Connection", "close")]
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    length_kind = data.draw(st.sampled_from(["exact", "exact", "exact", "shorter", "longer", "none", "bogus",
                                             "negative", "two", "chunked", "chunked-bad"]))
    payload = body
    if length_kind == "exact":
        headers.append(("Content-Length", str(len(body))))
    elif length_kind == "shorter":
        headers.append(("Content-Length", str(data.draw(st.integers(0, max(0, len(body) - 1))))))
    elif length_kind == "longer":  # the client half-closes: the server sees fewer bytes than promised
        headers.append(("Content-Length", str(len(body) + data.draw(st.integers(1, 1000)))))
    elif length_kind == "bogus":
        headers.append(("Content-Length", data.draw(st.sampled_from(["abc", "1e3", "0x10", " ", "+5", "9" * 30]))))
        if headers[-1][1] == "9" * 30:  # a number, over the request cap: the application's 413
            length_kind = "huge"
    elif length_kind == "negative":
        headers.append(("Content-Length", "-1"))
    elif length_kind == "two":
        headers += [("Content-Length", str(len(body))), ("Content-Length", "5")]
    elif length_kind == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 300]), body[i:i + 300])
                           for i in range(0, len(body), 300)) + b"0\r\n\r\n"
    elif length_kind == "chunked-bad":
        headers.append(("Transfer-Encoding", "chunked"))
        payload = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    if data.draw(st.integers(0, 5)) == 0:  # only 100-continue is supported: others are refused before the application
        expect = data.draw(st.sampled_from(["100-continue", "100-Continue", "planted", "text"]))
        headers.append(("Expect", values.plant(data, around=False) if expect == "planted"
                        else values.text(data, header_text) if expect == "text" else expect))
    if data.draw(st.integers(0, 9)) == 0:  # over gunicorn's 8190-byte limit_request_field_size
        headers.append(("X-Long", values.plant(data, around=False) + "a" * 9000))
    for _ in range(data.draw(st.integers(0, 4))):
        name = data.draw(st.sampled_from(["SOAPAction", "Accept", "Accept-Encoding", "X-Forwarded-For",
                                          "Content-Encoding", "X-Planted", "Cookie", "User-Agent", "MIME-Version",
                                          "Authorization"]))
        kind = data.draw(st.sampled_from(["text", "listed", "planted"]))
        value = values.plant(data, around=False) if kind == "planted" else values.text(data, header_text) \
            if kind == "text" else data.draw(st.sampled_from(["gzip", "100-continue", '""', f'"{action}"', "*/*",
                                                              "a" * 4000]))
        if name == "Authorization" and kind == "planted":
            value = data.draw(st.sampled_from([
                "Basic " + base64.b64encode(f"{value}:{value}".encode()).decode(), f"Bearer {value}", value]))
        headers.append((name, value))
    request = ("POST /wado-ws HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1") \
        + payload
    status, reply_headers, reply_body = raw_http(server.port, request)
    # Malformed HTTP framing is refused before the application runs, by wadows.gunicorn_worker: a Sender fault too.
    answer = check(_RawReply(status, reply_headers, reply_body), values, f"http {length_kind}")
    if length_kind in ("bogus", "negative", "two"):  # refused before the application (chunked-bad: when read)
        assert answer.status == 400 and answer.fault_code == "env:Sender", (length_kind, answer.status, answer.reason)
    still_serving(server, rows)


def test_http_header_beyond_the_line_limit(full_server, rows):
    """FUZZ-SOAP-1 (fixed): a request header longer than gunicorn's limit_request_field_size (8190 bytes) was
    refused by gunicorn itself with its own HTML page (HTTP 431); wadows.gunicorn_worker answers a Sender fault."""
    body = soap(rad69_body([doc(rows["ct"])]))
    reply = raw_post(full_server, body, headers={"SOAPAction": '"QZVLONGHEADER' + "A" * 9000 + '"'})
    PLANTED.add("QZVLONGHEADER")
    try:
        answer = check(reply, Values(["A" * 100]), "9000-byte SOAPAction")
        assert answer.status == 400 and answer.fault_code == "env:Sender", (answer.status, answer.reason)
    finally:
        still_serving(full_server, rows)


def test_many_mime_parts_are_read_quickly(full_server, rows):
    """FUZZ-SOAP-3 (fixed): MIME parsing with the email package cost about 1 ms per part (plus a re-parse of the
    7 KB multipart Content-Type for every part): a request of 1,000 empty parts (10 KB) held a worker thread a
    second, one of 10 MB several minutes. wadows.multipart.split reads it in linear time: as many parts as
    accepted (MAX_PARTS, the root included) are answered as fast as any request."""
    import time
    root = multipart("b", [(ROOT_HEADERS, soap(rad69_body([doc(rows["ct"])])))], close=False)
    body = root + b"--b\r\n\r\n\r\n" * (MAX_PARTS - 1) + b"--b--\r\n"
    content_type = mtom_type("b") + '; x-padding="' + "p" * 7000 + '"'
    timings = []
    for _ in range(3):  # the best of three: a shared machine may stall any one request; the old parser, every one
        started = time.monotonic()
        reply = raw_post(full_server, body, content_type)
        timings.append(time.monotonic() - started)
        answer = check(reply, Values(), f"{MAX_PARTS} MIME parts")
        assert answer.status == 200 and answer.registry_status == SUCCESS, answer.reason
    still_serving(full_server, rows)
    assert min(timings) < 0.25, f"{len(body)} bytes in {min(timings):.2f} s at best (the email package: ~1 s)"


@pytest.mark.parametrize("size", ["one over the cap", "10 MB"])
def test_mime_parts_beyond_the_cap_are_refused(full_server, rows, size):
    """More MIME parts than MAX_PARTS: a Sender fault naming the cap, found without reading the rest of the body."""
    import time
    root = multipart("b", [(ROOT_HEADERS, soap(rad69_body([doc(rows["ct"])])))], close=False)
    count = MAX_PARTS if size == "one over the cap" else (MAX_REQUEST - len(root)) // 9 - 1  # just under the cap
    body = root + b"--b\r\n\r\n\r\n" * count + b"--b--\r\n"
    started = time.monotonic()
    answer = check(raw_post(full_server, body, mtom_type("b")), Values(), f"{count + 1} MIME parts")
    elapsed = time.monotonic() - started
    assert answer.status == 400 and answer.fault_code == "env:Sender", (answer.status, answer.reason)
    assert f"more than {MAX_PARTS} parts" in answer.reason, answer.reason
    assert elapsed < 5, f"{len(body)} bytes refused in {elapsed:.1f} s"
    still_serving(full_server, rows)


@pytest.fixture(scope="module")
def bare_server(store_dir, tmp_path_factory):
    """A server of its own for requests gunicorn refuses before the application runs: its log is checked here,
    apart from the two fuzzed servers' logs."""
    data = tmp_path_factory.mktemp("fuzz-soap-bare")
    server = ServerProcess(store_dir, data, data / "server.log", ["--unauthenticated", "full"])
    server.policy = "full"
    yield server
    server.stop()


@pytest.mark.parametrize("header", ["Expect", "Transfer-Encoding"])
def test_gunicorn_refusals_quote_no_header_value(bare_server, rows, header):
    """FUZZ-SOAP-2 (fixed): gunicorn refused an Expect or Transfer-Encoding value it does not support with an HTML
    page quoting the value (HTTP 417/501) and logged the value at WARNING level; now a Sender fault that quotes
    nothing, and a log line naming the kind of refusal only."""
    marker = f"QZVGUNI{header[:4].upper()}"
    body = soap(rad69_body([doc(rows["ct"])]))
    request = (f"POST /wado-ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               f"Content-Type: application/soap+xml\r\nContent-Length: {len(body)}\r\n{header}: {marker}\r\n\r\n"
               ).encode() + body
    status, headers, reply = raw_http(bare_server.port, request)
    still_serving(bare_server, rows)
    answer = check(_RawReply(status, headers, reply), Values([marker]), f"unsupported {header}")
    assert answer.status == 400 and answer.fault_code == "env:Sender", (answer.status, answer.reason)
    assert marker not in bare_server.log()


# --- 13. the logs (keep last) -----------------------------------------------------------------------------------

def test_server_logs_hold_no_planted_value(servers, rows):
    """Every marker this module planted in a request (plus a few sent here, so the test stands alone) stays out of
    both servers' logs. Receiver faults seen by the fuzzing are reported as a warning."""
    extra = ["QZVLOGCHECK1", "QZVLOGCHECK2", "QZVLOGCHECK3"]
    PLANTED.update(extra)
    for server in servers.values():
        study, series, sop = doc(rows["ct"])
        raw_post(server, soap(rad69_body([(study, series, extra[0])], anonymize="yes"), message_id=extra[1]))
        raw_post(server, soap(f"<x:{extra[2]} xmlns:x='urn:x'/>"))
        raw_post(server, soap(information_body(study, series, sop, [f"//*[@keyword='{extra[2]}']", "/x["], "yes"),
                              action=INFORMATION_ACTION))
        log = server.log()
        leaked = sorted(m for m in PLANTED if m in log)
        assert not leaked, f"planted request values in the server log: {leaked[:10]}"
        assert "Traceback" not in log
        assert not re.search(r"\b1\.2\.826\.0\.1\.3680043\.8\.498\.\d{10,}", log), "a sample UID in the log"
    if RECEIVER_FAULTS:
        warnings.warn(f"{len(RECEIVER_FAULTS)} fuzzed requests got a Receiver fault (HTTP 500): "
                      f"{sorted(set(RECEIVER_FAULTS))[:10]}")
