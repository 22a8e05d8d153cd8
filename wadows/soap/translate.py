"""Between spyne's message models and the transport-free values of wadows.wado, both ways."""

from __future__ import annotations

from lxml import etree

from wadows.soap import models
from wadows.wado.messages import (DocumentRef, InformationRequest, RenderedRequest, RenderingParameters, Response,
                                  RetrieveRequest)


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _ref(study, series, doc, frame_number: str | None = None) -> DocumentRef:
    return DocumentRef(
        study_uid=_text(study.studyInstanceUID) or "",
        series_uid=_text(series.seriesInstanceUID) or "",
        document_uid=_text(doc.DocumentUniqueId) or "",
        repository_uid=_text(doc.RepositoryUniqueId),
        home_community_id=_text(doc.HomeCommunityId),
        anonymize=doc.Anonymize.strip() if doc.Anonymize is not None else None,
        frame_number=frame_number,
    )


def _walk(model, document_element: str):
    """(study, series, document) models in request order."""
    for study in (model.StudyRequest or []) if model is not None else []:
        for series in study.SeriesRequest or []:
            for doc in getattr(series, document_element) or []:
                yield study, series, doc


def retrieve_request(model: models.RetrieveImagingDocumentSetRequest | None) -> RetrieveRequest:
    documents = tuple(_ref(st, se, doc, _text(doc.FrameNumber)) for st, se, doc in _walk(model, "DocumentRequest"))
    syntaxes = []
    if model is not None and model.TransferSyntaxUIDList is not None:
        syntaxes = [s for s in (_text(t) for t in model.TransferSyntaxUIDList.TransferSyntaxUID or []) if s]
    return RetrieveRequest(documents=documents, transfer_syntaxes=tuple(syntaxes))


def rendered_request(model: models.RetrieveRenderedImagingDocumentSetRequest | None,
                     body: etree._Element) -> RenderedRequest:
    """`body` is the request element as parsed: Region is read from it, in document order (spyne reads children
    by local name and cannot read mixed content, and Region comes as text or as XMin/YMin/XMax/YMax)."""
    regions = iter([_child(request, "Region") for request in body.iter()
                    if isinstance(request.tag, str) and etree.QName(request).localname == "RenderedDocumentRequest"])
    documents = []
    for study, series, doc in _walk(model, "RenderedDocumentRequest"):
        params = RenderingParameters(
            content_types=tuple(t for t in (_text(c) for c in (doc.ContentTypeList.ContentType or [])) if t)
            if doc.ContentTypeList is not None else (),
            charsets=tuple(t for t in (_text(c) for c in (doc.CharsetList.Charset or [])) if t)
            if doc.CharsetList is not None else (),
            annotation=_text(doc.Annotation), rows=_text(doc.Rows), columns=_text(doc.Columns),
            region=_region(next(regions, None)), window_center=_text(doc.WindowCenter), window_width=_text(doc.WindowWidth),
            image_quality=_text(doc.ImageQuality), presentation_uid=_text(doc.PresentationUID),
            presentation_series_uid=_text(doc.PresentationSeriesUID),
        )
        documents.append((_ref(study, series, doc, _text(doc.FrameNumber)), params))
    return RenderedRequest(documents=tuple(documents))


def _child(element: etree._Element, localname: str) -> etree._Element | None:
    return next((c for c in element if isinstance(c.tag, str) and etree.QName(c).localname == localname), None)


def _region(element: etree._Element | None):
    """Region as "x1,y1,x2,y2" text or as XMin/YMin/XMax/YMax children (any case: examples write Xmin)."""
    if element is None:
        return None
    children = {etree.QName(c).localname.lower(): (c.text or "").strip() for c in element if isinstance(c.tag, str)}
    if children:
        return tuple(children.get(name, "") for name in ("xmin", "ymin", "xmax", "ymax"))
    return (element.text or "").strip()


def information_request(model: models.RetrieveImagingDocumentSetInformationRequest | None) -> InformationRequest:
    documents = tuple(
        (_ref(st, se, doc), tuple((x or "").strip() for x in (doc.XPath or [])))
        for st, se, doc in _walk(model, "DocumentInformationRequest"))
    return InformationRequest(documents=documents)


def registry_response(result: Response) -> models.RegistryResponse:
    error_list = None
    if result.errors:
        errors = result.errors
        worst = next((e.severity for e in errors if e.severity.endswith(":Error")), errors[0].severity)
        error_list = models.RegistryErrorList(
            highestSeverity=worst,
            RegistryError=[models.RegistryError(errorCode=e.code, codeContext=e.context, location=e.location,
                                                severity=e.severity) for e in errors],
        )
    return models.RegistryResponse(status=result.status, RegistryErrorList=error_list)


def retrieve_response(result: Response) -> models.RetrieveDocumentSetResponse:
    # The DocumentResults go to spyne as they are: the protocol writes each as a DocumentResponse itself
    # (service.WadoSoap12._document_response_to_parent), without a model object per document.
    return models.RetrieveDocumentSetResponse(RegistryResponse=registry_response(result),
                                              DocumentResponse=list(result.documents))


def _number(value: float | None) -> str | None:
    return None if value is None else format(value, ".10g")


def rendered_response(result: Response) -> models.RetrieveRenderedImagingDocumentSetResponse:
    responses = []
    for doc in result.documents:
        used = doc.used
        region = None
        if used is not None and used.region is not None:
            region = models.Region(**dict(zip(("XMin", "YMin", "XMax", "YMax"), map(_number, used.region))))
        responses.append(models.RenderedDocumentResponse(
            HomeCommunityId=doc.ref.home_community_id,
            RepositoryUniqueId=doc.repository_uid,
            SourceDocumentUniqueId=doc.ref.document_uid,
            FrameNumber=doc.ref.frame_number,
            Annotation=used.annotation if used else None,
            Rows=str(used.rows) if used else None,
            Columns=str(used.columns) if used else None,
            Region=region,
            WindowCenter=_number(used.window_center) if used else None,
            WindowWidth=_number(used.window_width) if used else None,
            ImageQuality=str(used.image_quality) if used and used.image_quality is not None else None,
            PresentationUID=used.presentation_uid if used else None,
            PresentationSeriesUID=used.presentation_series_uid if used else None,
            Anonymize="yes" if doc.anonymized else None,
            mimeType=doc.body.media_type,
            Document=doc.body,
        ))
    return models.RetrieveRenderedImagingDocumentSetResponse(RegistryResponse=registry_response(result),
                                                            RenderedDocumentResponse=responses)


def information_response(result: Response) -> models.RetrieveImagingDocumentSetInformationResponse:
    return models.RetrieveImagingDocumentSetInformationResponse(
        RegistryResponse=registry_response(result),
        DocumentInformationResponse=[
            models.DocumentInformationResponse(
                HomeCommunityId=doc.ref.home_community_id,
                RepositoryUniqueId=doc.repository_uid,
                DocumentUniqueId=doc.ref.document_uid,
                XPathResponseList=models.XPathResponseList(
                    XPathResponse=[answer if answer is not None else "" for answer in doc.answers]),
            )
            for doc in result.documents
        ],
    )
