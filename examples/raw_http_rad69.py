"""RAD-69 over plain HTTP, the way an integration engine sends it: standard library only, no SOAP toolkit.

    python examples/raw_http_rad69.py --url http://127.0.0.1:8080/wado-ws STUDY SERIES SOP [--anonymize]

Builds the SOAP 1.2 envelope by hand with its WS-Addressing headers, POSTs it with http.client, and reads the
MTOM (multipart/related) answer: the root part is the SOAP envelope, each document is a MIME part that the
envelope names with <xop:Include href="cid:..."/>. The parts are cut at the MIME boundary, byte for byte, so
every byte of the object survives (a DICOM object may end in CR LF). Each object is saved as <UID>.dcm.
"""

import argparse
import base64
import email.message
import http.client
import os
import re
import ssl
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

NS = {"env": "http://www.w3.org/2003/05/soap-envelope", "wsa": "http://www.w3.org/2005/08/addressing",
      "ihe": "urn:ihe:iti:xds-b:2007", "rs": "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0",
      "xop": "http://www.w3.org/2004/08/xop/include"}
ACTION = "urn:ihe:rad:2009:RetrieveImagingDocumentSet"
UID = re.compile(r"[0-9]+(\.[0-9]+)*")

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--url", required=True, help="the WADO-WS endpoint, e.g. http://127.0.0.1:8080/wado-ws")
parser.add_argument("study", help="Study Instance UID")
parser.add_argument("series", help="Series Instance UID")
parser.add_argument("sop", help="SOP Instance UID (the DocumentUniqueId)")
parser.add_argument("--anonymize", action="store_true", help="ask for the object de-identified (PS3.15)")
parser.add_argument("--out", type=Path, default=Path("."), help="folder for the .dcm file (default: here)")
parser.add_argument("--user", help="HTTP Basic user (password from the WADOWS_PASSWORD environment variable)")
parser.add_argument("--ca", help="CA bundle to verify an https server with")
args = parser.parse_args()

# 1. The request. wsa:Action carries mustUnderstand (IHE ITI TF-2 Appendix V); ReplyTo is the anonymous address
#    (the answer comes back on this connection). Anonymize goes inside the DocumentRequest, in the WADO namespace.
message_id = f"urn:uuid:{uuid.uuid4()}"
anonymize = "<wado:Anonymize>yes</wado:Anonymize>" if args.anonymize else ""
syntaxes = "".join(f"<iherad:TransferSyntaxUID>{ts}</iherad:TransferSyntaxUID>" for ts in (
    "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.5"))
envelope = f"""<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="{NS['env']}" xmlns:wsa="{NS['wsa']}">
  <env:Header>
    <wsa:Action env:mustUnderstand="true">{ACTION}</wsa:Action>
    <wsa:MessageID>{message_id}</wsa:MessageID>
    <wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo>
    <wsa:To>{escape(args.url)}</wsa:To>
  </env:Header>
  <env:Body>
    <iherad:RetrieveImagingDocumentSetRequest xmlns:iherad="urn:ihe:rad:xdsi-b:2009"
        xmlns:ihe="{NS['ihe']}" xmlns:wado="urn:dicom:wado:ws:2011">
      <iherad:StudyRequest studyInstanceUID="{escape(args.study)}">
        <iherad:SeriesRequest seriesInstanceUID="{escape(args.series)}">
          <ihe:DocumentRequest>
            <ihe:DocumentUniqueId>{escape(args.sop)}</ihe:DocumentUniqueId>{anonymize}
          </ihe:DocumentRequest>
        </iherad:SeriesRequest>
      </iherad:StudyRequest>
      <iherad:TransferSyntaxUIDList>{syntaxes}</iherad:TransferSyntaxUIDList>
    </iherad:RetrieveImagingDocumentSetRequest>
  </env:Body>
</env:Envelope>""".encode("utf-8")

