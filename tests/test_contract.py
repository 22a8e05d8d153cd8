"""The WSDL/XSD contract in wsdl/ and wadows.soap.contract: schemas compile, zeep understands the WSDL
(from disk and served over loopback HTTP), and hand-written messages validate or fail as they should."""

from __future__ import annotations

import http.server
import importlib.resources
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import zeep
import zeep.transports
from lxml import etree
from zeep.wsdl.bindings.soap import Soap12Binding

from wadows.soap import contract

RAD = "urn:ihe:rad:xdsi-b:2009"
XDS = "urn:ihe:iti:xds-b:2007"
WADO = "urn:dicom:wado:ws:2011"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP12_WSDL = "http://schemas.xmlsoap.org/wsdl/soap12/"
WSAW = "http://www.w3.org/2006/05/addressing/wsdl"

SCHEMA_NAMESPACES = {"xdsi-b.xsd": RAD, "xds-b.xsd": XDS, "wado-ws.xsd": WADO, "regrep-rs.xsd": RS}

# operation -> (input element, output element, input action, output action)
OPERATIONS = {
    "ImagingDocumentSource_RetrieveImagingDocumentSet": (
        f"{{{RAD}}}RetrieveImagingDocumentSetRequest",
        f"{{{XDS}}}RetrieveDocumentSetResponse",
        "urn:ihe:rad:2009:RetrieveImagingDocumentSet",
        "urn:ihe:iti:2007:RetrieveDocumentSetResponse",
    ),
    "ImagingDocumentSource_RetrieveRenderedImagingDocumentSet": (
        f"{{{WADO}}}RetrieveRenderedImagingDocumentSetRequest",
        f"{{{WADO}}}RetrieveRenderedImagingDocumentSetResponse",
        "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet",
        "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSetResponse",
    ),
    "ImagingDocumentSource_RetrieveImagingDocumentSetInformation": (
        f"{{{WADO}}}RetrieveImagingDocumentSetInformationRequest",
        f"{{{WADO}}}RetrieveImagingDocumentSetInformationResponse",
        "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation",
        "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformationResponse",
    ),
}

# Prefixes for the hand-written instance documents below (deliberately not the ones the schemas use).
NS_DECLS = f'xmlns:xdsiB="{RAD}" xmlns:xdsb="{XDS}" xmlns:wado="{WADO}" xmlns:rs="{RS}"'

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"


def xml(text: str) -> etree._Element:
    return etree.fromstring(text.replace("NS_DECLS", NS_DECLS))


def errors_of(text: str) -> list[str]:
    """The contract's complaints about a document ([] when it is valid)."""
    try:
        contract.validate(xml(text))
    except contract.ContractViolation as violation:
        assert violation.errors, "a violation must list its errors"
        return violation.errors
    return []


def rad69_request(document_request: str) -> str:
    return f"""
<xdsiB:RetrieveImagingDocumentSetRequest NS_DECLS>
  <xdsiB:StudyRequest studyInstanceUID="1.2.826.0.1.3680043.2.1125.1">
    <xdsiB:SeriesRequest seriesInstanceUID="1.2.826.0.1.3680043.2.1125.1.2">
      {document_request}
    </xdsiB:SeriesRequest>
  </xdsiB:StudyRequest>
  <xdsiB:TransferSyntaxUIDList>
    <xdsiB:TransferSyntaxUID>1.2.840.10008.1.2.1</xdsiB:TransferSyntaxUID>
    <xdsiB:TransferSyntaxUID>1.2.840.10008.1.2</xdsiB:TransferSyntaxUID>
  </xdsiB:TransferSyntaxUIDList>
</xdsiB:RetrieveImagingDocumentSetRequest>"""


