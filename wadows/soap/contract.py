"""The WADO-WS contract (the WSDL and XSDs of wsdl/): read it, render it for an endpoint, validate against it.

The files ship as package data of ``wadows.contract`` (pyproject maps that package to wsdl/).
Everything here is lxml; parsing never touches the network, entities or files outside the contract.
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from urllib.parse import quote

from lxml import etree

WSDL_NAME = "ImagingDocumentSource.wsdl"

_CONTRACT_PACKAGE = "wadows.contract"
_CONTRACT_SUFFIXES = (".wsdl", ".xsd")
_XS = "http://www.w3.org/2001/XMLSchema"
_SOAP12_WSDL = "http://schemas.xmlsoap.org/wsdl/soap12/"
# Schema elements whose schemaLocation points at another contract file.
_SCHEMA_REFERENCES = (f"{{{_XS}}}import", f"{{{_XS}}}include", f"{{{_XS}}}redefine")
# Contract files are parsed under this made-up base URL so relative schemaLocations resolve to
# names the resolver recognises; the scheme exists nowhere, so nothing can be fetched by accident.
_BASE_URL = "wadows-contract:///"
_DRIVER_NAME = "all-namespaces.xsd"


class ContractViolation(ValueError):
    """An XML element does not match the contract; ``errors`` holds one "line N: message" per problem."""

    def __init__(self, element_name: str, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{element_name} does not match the WADO-WS contract:\n" + "\n".join(errors))


@functools.cache
def _files() -> dict[str, bytes]:
    package = importlib.resources.files(_CONTRACT_PACKAGE)
    return {
        entry.name: entry.read_bytes()
        for entry in package.iterdir()
        if entry.is_file() and entry.name.endswith(_CONTRACT_SUFFIXES)
    }


def contract_files() -> dict[str, bytes]:
    """Name -> content of every file of the contract (the WSDL and each XSD)."""
    return dict(_files())  # a copy: callers must not be able to change the cached contract


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class _ContractResolver(etree.Resolver):
    """Serves contract files to schema imports and refuses everything else."""

    def resolve(self, url, pubid, context):
        name = url[len(_BASE_URL):] if url and url.startswith(_BASE_URL) else None
        content = _files().get(name) if name else None
        if content is None:
            raise LookupError(f"{url!r} is not a file of the WADO-WS contract")
        return self.resolve_string(content, context, base_url=_BASE_URL + name)


def _contract_parser() -> etree.XMLParser:
    parser = _safe_parser()
    parser.resolvers.add(_ContractResolver())
    return parser


def _compile(document: bytes, name: str) -> etree.XMLSchema:
    root = etree.fromstring(document, _contract_parser(), base_url=_BASE_URL + name)
    return etree.XMLSchema(root)


def compile_schema(name: str) -> etree.XMLSchema:
    """Compile one XSD of the contract on its own (its imports come from the contract); KeyError if unknown."""
    if not name.endswith(".xsd"):
        raise KeyError(name)
    return _compile(_files()[name], name)


def _target_namespace(name: str) -> str:
    return etree.fromstring(_files()[name], _safe_parser()).get("targetNamespace")


def _driver_schema() -> bytes:
    """An in-memory schema whose only job is to import every namespace of the contract."""
    driver = etree.Element(f"{{{_XS}}}schema", nsmap={"xs": _XS})
    for name in sorted(n for n in _files() if n.endswith(".xsd")):
        etree.SubElement(driver, f"{{{_XS}}}import", namespace=_target_namespace(name), schemaLocation=name)
    return etree.tostring(driver)


@functools.cache
def schema() -> etree.XMLSchema:
    """The whole contract (every namespace) as one compiled schema, compiled once.

    lxml keeps the last validation's error log on the schema object, so threads that share it
    should go through validate(), which serialises access.
    """
    return _compile(_driver_schema(), _DRIVER_NAME)


# lxml keeps each validation's errors on the shared schema object: one validation at a time.
_validation_lock = threading.Lock()


def validate(element: etree._Element | etree._ElementTree) -> None:
    """Raise ContractViolation, listing every schema error, unless the element matches the contract."""
    if isinstance(element, etree._ElementTree):
        element = element.getroot()
    compiled = schema()
    with _validation_lock:
        if compiled.validate(element):
            return
        errors = [f"line {entry.line}: {entry.message}" for entry in compiled.error_log]
    raise ContractViolation(etree.QName(element).text, errors)


@functools.lru_cache(maxsize=32)  # bounded: endpoint_url may come from a client's Host header
def render(name: str, endpoint_url: str) -> bytes:
    """The contract file ``name`` as served from ``endpoint_url`` (an URL without query): its SOAP address
    set to the endpoint and every schemaLocation pointing at ``{endpoint_url}?xsd={file}``.
    KeyError for an unknown name."""
    files = _files()
    tree = etree.ElementTree(etree.fromstring(files[name], _safe_parser()))
    for address in tree.iter(f"{{{_SOAP12_WSDL}}}address"):
        address.set("location", endpoint_url)
    for reference in tree.iter(*_SCHEMA_REFERENCES):
        location = reference.get("schemaLocation")
        if location in files:
            reference.set("schemaLocation", f"{endpoint_url}?xsd={quote(location)}")
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
