"""spyne models of the messages on the wire (the contract itself is wsdl/, validated in tests).

spyne reads children by local name, so requests are read leniently (element order, namespace slips); the
operation layer checks what is required. Responses are written in the schema's order and namespaces.
"""

from __future__ import annotations

from spyne import ComplexModel, Unicode, XmlAttribute, XmlData
from spyne.model.binary import ByteArray

from wadows.soap import namespaces as ns

Text = Unicode(min_occurs=0)


def many(cls, sub_ns: str | None = None, min_occurs: int = 0):
    return cls.customize(min_occurs=min_occurs, max_occurs="unbounded", sub_ns=sub_ns)


def in_ns(cls, sub_ns: str):
    return cls.customize(sub_ns=sub_ns)


class XopDocument(ByteArray):
    """ihe:Document: written as an xop:Include pointing at a MIME part (see soap.service)."""

    __type_name__ = "base64Binary"
    __namespace__ = "http://www.w3.org/2001/XMLSchema"


# --- RAD-69 request -------------------------------------------------------------------------------

class DocumentRequest(ComplexModel):
    __namespace__ = ns.XDS
    _type_info = [
        ("HomeCommunityId", Text),
        ("RepositoryUniqueId", Text),
        ("DocumentUniqueId", Text),
        ("Anonymize", in_ns(Text, ns.WADO)),
        ("FrameNumber", in_ns(Text, ns.WADO)),
    ]


class SeriesRequest(ComplexModel):
    __namespace__ = ns.RAD
    _type_info = [
        ("seriesInstanceUID", XmlAttribute(Unicode)),
        ("DocumentRequest", many(DocumentRequest, ns.XDS)),
    ]


class StudyRequest(ComplexModel):
    __namespace__ = ns.RAD
    _type_info = [
        ("studyInstanceUID", XmlAttribute(Unicode)),
        ("SeriesRequest", many(SeriesRequest)),
    ]


class TransferSyntaxUIDList(ComplexModel):
    __namespace__ = ns.RAD
    _type_info = [("TransferSyntaxUID", many(Unicode))]


class RetrieveImagingDocumentSetRequest(ComplexModel):
    __namespace__ = ns.RAD
    _type_info = [
        ("StudyRequest", many(StudyRequest)),
        ("TransferSyntaxUIDList", TransferSyntaxUIDList.customize(min_occurs=0)),
    ]


# --- ebRS RegistryResponse ------------------------------------------------------------------------

class RegistryError(ComplexModel):
    __namespace__ = ns.RS
    _type_info = [
        ("value", XmlData(Unicode)),
        ("errorCode", XmlAttribute(Unicode)),
        ("codeContext", XmlAttribute(Unicode)),
        ("location", XmlAttribute(Unicode)),
        ("severity", XmlAttribute(Unicode)),
    ]


class RegistryErrorList(ComplexModel):
    __namespace__ = ns.RS
    _type_info = [
        ("highestSeverity", XmlAttribute(Unicode)),
        ("RegistryError", many(RegistryError, min_occurs=1)),
    ]


class RegistryResponse(ComplexModel):
    __namespace__ = ns.RS
    _type_info = [
        ("status", XmlAttribute(Unicode)),
        ("RegistryErrorList", RegistryErrorList.customize(min_occurs=0)),
    ]


# --- RAD-69 response ------------------------------------------------------------------------------

class DocumentResponse(ComplexModel):
    __namespace__ = ns.XDS
    _type_info = [
        ("HomeCommunityId", Text),
        ("RepositoryUniqueId", Unicode),
        ("DocumentUniqueId", Unicode),
        ("NewDocumentUniqueId", Text),
        ("FrameNumber", in_ns(Text, ns.WADO)),
        ("mimeType", Unicode),
        ("Document", XopDocument),
    ]


class RetrieveDocumentSetResponse(ComplexModel):
    __namespace__ = ns.XDS
    _type_info = [
        ("RegistryResponse", in_ns(RegistryResponse, ns.RS)),
        ("DocumentResponse", many(DocumentResponse)),
    ]


# --- WADO-WS Rendered ----------------------------------------------------------------------------

