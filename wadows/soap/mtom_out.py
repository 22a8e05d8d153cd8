"""The MTOM/XOP response writer: a generator that sends the envelope, then each document in turn.

spyne's own MTOM output does not work on Python 3 and would buffer everything; this writes one part at a time, so
a whole study leaves in bounded memory. Every part carries `Content-Transfer-Encoding: binary` because .NET and
Spring-based consumers reject parts without it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Iterator

from wadows.streaming import guarded
from wadows.wado.messages import Body

ROOT_MEDIA_TYPE = 'application/xop+xml; charset=UTF-8; type="application/soap+xml"'


def new_content_id() -> str:
    # Random: a Content-ID must never carry a UID or anything else derived from the data.
    return f"{uuid.uuid4().hex}@wadows"


@dataclass
class MtomMessage:
    content_type: str
    content_length: int | None  # None when a part's size is unknown in advance: the server then chunks
    chunks: Iterator[bytes]


def build(envelope: bytes, attachments: list[tuple[str, Body]], action: str) -> MtomMessage:
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_id = f"root.{new_content_id()}"
    head = _part_head(boundary, root_id, ROOT_MEDIA_TYPE, first=True)
    heads = [_part_head(boundary, cid, body.media_type) for cid, body in attachments]
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")

    sizes = [body.size for _, body in attachments]
    length = None
    if all(s is not None for s in sizes):
        length = len(head) + len(envelope) + sum(map(len, heads)) + sum(sizes) + len(tail)

    def chunks() -> Iterator[bytes]:
        yield head + envelope
        for number, (part_head, (_, body)) in enumerate(zip(heads, attachments), 1):
            yield part_head
            # The status went out with the envelope: a document failing now can only cut the connection.
            yield from guarded(body.chunks(), f"document {number} of {len(attachments)}")
        yield tail

    content_type = (
        f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
        f'start="<{root_id}>"; start-info="application/soap+xml"; action="{action}"'
    )
    return MtomMessage(content_type, length, chunks())


def _part_head(boundary: str, content_id: str, media_type: str, first: bool = False) -> bytes:
    lead = "" if first else "\r\n"
    return (
        f"{lead}--{boundary}\r\n"
        f"Content-Type: {media_type}\r\n"
        f"Content-Transfer-Encoding: binary\r\n"
        f"Content-ID: <{content_id}>\r\n\r\n"
    ).encode("ascii")