def rendered_request(document_children: str) -> str:
    return f"""
<wado:RetrieveRenderedImagingDocumentSetRequest NS_DECLS>
  <wado:StudyRequest studyInstanceUID="1.2.826.0.1.3680043.2.1125.1">
    <wado:SeriesRequest seriesInstanceUID="1.2.826.0.1.3680043.2.1125.1.2">
      <wado:RenderedDocumentRequest>
        <xdsb:RepositoryUniqueId>1.2.826.0.1.3680043.2.1125.99</xdsb:RepositoryUniqueId>
        <xdsb:DocumentUniqueId>1.2.826.0.1.3680043.2.1125.1.2.3</xdsb:DocumentUniqueId>
        {document_children}
      </wado:RenderedDocumentRequest>
    </wado:SeriesRequest>
  </wado:StudyRequest>
</wado:RetrieveRenderedImagingDocumentSetRequest>"""


def information_request(document_children: str) -> str:
    return f"""
<wado:RetrieveImagingDocumentSetInformationRequest NS_DECLS>
  <wado:StudyRequest studyInstanceUID="1.2.826.0.1.3680043.2.1125.1">
    <wado:SeriesRequest seriesInstanceUID="1.2.826.0.1.3680043.2.1125.1.2">
      <wado:DocumentInformationRequest>
        <xdsb:RepositoryUniqueId>1.2.826.0.1.3680043.2.1125.99</xdsb:RepositoryUniqueId>
        <xdsb:DocumentUniqueId>1.2.826.0.1.3680043.2.1125.1.2.3</xdsb:DocumentUniqueId>
        {document_children}
      </wado:DocumentInformationRequest>
    </wado:SeriesRequest>
  </wado:StudyRequest>
</wado:RetrieveImagingDocumentSetInformationRequest>"""


JPEG = "<wado:ContentTypeList><wado:ContentType>image/jpeg</wado:ContentType></wado:ContentTypeList>"


# --- the files ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def contract_dir():
    with importlib.resources.as_file(importlib.resources.files("wadows.contract")) as path:
        yield Path(path)


def test_contract_is_the_wsdl_and_one_schema_per_namespace():
    assert sorted(contract.contract_files()) == sorted([contract.WSDL_NAME, *SCHEMA_NAMESPACES])


def test_contract_files_returns_a_copy():
    files = contract.contract_files()
    files.clear()
    assert contract.WSDL_NAME in contract.contract_files()


@pytest.mark.parametrize("name", sorted(SCHEMA_NAMESPACES))
def test_each_schema_compiles_alone(name):
    contract.compile_schema(name)  # raises XMLSchemaParseError if not deterministic or broken
    root = etree.fromstring(contract.contract_files()[name])
    assert root.get("targetNamespace") == SCHEMA_NAMESPACES[name]
    assert root.get("elementFormDefault") == "qualified"


@pytest.mark.parametrize("name", sorted(SCHEMA_NAMESPACES))
def test_each_schema_compiles_from_disk_with_plain_lxml(contract_dir, name):
    """What a third-party tool does: open the file and follow the relative schemaLocations."""
    etree.XMLSchema(etree.parse(str(contract_dir / name)))


def test_compile_schema_knows_only_contract_schemas():
    with pytest.raises(KeyError):
        contract.compile_schema("other.xsd")
    with pytest.raises(KeyError):
        contract.compile_schema(contract.WSDL_NAME)


def test_whole_schema_is_compiled_once_and_covers_every_namespace():
    assert contract.schema() is contract.schema()
    assert errors_of(f'<rs:RegistryResponse NS_DECLS status="{SUCCESS}"/>') == []
    assert errors_of("<xdsb:DocumentUniqueId NS_DECLS>1.2.3</xdsb:DocumentUniqueId>") == []
    assert errors_of("<wado:Anonymize NS_DECLS>yes</wado:Anonymize>") == []
    assert errors_of(rad69_request("<xdsb:DocumentRequest><xdsb:DocumentUniqueId>1.2</xdsb:DocumentUniqueId>"
                                   "</xdsb:DocumentRequest>")) == []


