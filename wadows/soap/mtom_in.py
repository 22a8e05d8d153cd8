"""Reading a request body that may be MTOM/XOP packaged (multipart/related) or plain XML.

Java stacks (CXF, JAX-WS/Metro) send MTOM even when nothing is optimized: one root part, often with an XML
declaration, no attachments. Only `cid:` references to parts present in this very message are resolved
(CXF-8706 was a content injection through other schemes).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote

from lxml import etree

from wadows.soap import namespaces as ns
from wadows.soap.errors import sender


@dataclass
class RequestPackage:
    xml: bytes
    attachments: dict[str, bytes]  # Content-ID without angle brackets -> bytes
    action_param: str | None        # the `action` media-type parameter (SOAP 1.2 HTTP binding), if any


def media_type_params(content_type: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type header into its media type and parameters (RFC 2045 quoting)."""
    msg = EmailMessage()
    msg["Content-Type"] = content_type or "application/octet-stream"
    params = {k.lower(): v for k, v in (msg.get_params() or [])[1:]}
    return msg.get_content_type(), params


def unpack(content_type: str, body: bytes) -> RequestPackage:
    media_type, params = media_type_params(content_type)
    if media_type != "multipart/related":
        return RequestPackage(body, {}, params.get("action"))
    if "boundary" not in params:
        raise sender("multipart/related request without a boundary parameter")
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    if not parts:
        raise sender("multipart/related request without any MIME part")
    start = _strip_brackets(params.get("start"))
    root = next((p for p in parts if start and _strip_brackets(p.get("Content-ID")) == start), None)
    if root is None:
        if start:
            raise sender("The multipart request names a start part that is not in the message")
        root = parts[0]
    attachments = {}
    for part in parts:
        if part is not root and part.get("Content-ID"):
            attachments[_strip_brackets(part.get("Content-ID"))] = part.get_payload(decode=True) or b""
    xml = root.get_payload(decode=True) or b""
    # start-info / the root part's `action` parameter carry the SOAP action in SOAP 1.2 MTOM.
    _, root_params = media_type_params(root.get("Content-Type", ""))
    action = params.get("action") or root_params.get("action") or _action_in_start_info(params)
    return RequestPackage(xml, attachments, action)


def resolve_xop(root: etree._Element, attachments: dict[str, bytes]) -> None:
    """Replace every xop:Include by the base64 text of the part it names (the XOP Infoset). A part may be
    referenced once: many references to one large part would multiply it in memory."""
    used = set()
    for include in list(root.iter(f"{{{ns.XOP}}}Include")):
        href = include.get("href", "")
        if not href.lower().startswith("cid:"):
            raise sender("xop:Include must reference a MIME part of this message with a cid: URL")
        cid = unquote(href[4:])
        if cid not in attachments:
            raise sender("xop:Include references a MIME part that is not in the message")
        if cid in used:
            raise sender("xop:Include references the same MIME part more than once")
        used.add(cid)
        parent = include.getparent()
        parent.remove(include)
        parent.text = base64.b64encode(attachments[cid]).decode("ascii")


def _strip_brackets(value: str | None) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value


def _action_in_start_info(params: dict[str, str]) -> str | None:
    # JAX-WS puts it there: start-info="application/soap+xml;action=\"...\""
    info = params.get("start-info")
    if not info or "action" not in info:
        return None
    return media_type_params(info)[1].get("action")