class ContentTypeList(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [("ContentType", many(Unicode))]


class CharsetList(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [("Charset", many(Unicode))]


class RenderedDocumentRequest(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [
        ("HomeCommunityId", in_ns(Text, ns.XDS)),
        ("RepositoryUniqueId", in_ns(Text, ns.XDS)),
        ("DocumentUniqueId", in_ns(Text, ns.XDS)),
        ("Annotation", Text),
        ("Rows", Text),
        ("Columns", Text),
        # Region is read from the raw XML (soap.translate): spyne cannot read mixed content.
        ("WindowCenter", Text),
        ("WindowWidth", Text),
        ("ImageQuality", Text),
        ("PresentationUID", Text),
        ("PresentationSeriesUID", Text),
        ("Anonymize", Text),
        ("FrameNumber", Text),
        ("ContentTypeList", ContentTypeList.customize(min_occurs=0)),
        ("CharsetList", CharsetList.customize(min_occurs=0)),
    ]


class RenderedSeriesRequest(ComplexModel):
    __namespace__ = ns.WADO
    __type_name__ = "RenderedSeriesRequestType"
    _type_info = [
        ("seriesInstanceUID", XmlAttribute(Unicode)),
        ("RenderedDocumentRequest", many(RenderedDocumentRequest)),
    ]


class RenderedStudyRequest(ComplexModel):
    __namespace__ = ns.WADO
    __type_name__ = "RenderedStudyRequestType"
    _type_info = [
        ("studyInstanceUID", XmlAttribute(Unicode)),
        ("SeriesRequest", many(RenderedSeriesRequest)),
    ]


class RetrieveRenderedImagingDocumentSetRequest(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [("StudyRequest", many(RenderedStudyRequest))]


class Region(ComplexModel):
    __namespace__ = ns.WADO
    __type_name__ = "RegionType"
    _type_info = [("XMin", Unicode), ("YMin", Unicode), ("XMax", Unicode), ("YMax", Unicode)]


class RenderedDocumentResponse(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [
        ("HomeCommunityId", in_ns(Text, ns.XDS)),
        ("RepositoryUniqueId", in_ns(Unicode, ns.XDS)),
        ("SourceDocumentUniqueId", Unicode),
        ("FrameNumber", Text),
        ("Annotation", Text),
        ("Rows", Text),
        ("Columns", Text),
        ("Region", Region.customize(min_occurs=0)),
        ("WindowCenter", Text),
        ("WindowWidth", Text),
        ("ImageQuality", Text),
        ("PresentationUID", Text),
        ("PresentationSeriesUID", Text),
        ("Anonymize", Text),
        ("mimeType", in_ns(Unicode, ns.XDS)),
        ("Document", in_ns(XopDocument, ns.XDS)),
    ]


class RetrieveRenderedImagingDocumentSetResponse(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [
        ("RegistryResponse", in_ns(RegistryResponse, ns.RS)),
        ("RenderedDocumentResponse", many(RenderedDocumentResponse)),
    ]


# --- WADO-WS Information (metadata) ---------------------------------------------------------------

class DocumentInformationRequest(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [
        ("HomeCommunityId", in_ns(Text, ns.XDS)),
        ("RepositoryUniqueId", in_ns(Text, ns.XDS)),
        ("DocumentUniqueId", in_ns(Text, ns.XDS)),
        ("Anonymize", Text),
        ("XPath", many(Unicode)),
    ]


class InformationSeriesRequest(ComplexModel):
    __namespace__ = ns.WADO
    __type_name__ = "InformationSeriesRequestType"
    _type_info = [
        ("seriesInstanceUID", XmlAttribute(Unicode)),
        ("DocumentInformationRequest", many(DocumentInformationRequest)),
    ]


class InformationStudyRequest(ComplexModel):
    __namespace__ = ns.WADO
    __type_name__ = "InformationStudyRequestType"
    _type_info = [
        ("studyInstanceUID", XmlAttribute(Unicode)),
        ("SeriesRequest", many(InformationSeriesRequest)),
    ]


class RetrieveImagingDocumentSetInformationRequest(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [("StudyRequest", many(InformationStudyRequest))]


class XPathResponseList(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [("XPathResponse", many(Unicode))]


class DocumentInformationResponse(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [
        ("HomeCommunityId", in_ns(Text, ns.XDS)),
        ("RepositoryUniqueId", in_ns(Unicode, ns.XDS)),
        ("DocumentUniqueId", in_ns(Unicode, ns.XDS)),
        ("FrameNumber", Text),
        ("XPathResponseList", XPathResponseList),
    ]


class RetrieveImagingDocumentSetInformationResponse(ComplexModel):
    __namespace__ = ns.WADO
    _type_info = [
        ("RegistryResponse", in_ns(RegistryResponse, ns.RS)),
        ("DocumentInformationResponse", many(DocumentInformationResponse)),
    ]
