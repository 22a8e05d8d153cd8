"""Retrieve a whole study over RAD-69 with the wadows client; add --anonymize for de-identified objects."""

import argparse
from pathlib import Path

from wadows.client import WadoWsClient

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("endpoint", help="the WADO-WS endpoint, e.g. http://127.0.0.1:8080/wado-ws")
parser.add_argument("study", help="Study Instance UID")
parser.add_argument("--anonymize", action="store_true", help="ask for de-identified objects")
parser.add_argument("--out", type=Path, default=Path("retrieved"), help="folder for the .dcm files")
args = parser.parse_args()

client = WadoWsClient(args.endpoint)
args.out.mkdir(parents=True, exist_ok=True)
with client.retrieve(client.instances(args.study), anonymize=args.anonymize) as result:
    for document in result.documents:  # streamed: one object at a time
        size = document.save(args.out / f"{document.returned_uid}.dcm")
        print(f"{document.returned_uid}  {size:>9} bytes")
for error in result.errors:
    print(f"{error.code} {error.location}: {error.context}")
print(result.status.rsplit(":", 1)[-1])
