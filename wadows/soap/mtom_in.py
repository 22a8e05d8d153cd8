"""Reading a request body that may be MTOM/XOP packaged (multipart/related) or plain XML.

Java stacks (CXF, JAX-WS/Metro) send MTOM even when nothing is optimized: one root part, often with an XML
declaration, no attachments. Only `cid:` references to parts present in this very message are resolved
(CXF-8706 was a content injection through other schemes).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree

from wadows import multipart
from wadows.soap import namespaces as ns
from wadows.soap.errors import sender

MAX_PARTS = 1000  # a WADO-WS request needs one part (nothing in its schema is base64Binary): room to spare

# A Content-Type value's pieces, left to right: quoted string (closing quote optional), separator, anything else.
_TOKENS = re.compile(r'"((?:[^"\\]|\\.)*)"?|([;=])|([^;="]+)')
_ESCAPED = re.compile(r"\\(.)")


@dataclass
class RequestPackage:
    xml: bytes
    attachments: dict[str, multipart.Part]  # Content-ID without angle brackets -> the part (decoded when used)
    action_param: str | None        # the `action` media-type parameter (SOAP 1.2 HTTP binding), if any


def media_type_params(content_type: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type value into its media type and parameters (RFC 2045 tokens and quoted strings, RFC 2231
    `name*=charset'lang'value`), in one pass: the email package's parser takes quadratic time on some values."""
    fields: list[list[tuple[str, str]]] = [[]]  # per ';'-separated field: its pieces, '=' kept as a piece
    for token in _TOKENS.finditer(content_type or ""):
        quoted, separator, text = token.groups()
        if separator == ";":
            fields.append([])
        elif separator == "=":
            fields[-1].append(("=", "="))
        elif quoted is not None:
            fields[-1].append(("quoted", _ESCAPED.sub(r"\1", quoted)))
        else:
            fields[-1].append(("text", text.strip()))
    media_type = "".join(text for _, text in fields[0]).lower()
    params = {}
    for field in fields[1:]:
        kinds = [kind for kind, _ in field]
        if "=" not in kinds:
            continue
        equals = kinds.index("=")
        name = "".join(text for _, text in field[:equals]).lower()
        value = "".join(text for _, text in field[equals + 1:])
        if name.endswith("*"):
            name, value = name[:-1], _rfc2231(value)
        if name:
            params[name] = value
    return media_type, params


def unpack(content_type: str, body: bytes, max_parts: int = MAX_PARTS) -> RequestPackage:
    media_type, params = media_type_params(content_type)
    if media_type != "multipart/related":
        return RequestPackage(body, {}, params.get("action"))
    if not params.get("boundary"):
        raise sender("multipart/related request without a boundary parameter")
    try:
        parts = multipart.split(body, params["boundary"].encode("latin-1"), max_parts)
    except UnicodeEncodeError:
        raise sender("The multipart boundary parameter is not ASCII") from None
    except multipart.MultipartError as exc:  # its texts describe the framing, never the content
        raise sender(f"The multipart request cannot be read: {exc}") from None
    if not parts:
        raise sender("multipart/related request without any MIME part")
    start = _strip_brackets(params.get("start"))
    root = next((p for p in parts if start and _strip_brackets(p[0].get("content-id")) == start), None)
    if root is None:
        if start:
            raise sender("The multipart request names a start part that is not in the message")
        root = parts[0]
    attachments = {}
    for part in parts:
        if part is not root and part[0].get("content-id"):
            attachments[_strip_brackets(part[0].get("content-id"))] = part
    xml = _decoded(*root)
    # start-info / the root part's `action` parameter carry the SOAP action in SOAP 1.2 MTOM.
    _, root_params = media_type_params(root[0].get("content-type") or "")
    action = params.get("action") or root_params.get("action") or _action_in_start_info(params)
    return RequestPackage(xml, attachments, action)


def resolve_xop(root: etree._Element, attachments: dict[str, multipart.Part]) -> None:
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
        parent.text = base64.b64encode(_decoded(*attachments[cid])).decode("ascii")


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


def _decoded(headers: multipart.PartHeaders, content: bytes) -> bytes:
    """A part's content without its Content-Transfer-Encoding (MTOM sends binary; others may encode)."""
    encoding = (headers.get("content-transfer-encoding") or "").strip().lower()
    try:
        if encoding == "base64":
            return binascii.a2b_base64(content)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(content)
    except (binascii.Error, ValueError):
        raise sender(f"A MIME part's {encoding} content is malformed") from None
    return content


def _rfc2231(value: str) -> str:
    """charset'language'percent-encoded text (RFC 2231 section 4); a value not in that form stays as it is."""
    pieces = value.split("'", 2)
    if len(pieces) < 3:
        return value
    try:
        return unquote(pieces[2], encoding=pieces[0] or "us-ascii", errors="replace")
    except (LookupError, ValueError):  # an unknown charset, or a codec that cannot decode this way
        return unquote(pieces[2], encoding="latin-1")