# 2. POST it. SOAP 1.2 puts the action in the media type; no SOAPAction header is needed.
url = urlsplit(args.url)
if url.scheme == "https":
    connection = http.client.HTTPSConnection(url.hostname, url.port, timeout=60,
                                             context=ssl.create_default_context(cafile=args.ca))
else:
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
headers = {"Content-Type": f'application/soap+xml; charset=UTF-8; action="{ACTION}"'}
if args.user:  # HTTP Basic; the server accepts it over TLS only, unless configured otherwise
    token = base64.b64encode(f"{args.user}:{os.environ['WADOWS_PASSWORD']}".encode("utf-8")).decode("ascii")
    headers["Authorization"] = f"Basic {token}"
connection.request("POST", url.path or "/", body=envelope, headers=headers)
response = connection.getresponse()
body = response.read()  # http.client undoes chunked transfer coding
content_type = email.message.Message()
content_type["Content-Type"] = response.getheader("Content-Type", "")
if content_type.get_content_type() != "multipart/related":
    # A SOAP fault (unreadable request, failed authentication) comes as plain application/soap+xml.
    try:
        reason = ET.fromstring(body).findtext(".//env:Fault/env:Reason/env:Text", namespaces=NS)
    except ET.ParseError:
        reason = body[:200].decode("utf-8", "replace")
    sys.exit(f"HTTP {response.status}: {reason}")

# 3. Cut the multipart body at its boundary: "--B" opens the first part, "\r\n--B" every next one, "\r\n--B--"
#    ends the body. Each part is MIME headers, an empty line, then the exact bytes of the content.
boundary = content_type.get_param("boundary").encode("ascii")
inner = body[body.index(b"--" + boundary + b"\r\n") + len(boundary) + 4: body.rindex(b"\r\n--" + boundary + b"--")]
parts = {}
for chunk in inner.split(b"\r\n--" + boundary + b"\r\n"):
    head, _, content = chunk.partition(b"\r\n\r\n")
    headers = dict(line.split(":", 1) for line in head.decode("ascii").split("\r\n"))
    headers = {name.strip().lower(): value.strip() for name, value in headers.items()}
    parts[headers["content-id"].strip("<>")] = content
root = parts.pop(content_type.get_param("start").strip("<>"))  # the root part: the SOAP envelope

# 4. Read the envelope: WS-Addressing says which request this answers; RegistryResponse says how it went.
answer = ET.fromstring(root)
relates_to = answer.findtext("env:Header/wsa:RelatesTo", namespaces=NS)
print("action:", answer.findtext("env:Header/wsa:Action", namespaces=NS))
if relates_to != message_id:
    sys.exit(f"the answer relates to {relates_to}, not to our request {message_id}")
registry = answer.find(".//rs:RegistryResponse", NS)
print("status:", registry.get("status").rsplit(":", 1)[-1])
for error in registry.iterfind(".//rs:RegistryError", NS):
    print(f"{error.get('severity').rsplit(':', 1)[-1]} {error.get('errorCode')} for {error.get('location')}: "
          f"{error.get('codeContext')}")

saved = 0
for document in answer.iterfind(".//ihe:DocumentResponse", NS):
    new_uid = document.findtext("ihe:NewDocumentUniqueId", namespaces=NS)  # present when anonymized
    uid = new_uid or document.findtext("ihe:DocumentUniqueId", namespaces=NS)
    if not UID.fullmatch(uid or ""):  # it becomes a file name: never trust it blindly
        sys.exit(f"the server returned an unusable UID: {uid!r}")
    href = document.find("ihe:Document/xop:Include", NS).get("href")
    data = parts[unquote(href[len("cid:"):])]  # Content-IDs may be percent-encoded in the href (RFC 2392)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{uid}.dcm"
    path.write_bytes(data)
    saved += 1
    print(f"saved {path} ({len(data)} bytes, {document.findtext('ihe:mimeType', namespaces=NS)})")
    if new_uid:
        print(f"new SOP Instance UID {new_uid}")
sys.exit(0 if saved else 1)
