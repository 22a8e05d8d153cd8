"""RetrieveImagingDocumentSetInformation (the metadata operation) with zeep: XPath over one object's header.

    python examples/zeep_metadata.py --url http://127.0.0.1:8080/wado-ws STUDY SERIES SOP [--anonymize]

The header is the PS3.19 Native DICOM Model; XPath 1.0 runs over it, with the prefix dcm: bound to its namespace
(unprefixed paths work too). "/" (the default) asks for the whole model. Each answer goes to standard output,
in request order; status and errors go to standard error. With --anonymize the model is built from the
de-identified header: new UIDs (the same ones a RAD-69 retrieval gives), no names, the markers added.
"""

import argparse
import os
import sys

import requests
import zeep

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--url", required=True, help="the WADO-WS endpoint, e.g. http://127.0.0.1:8080/wado-ws")
parser.add_argument("study", help="Study Instance UID")
parser.add_argument("series", help="Series Instance UID")
parser.add_argument("sop", help="SOP Instance UID (the DocumentUniqueId)")
parser.add_argument("--anonymize", action="store_true", help="ask about the de-identified object")
parser.add_argument("--xpath", action="append", dest="xpaths",
                    help='XPath 1.0 expression (repeatable; default "/"), e.g. '
                         "'string(//dcm:DicomAttribute[@keyword=\"Modality\"]/dcm:Value)'")
parser.add_argument("--user", help="HTTP Basic user (password from the WADOWS_PASSWORD environment variable)")
parser.add_argument("--ca", help="CA bundle to verify an https server with")
args = parser.parse_args()

session = requests.Session()
if args.user:
    session.auth = (args.user, os.environ["WADOWS_PASSWORD"])
if args.ca:
    session.verify = args.ca
client = zeep.Client(f"{args.url}?wsdl", transport=zeep.Transport(session=session))

# The answers are text inside the envelope (no MTOM attachment), so zeep's CR/LF problem does not arise here.
document = {"DocumentUniqueId": args.sop, "XPath": args.xpaths or ["/"]}
if args.anonymize:
    document["Anonymize"] = "yes"
result = client.service.ImagingDocumentSource_RetrieveImagingDocumentSetInformation(
    StudyRequest=[{"studyInstanceUID": args.study, "SeriesRequest": [
        {"seriesInstanceUID": args.series, "DocumentInformationRequest": [document]}]}])

print("status:", result.RegistryResponse.status.rsplit(":", 1)[-1], file=sys.stderr)
errors = result.RegistryResponse.RegistryErrorList
for error in errors.RegistryError if errors is not None else []:
    print(f"{error.severity.rsplit(':', 1)[-1]} {error.errorCode} for {error.location}: {error.codeContext}",
          file=sys.stderr)

for answer in result.DocumentInformationResponse:
    for text in answer.XPathResponseList.XPathResponse:
        print(text or "")  # an XPath that matched nothing gives an empty answer
sys.exit(0 if result.DocumentInformationResponse else 1)