def test_schema_loader_refuses_files_outside_the_contract(tmp_path):
    outside = tmp_path / "outside.xsd"
    outside.write_text(f'<xs:schema xmlns:xs="{XS}" targetNamespace="urn:x"/>')
    for location in (outside.as_uri(), "http://127.0.0.1:9/outside.xsd", "../pyproject.toml"):
        foreign = f'<xs:schema xmlns:xs="{XS}"><xs:import namespace="urn:x" schemaLocation="{location}"/></xs:schema>'
        with pytest.raises(etree.XMLSchemaParseError):
            contract._compile(foreign.encode(), "foreign.xsd")


def test_contract_parser_never_loads_external_entities(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    document = f'<!DOCTYPE r [<!ENTITY ext SYSTEM "{secret.as_uri()}">]><r>&ext;</r>'
    root = etree.fromstring(document.encode(), contract._contract_parser())
    assert "TOP-SECRET" not in etree.tostring(root, method="text", encoding="unicode")


# --- the WSDL as XML ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wsdl_root():
    return etree.fromstring(contract.contract_files()[contract.WSDL_NAME])


def test_wsdl_has_one_port_type_with_the_three_operations_and_their_actions(wsdl_root):
    port_types = wsdl_root.findall(f"{{{WSDL}}}portType")
    assert [p.get("name") for p in port_types] == ["ImagingDocumentSource_PortType"]
    found = {}
    for operation in port_types[0].findall(f"{{{WSDL}}}operation"):
        found[operation.get("name")] = (
            operation.find(f"{{{WSDL}}}input").get(f"{{{WSAW}}}Action"),
            operation.find(f"{{{WSDL}}}output").get(f"{{{WSAW}}}Action"),
        )
    assert found == {name: (actions[2], actions[3]) for name, actions in OPERATIONS.items()}


def test_wsdl_binding_is_soap12_document_literal_with_addressing_required(wsdl_root):
    (binding,) = wsdl_root.findall(f"{{{WSDL}}}binding")
    assert binding.get("name") == "ImagingDocumentSource_Binding_Soap12"
    soap_binding = binding.find(f"{{{SOAP12_WSDL}}}binding")
    assert soap_binding.get("style") == "document"
    assert soap_binding.get("transport") == "http://schemas.xmlsoap.org/soap/http"
    assert binding.find(f"{{{WSAW}}}UsingAddressing").get(f"{{{WSDL}}}required") == "true"
    for operation in binding.findall(f"{{{WSDL}}}operation"):
        soap_operation = operation.find(f"{{{SOAP12_WSDL}}}operation")
        assert soap_operation.get("soapAction") == OPERATIONS[operation.get("name")][2]
        assert soap_operation.get("soapActionRequired") == "false"
        bodies = operation.findall(f"*/{{{SOAP12_WSDL}}}body")
        assert [body.get("use") for body in bodies] == ["literal", "literal"]


def test_wsdl_service_port_has_the_placeholder_address(wsdl_root):
    port = wsdl_root.find(f"{{{WSDL}}}service[@name='ImagingDocumentSource']/{{{WSDL}}}port")
    assert port.get("name") == "ImagingDocumentSource_Port_Soap12"
    assert port.find(f"{{{SOAP12_WSDL}}}address").get("location") == "http://localhost:8080/wado-ws"


# --- zeep reads the WSDL --------------------------------------------------------------------------

def assert_zeep_sees_the_three_operations(client: zeep.Client, address: str) -> None:
    (binding,) = client.wsdl.bindings.values()
    assert isinstance(binding, Soap12Binding)
    seen = {
        name: (operation.input.body.qname, operation.output.body.qname, operation.abstract.wsa_action)
        for name, operation in binding._operations.items()
    }
    assert seen == {name: (o[0], o[1], o[2]) for name, o in OPERATIONS.items()}
    assert client.service._binding_options["address"] == address


@pytest.fixture(scope="module")
def zeep_client(contract_dir):
    return zeep.Client(str(contract_dir / contract.WSDL_NAME))


def test_zeep_loads_the_wsdl_from_disk(zeep_client):
    assert_zeep_sees_the_three_operations(zeep_client, "http://localhost:8080/wado-ws")


class _ContractServer(http.server.ThreadingHTTPServer):
    """Serves render() output the way the real server does: GET /wado-ws?wsdl and /wado-ws?xsd=NAME."""

    def __init__(self) -> None:
        self.requested: list[str] = []
        super().__init__(("127.0.0.1", 0), _ContractHandler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/wado-ws"


class _ContractHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        self.server.requested.append(url.query)
        name = contract.WSDL_NAME if "wsdl" in query else query.get("xsd", [""])[0]
        try:
            body = contract.render(name, self.server.endpoint)
        except KeyError:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def contract_server():
    server = _ContractServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def loopback_transport() -> zeep.transports.Transport:
    session = requests.Session()
    session.trust_env = False  # never route loopback through a proxy from the environment
    return zeep.transports.Transport(session=session)


def test_zeep_loads_the_rendered_wsdl_over_http(contract_server):
    client = zeep.Client(f"{contract_server.endpoint}?wsdl", transport=loopback_transport())
    assert_zeep_sees_the_three_operations(client, contract_server.endpoint)
    fetched = {q.removeprefix("xsd=") for q in contract_server.requested if q.startswith("xsd=")}
    assert fetched == set(SCHEMA_NAMESPACES)


def test_unknown_file_is_not_served(contract_server):
    response = loopback_transport().session.get(f"{contract_server.endpoint}?xsd=secret.xsd")
    assert response.status_code == 404


def test_zeep_rad69_request_with_anonymize_matches_the_contract(zeep_client):
    envelope = zeep_client.create_message(
        zeep_client.service,
        "ImagingDocumentSource_RetrieveImagingDocumentSet",
        StudyRequest=[{
            "studyInstanceUID": "1.2.826.0.1.3680043.2.1125.1",
            "SeriesRequest": [{
                "seriesInstanceUID": "1.2.826.0.1.3680043.2.1125.1.2",
                "DocumentRequest": [{
                    "RepositoryUniqueId": "1.2.826.0.1.3680043.2.1125.99",
                    "DocumentUniqueId": "1.2.826.0.1.3680043.2.1125.1.2.3",
                    "Anonymize": "yes",
                }],
            }],
        }],
        TransferSyntaxUIDList={"TransferSyntaxUID": ["1.2.840.10008.1.2.1"]},
    )
    (body_child,) = envelope.find("{http://www.w3.org/2003/05/soap-envelope}Body")
    assert body_child.find(f".//{{{XDS}}}DocumentRequest/{{{WADO}}}Anonymize").text == "yes"
    contract.validate(body_child)  # a non-root element, namespaces declared on its ancestors


def test_zeep_rendered_request_with_window_and_region_matches_the_contract(zeep_client):
    envelope = zeep_client.create_message(
        zeep_client.service,
        "ImagingDocumentSource_RetrieveRenderedImagingDocumentSet",
        StudyRequest=[{
            "studyInstanceUID": "1.2.3",
            "SeriesRequest": [{
                "seriesInstanceUID": "1.2.3.4",
                "RenderedDocumentRequest": [{
                    "DocumentUniqueId": "1.2.3.4.5",
                    "Region": {"XMin": "0.1", "YMin": "0.1", "XMax": "0.9", "YMax": "0.9"},
                    "WindowCenter": "40",
                    "WindowWidth": "400",
                    "Anonymize": "yes",
                    "ContentTypeList": {"ContentType": ["image/jpeg", "image/png"]},
                }],
            }],
        }],
    )
    (body_child,) = envelope.find("{http://www.w3.org/2003/05/soap-envelope}Body")
    contract.validate(etree.ElementTree(body_child))


# --- hand-written instances: RetrieveImagingDocumentSet (RAD-69) -----------------------------------

NIST_STYLE_DOCUMENT = """
<xdsb:DocumentRequest>
  <xdsb:HomeCommunityId>urn:oid:1.2.826.0.1.3680043.2.1125.7</xdsb:HomeCommunityId>
  <xdsb:RepositoryUniqueId>1.2.826.0.1.3680043.2.1125.99</xdsb:RepositoryUniqueId>
  <xdsb:DocumentUniqueId>1.2.826.0.1.3680043.2.1125.1.2.3</xdsb:DocumentUniqueId>
</xdsb:DocumentRequest>"""


def test_rad69_request_in_ihe_order_is_valid():
    assert errors_of(rad69_request(NIST_STYLE_DOCUMENT * 2)) == []


def test_rad69_request_with_anonymize_and_frame_number_is_valid():
    document = """
<xdsb:DocumentRequest>
  <xdsb:DocumentUniqueId>1.2.826.0.1.3680043.2.1125.1.2.3</xdsb:DocumentUniqueId>
  <wado:Anonymize>yes</wado:Anonymize>
  <wado:FrameNumber>2</wado:FrameNumber>
</xdsb:DocumentRequest>"""
    assert errors_of(rad69_request(document)) == []


def test_rad69_request_without_document_uid_is_invalid():
    document = """
<xdsb:DocumentRequest>
  <xdsb:RepositoryUniqueId>1.2.826.0.1.3680043.2.1125.99</xdsb:RepositoryUniqueId>
  <wado:Anonymize>yes</wado:Anonymize>
</xdsb:DocumentRequest>"""
    (error,) = errors_of(rad69_request(document))
    assert "DocumentUniqueId" in error and error.startswith("line ")


def test_violation_lists_every_error():
    missing_uid = "<xdsb:DocumentRequest><xdsb:RepositoryUniqueId>1</xdsb:RepositoryUniqueId></xdsb:DocumentRequest>"
    errors = errors_of(rad69_request(missing_uid * 2))
    assert len(errors) == 2
    with pytest.raises(contract.ContractViolation, match="RetrieveImagingDocumentSetRequest does not match"):
        contract.validate(xml(rad69_request(missing_uid)))


@pytest.mark.parametrize("broken, complaint", [
    (rad69_request(NIST_STYLE_DOCUMENT).replace(' studyInstanceUID="1.2.826.0.1.3680043.2.1125.1"', ""),
     "studyInstanceUID"),
    (rad69_request(NIST_STYLE_DOCUMENT).replace("<xdsiB:TransferSyntaxUID>1.2.840.10008.1.2</xdsiB:TransferSyntaxUID>",
                                                "").replace("<xdsiB:TransferSyntaxUID>1.2.840.10008.1.2.1"
                                                            "</xdsiB:TransferSyntaxUID>", ""),
     "TransferSyntaxUID"),
    (rad69_request(NIST_STYLE_DOCUMENT.replace("xdsb:DocumentRequest", "xdsiB:DocumentRequest")), "DocumentRequest"),
    (rad69_request(NIST_STYLE_DOCUMENT.replace("</xdsb:DocumentRequest>",
                                               "<wado:Bogus>1</wado:Bogus></xdsb:DocumentRequest>")), "Bogus"),
    (rad69_request(NIST_STYLE_DOCUMENT.replace("<xdsb:HomeCommunityId>urn:oid:1.2.826.0.1.3680043.2.1125.7"
                                               "</xdsb:HomeCommunityId>", "")
                   .replace("</xdsb:DocumentRequest>",
                            "<xdsb:HomeCommunityId>urn:oid:1.2</xdsb:HomeCommunityId></xdsb:DocumentRequest>")),
     "HomeCommunityId"),
    (rad69_request(NIST_STYLE_DOCUMENT.replace("1.2.826.0.1.3680043.2.1125.1.2.3", "1" * 257)), "DocumentUniqueId"),
])
def test_broken_rad69_requests_are_invalid(broken, complaint):
    errors = errors_of(broken)
    assert errors and complaint in " ".join(errors)


RAD69_PARTIAL_SUCCESS = f"""
<xdsb:RetrieveDocumentSetResponse NS_DECLS>
  <rs:RegistryResponse status="{PARTIAL}">
    <rs:RegistryErrorList highestSeverity="{ERROR}">
      <rs:RegistryError errorCode="urn:dicom:wado:0001" codeContext="Unable to anonymize the requested instance"
                        severity="{ERROR}" location="1.2.826.0.1.3680043.2.1125.1.2.4"/>
      <rs:RegistryError errorCode="XDSDocumentUniqueIdError" codeContext="Document not found"
                        location="1.2.826.0.1.3680043.2.1125.1.2.5">Document not found</rs:RegistryError>
    </rs:RegistryErrorList>
  </rs:RegistryResponse>
  <xdsb:DocumentResponse>
    <xdsb:RepositoryUniqueId>1.2.826.0.1.3680043.2.1125.99</xdsb:RepositoryUniqueId>
    <xdsb:DocumentUniqueId>1.2.826.0.1.3680043.2.1125.1.2.3</xdsb:DocumentUniqueId>
    <xdsb:NewDocumentUniqueId>2.25.123456789012345678901234567890</xdsb:NewDocumentUniqueId>
    <xdsb:mimeType>application/dicom</xdsb:mimeType>
    <xdsb:Document>RElDTQ==</xdsb:Document>
  </xdsb:DocumentResponse>
</xdsb:RetrieveDocumentSetResponse>"""


def test_rad69_partial_success_response_is_valid():
    assert errors_of(RAD69_PARTIAL_SUCCESS) == []


def test_unresolved_xop_include_does_not_validate():
    """An MTOM message holds xop:Include where the bytes belong: validate it with the parts inlined."""
    with_xop = RAD69_PARTIAL_SUCCESS.replace(
        "RElDTQ==", '<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:1@wadows"/>')
    assert errors_of(with_xop) != []


@pytest.mark.parametrize("broken, complaint", [
    (RAD69_PARTIAL_SUCCESS.replace("<xdsb:mimeType>application/dicom</xdsb:mimeType>", ""), "mimeType"),
    (RAD69_PARTIAL_SUCCESS.replace(f' status="{PARTIAL}"', ""), "status"),
    (RAD69_PARTIAL_SUCCESS.replace(' codeContext="Document not found"', ""), "codeContext"),
    (RAD69_PARTIAL_SUCCESS.replace("RElDTQ==", "not base64!"), "Document"),
    (RAD69_PARTIAL_SUCCESS.replace("<rs:RegistryResponse", "<rs:RegistryResponse bogus='1'"), "bogus"),
])
def test_broken_rad69_responses_are_invalid(broken, complaint):
    errors = errors_of(broken)
    assert errors and complaint in " ".join(errors)


# --- hand-written instances: RetrieveRenderedImagingDocumentSet -----------------------------------

@pytest.mark.parametrize("region", [
    "<wado:Region>0.1,0.2,0.8,0.9</wado:Region>",
    "<wado:Region><wado:XMin>0.1</wado:XMin><wado:YMin>0.2</wado:YMin>"
    "<wado:XMax>0.8</wado:XMax><wado:YMax>0.9</wado:YMax></wado:Region>",
])
def test_rendered_request_region_as_text_or_as_corners_is_valid(region):
    assert errors_of(rendered_request(f"<wado:Rows>512</wado:Rows>{region}"
                                      f"<wado:Anonymize>yes</wado:Anonymize>{JPEG}")) == []


@pytest.mark.parametrize("window", [
    "<wado:WindowCenter>40</wado:WindowCenter><wado:WindowWidth>400</wado:WindowWidth>",
    "<wado:WindowWidth>400</wado:WindowWidth><wado:WindowCenter>40</wado:WindowCenter>",
])
def test_rendered_request_window_in_either_order_is_valid(window):
    assert errors_of(rendered_request(f"{window}<wado:ImageQuality>90</wado:ImageQuality>{JPEG}")) == []


def test_rendered_request_with_every_parameter_is_valid():
    every = f"""
<wado:Annotation>patient,technique</wado:Annotation>
<wado:Rows>256</wado:Rows>
<wado:Columns>256</wado:Columns>
<wado:Region>0,0,1,1</wado:Region>
<wado:WindowCenter>40</wado:WindowCenter>
<wado:WindowWidth>400</wado:WindowWidth>
<wado:ImageQuality>80</wado:ImageQuality>
<wado:PresentationUID>1.2.3.9</wado:PresentationUID>
<wado:PresentationSeriesUID>1.2.3.8</wado:PresentationSeriesUID>
<wado:Anonymize>yes</wado:Anonymize>
<wado:FrameNumber>3</wado:FrameNumber>
{JPEG}
<wado:CharsetList><wado:Charset>UTF-8</wado:Charset></wado:CharsetList>"""
    assert errors_of(rendered_request(every)) == []


@pytest.mark.parametrize("children, complaint", [
    ("<wado:Rows>512</wado:Rows>", "ContentTypeList"),
    (f"<wado:Region><wado:XMin>0.1</wado:XMin></wado:Region>{JPEG}", "Region"),
    (f"<wado:WindowCenter>1</wado:WindowCenter><wado:WindowWidth>2</wado:WindowWidth>"
     f"<wado:WindowCenter>3</wado:WindowCenter>{JPEG}", "WindowCenter"),
    ("<wado:ContentTypeList/>", "ContentTypeList"),
    (f"{JPEG}<wado:Anonymize>yes</wado:Anonymize>", "Anonymize"),
])
def test_broken_rendered_requests_are_invalid(children, complaint):
    errors = errors_of(rendered_request(children))
    assert errors and complaint in " ".join(errors)


def test_rendered_response_is_valid():
    response = f"""
<wado:RetrieveRenderedImagingDocumentSetResponse NS_DECLS>
  <rs:RegistryResponse status="{SUCCESS}"/>
  <wado:RenderedDocumentResponse>
    <xdsb:RepositoryUniqueId>1.2.826.0.1.3680043.2.1125.99</xdsb:RepositoryUniqueId>
    <wado:SourceDocumentUniqueId>1.2.826.0.1.3680043.2.1125.1.2.3</wado:SourceDocumentUniqueId>
    <wado:FrameNumber>1</wado:FrameNumber>
    <wado:Rows>256</wado:Rows>
    <wado:Columns>256</wado:Columns>
    <wado:Region><wado:XMin>0</wado:XMin><wado:YMin>0</wado:YMin><wado:XMax>1</wado:XMax><wado:YMax>1</wado:YMax></wado:Region>
    <wado:WindowCenter>40</wado:WindowCenter>
    <wado:WindowWidth>400</wado:WindowWidth>
    <wado:ImageQuality>90</wado:ImageQuality>
    <wado:Anonymize>yes</wado:Anonymize>
    <xdsb:mimeType>image/jpeg</xdsb:mimeType>
    <xdsb:Document>/9j/4AAQ</xdsb:Document>
  </wado:RenderedDocumentResponse>
</wado:RetrieveRenderedImagingDocumentSetResponse>"""
    assert errors_of(response) == []
    without_source_uid = response.replace(
        "<wado:SourceDocumentUniqueId>1.2.826.0.1.3680043.2.1125.1.2.3</wado:SourceDocumentUniqueId>", "")
    assert "SourceDocumentUniqueId" in " ".join(errors_of(without_source_uid))


# --- hand-written instances: RetrieveImagingDocumentSetInformation --------------------------------

def test_information_request_with_several_xpaths_is_valid():
    children = "<wado:Anonymize>yes</wado:Anonymize><wado:XPath>/</wado:XPath>" \
               "<wado:XPath>/NativeDicomModel/DicomAttribute[@tag='00080060']</wado:XPath>"
    assert errors_of(information_request(children)) == []


def test_information_request_without_xpath_is_invalid():
    assert "XPath" in " ".join(errors_of(information_request("<wado:Anonymize>yes</wado:Anonymize>")))


def test_information_request_with_transfer_syntaxes_is_invalid():
    children = "<wado:XPath>/</wado:XPath><wado:TransferSyntaxUIDList/>"
    assert errors_of(information_request(children)) != []


def test_information_response_is_valid():
    response = f"""
<wado:RetrieveImagingDocumentSetInformationResponse NS_DECLS>
  <rs:RegistryResponse status="{SUCCESS}"/>
  <wado:DocumentInformationResponse>
    <xdsb:HomeCommunityId>urn:oid:1.2.826.0.1.3680043.2.1125.7</xdsb:HomeCommunityId>
    <xdsb:RepositoryUniqueId>1.2.826.0.1.3680043.2.1125.99</xdsb:RepositoryUniqueId>
    <xdsb:DocumentUniqueId>1.2.826.0.1.3680043.2.1125.1.2.3</xdsb:DocumentUniqueId>
    <wado:XPathResponseList>
      <wado:XPathResponse>&lt;NativeDicomModel/&gt;</wado:XPathResponse>
      <wado:XPathResponse/>
    </wado:XPathResponseList>
  </wado:DocumentInformationResponse>
</wado:RetrieveImagingDocumentSetInformationResponse>"""
    assert errors_of(response) == []
    without_list = response.replace("<wado:XPathResponseList>", "").replace("</wado:XPathResponseList>", "")
    assert errors_of(without_list) != []


def test_unknown_root_element_is_invalid():
    assert errors_of('<wado:RetrieveEverything xmlns:wado="urn:dicom:wado:ws:2011"/>') != []


# --- render() -------------------------------------------------------------------------------------

ENDPOINT = "https://pacs.example.org:8443/wado-ws"


def schema_locations(document: bytes) -> list[str]:
    root = etree.fromstring(document)
    return [e.get("schemaLocation") for e in root.iter(f"{{{XS}}}import", f"{{{XS}}}include")]


def test_render_wsdl_sets_the_address_and_points_every_schema_at_the_endpoint():
    rendered = etree.fromstring(contract.render(contract.WSDL_NAME, ENDPOINT))
    (address,) = rendered.iter(f"{{{SOAP12_WSDL}}}address")
    assert address.get("location") == ENDPOINT
    assert sorted(schema_locations(contract.render(contract.WSDL_NAME, ENDPOINT))) == sorted(
        f"{ENDPOINT}?xsd={name}" for name in SCHEMA_NAMESPACES)


@pytest.mark.parametrize("name", sorted(SCHEMA_NAMESPACES))
def test_render_schema_points_its_imports_at_the_endpoint(name):
    original = schema_locations(contract.contract_files()[name])
    rendered = schema_locations(contract.render(name, ENDPOINT))
    assert rendered == [f"{ENDPOINT}?xsd={location}" for location in original]
    assert etree.fromstring(contract.render(name, ENDPOINT)).get("targetNamespace") == SCHEMA_NAMESPACES[name]


def test_render_leaves_the_contract_itself_unchanged():
    contract.render(contract.WSDL_NAME, ENDPOINT)
    assert b"http://localhost:8080/wado-ws" in contract.contract_files()[contract.WSDL_NAME]
    assert "xds-b.xsd" in schema_locations(contract.contract_files()[contract.WSDL_NAME])


def test_render_escapes_the_endpoint_as_xml():
    odd = "http://h/wado-ws?a=1&b=<2>"
    rendered = etree.fromstring(contract.render(contract.WSDL_NAME, odd))
    assert next(rendered.iter(f"{{{SOAP12_WSDL}}}address")).get("location") == odd


def test_render_unknown_name_is_a_key_error():
    with pytest.raises(KeyError):
        contract.render("passwd", ENDPOINT)
