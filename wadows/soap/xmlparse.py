"""Reading untrusted XML: no entities, no DTDs, no network, bounded depth."""

from __future__ import annotations

import io

from lxml import etree

from wadows.soap.errors import sender

_HARDENED = dict(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


def parse_untrusted(data: bytes, max_depth: int) -> etree._Element:
    """Parse a SOAP message. SOAP 1.2 forbids a DTD, so any DOCTYPE is refused outright."""
    if not data.strip():
        raise sender("The request body is empty")
    depth = 0
    root = None
    try:
        # iterparse lets us stop a deeply nested document before it is built in full.
        for event, element in etree.iterparse(io.BytesIO(data), events=("start", "end"), **_HARDENED):
            if event == "start":
                depth += 1
                if depth > max_depth:
                    raise sender(f"The XML is nested deeper than {max_depth} levels")
                if root is None:
                    root = element
            else:
                depth -= 1
    except etree.XMLSyntaxError as exc:
        raise sender(f"The request is not well-formed XML{_position(exc)}") from None
    if root is None:
        raise sender("The request holds no XML element")
    if root.getroottree().docinfo.doctype:
        raise sender("A SOAP message must not contain a document type declaration")
    return root


def _position(exc: etree.XMLSyntaxError) -> str:
    # Where, not what: some libxml2 messages quote bytes of the request, which may hold identifiers.
    line, column = getattr(exc, "lineno", None), getattr(exc, "offset", None)
    return f" (line {line}, column {column})" if line else ""
