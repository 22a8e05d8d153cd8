"""RAD-69 RetrieveImagingDocumentSet with zeep: one DICOM object, saved as <SOP Instance UID>.dcm.

    python examples/zeep_retrieve.py --url http://127.0.0.1:8080/wado-ws STUDY SERIES SOP [--anonymize]

zeep reads the server's WSDL, writes the SOAP 1.2 request with its WS-Addressing headers and parses the MTOM
answer. With --anonymize the object comes back de-identified, with a new SOP Instance UID (the file is named
after it). Callers without credentials get anonymized objects only, unless the server is configured otherwise;
--user authenticates with HTTP Basic (password from WADOWS_PASSWORD), over https.
"""

import argparse
import os
import re
import sys
from pathlib import Path

import requests
import zeep
from zeep.wsdl import attachments


class ExactAttachment(attachments.Attachment):
    """zeep strips CR and LF bytes from both ends of every binary MIME part (zeep issue 1249). A DICOM object
    may end in 0x0D 0x0A (its last pixel values), so the stripped copy would be a damaged object. The part as
    split at its MIME boundary is exact: use it as it is."""

    @property
    def content(self):
        if (self.headers.get("Content-Transfer-Encoding") or "").lower() == "binary":
            return self._part.content
        return super().content


attachments.Attachment = ExactAttachment  # zeep makes its attachments from this module's class

# Accept what archives commonly store, so that the object comes back as stored, byte for byte.
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.5",
]
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

session = requests.Session()
if args.user:
    session.auth = (args.user, os.environ["WADOWS_PASSWORD"])
if args.ca:
    session.verify = args.ca
client = zeep.Client(f"{args.url}?wsdl", transport=zeep.Transport(session=session))

document = {"DocumentUniqueId": args.sop}
if args.anonymize:
    document["Anonymize"] = "yes"  # {urn:dicom:wado:ws:2011}Anonymize inside ihe:DocumentRequest
result = client.service.ImagingDocumentSource_RetrieveImagingDocumentSet(
    StudyRequest=[{"studyInstanceUID": args.study, "SeriesRequest": [
        {"seriesInstanceUID": args.series, "DocumentRequest": [document]}]}],
    TransferSyntaxUIDList={"TransferSyntaxUID": TRANSFER_SYNTAXES})

print("status:", result.RegistryResponse.status.rsplit(":", 1)[-1])
errors = result.RegistryResponse.RegistryErrorList
for error in errors.RegistryError if errors is not None else []:
    print(f"{error.severity.rsplit(':', 1)[-1]} {error.errorCode} for {error.location}: {error.codeContext}")

for response in result.DocumentResponse:
    # DocumentUniqueId echoes the UID asked for; an anonymized object has a new one, reported separately.
    uid = response.NewDocumentUniqueId or response.DocumentUniqueId
    if not UID.fullmatch(uid):  # it becomes a file name: never trust it blindly
        sys.exit(f"the server returned an unusable UID: {uid!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{uid}.dcm"
    path.write_bytes(response.Document)
    print(f"saved {path} ({len(response.Document)} bytes, {response.mimeType})")
    if response.NewDocumentUniqueId:
        print(f"new SOP Instance UID {response.NewDocumentUniqueId}")
sys.exit(0 if result.DocumentResponse else 1)
