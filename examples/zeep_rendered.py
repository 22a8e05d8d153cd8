"""RetrieveRenderedImagingDocumentSet with zeep: one object rendered as an image (or a report as text).

    python examples/zeep_rendered.py --url http://127.0.0.1:8080/wado-ws STUDY SERIES SOP [--anonymize]

The rendering is written to --output (default: rendered.<extension of the type returned>). The values the
server actually used (size, window, frame) are printed from the response's echo. With --anonymize the
rendering is made from the de-identified object: burned-in text blanked by a pixel rule, no overlays, and
Annotation=patient draws only de-identified values.
"""

import argparse
import os
import sys

import requests
import zeep
from zeep.wsdl import attachments


class ExactAttachment(attachments.Attachment):
    """zeep strips CR and LF bytes from both ends of every binary MIME part (zeep issue 1249); a text rendering
    ends in a line break. The part as split at its MIME boundary is exact: use it as it is."""

    @property
    def content(self):
        if (self.headers.get("Content-Transfer-Encoding") or "").lower() == "binary":
            return self._part.content
        return super().content


attachments.Attachment = ExactAttachment  # zeep makes its attachments from this module's class

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/jp2": "jp2",
              "text/html": "html", "text/plain": "txt"}

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--url", required=True, help="the WADO-WS endpoint, e.g. http://127.0.0.1:8080/wado-ws")
parser.add_argument("study", help="Study Instance UID")
parser.add_argument("series", help="Series Instance UID")
parser.add_argument("sop", help="SOP Instance UID (the DocumentUniqueId)")
parser.add_argument("--anonymize", action="store_true", help="render the de-identified object")
parser.add_argument("--content-type", action="append", dest="content_types",
                    help="acceptable type, in order of preference (repeatable; default image/jpeg, text/html)")
parser.add_argument("--rows", help="the most rows the rendering may have (aspect ratio kept)")
parser.add_argument("--frame", help="frame number (1-based), required for multi-frame objects")
parser.add_argument("--annotation", help="patient, technique, or both comma-separated")
parser.add_argument("--output", help="file to write (default rendered.<extension>)")
parser.add_argument("--user", help="HTTP Basic user (password from the WADOWS_PASSWORD environment variable)")
parser.add_argument("--ca", help="CA bundle to verify an https server with")
args = parser.parse_args()

session = requests.Session()
if args.user:
    session.auth = (args.user, os.environ["WADOWS_PASSWORD"])
if args.ca:
    session.verify = args.ca
client = zeep.Client(f"{args.url}?wsdl", transport=zeep.Transport(session=session))

# ContentTypeList is required; the server picks the first type it can make for this kind of object.
document = {"DocumentUniqueId": args.sop,
            "ContentTypeList": {"ContentType": args.content_types or ["image/jpeg", "text/html"]}}
for name, value in (("Rows", args.rows), ("FrameNumber", args.frame), ("Annotation", args.annotation)):
    if value is not None:
        document[name] = value
if args.anonymize:
    document["Anonymize"] = "yes"
result = client.service.ImagingDocumentSource_RetrieveRenderedImagingDocumentSet(
    StudyRequest=[{"studyInstanceUID": args.study, "SeriesRequest": [
        {"seriesInstanceUID": args.series, "RenderedDocumentRequest": [document]}]}])

print("status:", result.RegistryResponse.status.rsplit(":", 1)[-1])
errors = result.RegistryResponse.RegistryErrorList
for error in errors.RegistryError if errors is not None else []:
    print(f"{error.severity.rsplit(':', 1)[-1]} {error.errorCode} for {error.location}: {error.codeContext}")

for rendered in result.RenderedDocumentResponse:
    media_type = rendered.mimeType.split(";")[0].strip()
    path = args.output or f"rendered.{EXTENSIONS.get(media_type, 'bin')}"
    with open(path, "wb") as f:
        f.write(rendered.Document)
    print(f"saved {path} ({len(rendered.Document)} bytes, {rendered.mimeType})")
    # The echo: what the server used (absent values did not apply, e.g. no window for a colour image).
    echoed = {name: getattr(rendered, name) for name in ("Rows", "Columns", "WindowCenter", "WindowWidth",
                                                         "ImageQuality", "FrameNumber", "Annotation", "Anonymize")}
    print("used:", ", ".join(f"{name}={value}" for name, value in echoed.items() if value is not None))
sys.exit(0 if result.RenderedDocumentResponse else 1)
