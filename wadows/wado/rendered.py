"""RetrieveRenderedImagingDocumentSet (PS3.18 §6.4.2): each document rendered as an image (or, for reports, as
text), from the de-identified object when Anonymize asks for it.

Renderings are made before the envelope is written, because the response echoes the values each one actually
used; a request's renderings are held within a memory budget (beyond it: urn:dicom:wado:0005).
"""

from __future__ import annotations

import logging

import pydicom

from wadows.dicom import part10
from wadows.dicom.frames import frame_count, read_frame
from wadows.render import (TEXT_MEDIA_TYPES, RenderError, RenderFailure, RenderRequest, media_types_for, render_image,
                           render_text)
from wadows.wado import codes
from wadows.wado.anonymize import AnonymizeChoice, deidentified, parse_anonymize
from wadows.wado.documents import authorize, each_document, find_document, prefetch, request_size_error
from wadows.wado.messages import (Body, DocumentRef, RenderedRequest, RenderedResult, RenderingParameters, Response,
                                  UsedParameters)
from wadows.wado.rejected import Rejected
from wadows.wado.rendering_params import check, choose_charset, choose_media_type, frame_number
from wadows.wado.source import ImagingDocumentSource

log = logging.getLogger(__name__)

# PS3.18 §6.4.4 codes for what the renderer reports.
_RENDER_ERRORS = {
    RenderFailure.UNSUPPORTED_MEDIA_TYPE: codes.FORMAT_NOT_SUPPORTED,
    RenderFailure.NOT_RENDERABLE: codes.FORMAT_NOT_POSSIBLE,
    RenderFailure.FRAME_OUT_OF_RANGE: codes.FRAME_OUT_OF_RANGE,
    RenderFailure.INVALID_PARAMETER: codes.INVALID_PARAMETER,
    RenderFailure.UNSUPPORTED_CHARSET: codes.FORMAT_NOT_SUPPORTED,
    RenderFailure.CHARSET_CANNOT_ENCODE: codes.FORMAT_NOT_POSSIBLE,
    RenderFailure.PROCESSING_FAILURE: codes.PROCESSING_FAILURE,
}


class RenderBudget:
    def __init__(self, limit: int):
        self.left = limit

    def take(self, size: int) -> None:
        if size > self.left:
            raise Rejected(codes.TOO_LARGE, "The renderings of this request exceed this server's limit; ask for "
                                            "fewer documents per request")
        self.left -= size


def rendered(source: ImagingDocumentSource, request: RenderedRequest, caller) -> Response:
    problem = request_size_error(source, len(request.documents))
    if problem is not None:
        return Response(errors=[problem], requested=[ref.document_uid for ref, _ in request.documents])
    budget = RenderBudget(source.rendered_bytes)
    prefetch(source, [ref for ref, _ in request.documents])
    results, errors = each_document(request.documents, lambda item: _render(source, *item, budget, caller),
                                    ref_of=lambda item: item[0])
    log.info("RetrieveRenderedImagingDocumentSet: %d requested, %d rendered, %d errors",
             len(request.documents), len(results), len(errors))
    return Response(documents=results, errors=errors, requested=[ref.document_uid for ref, _ in request.documents])


def _render(source: ImagingDocumentSource, ref: DocumentRef, params: RenderingParameters,
            budget: RenderBudget, caller) -> RenderedResult:
    anonymize = parse_anonymize(ref.anonymize) is AnonymizeChoice.YES
    authorize(caller, anonymize)  # a rendering of the original shows the original's pixels and annotation
    record, _ = find_document(source, ref)
    checked = check(params)
    frame = frame_number(ref.frame_number)
    presentation = _presentation_state(source, *checked.presentation) if checked.presentation else None
    with source.store.open(record) as fp:
        try:
            instance = part10.open_source(fp)
        except part10.DicomReadError as exc:
            raise Rejected(codes.PROCESSING_FAILURE, f"The stored object cannot be read: {exc}")
        header, plan = deidentified(source, instance.dataset) if anonymize else (instance.dataset, None)
        if anonymize and presentation is not None:
            # Its references must name the image by the image's new UIDs, and its own text must not leave.
            presentation, _ = deidentified(source, presentation)
        offered = media_types_for(instance.dataset)
        if not offered:
            raise Rejected(codes.FORMAT_NOT_SUPPORTED, "This kind of object cannot be rendered")
        request = RenderRequest(
            media_type=choose_media_type(params.content_types, offered, offered[0]), rows=checked.rows,
            columns=checked.columns, region=checked.region, window=checked.window, quality=checked.quality,
            annotation=checked.annotation, frame=frame, draw_overlays=not anonymize)
        try:
            if request.media_type in TEXT_MEDIA_TYPES:
                request.charset = choose_charset(params.charsets)
                result = render_text(header, request)
            else:
                pixels = read_frame(instance, _frame_index(header, frame), keep_unused_bits=request.draw_overlays)
                if plan is not None and plan.pixel_edit is not None:
                    pixels = plan.pixel_edit(pixels, header)  # burned-in text blanked before anything is drawn
                result = render_image(header, pixels, request, presentation)
        except RenderError as exc:
            raise Rejected(_RENDER_ERRORS[exc.code], str(exc))
        except part10.DicomReadError as exc:
            raise Rejected(codes.PROCESSING_FAILURE, f"The pixel data cannot be decoded: {exc}")
    budget.take(len(result.data))
    data = result.data
    used = None
    if result.used.rows is not None:
        u = result.used
        used = UsedParameters(rows=u.rows, columns=u.columns, region=u.region, window_center=u.window_center,
                              window_width=u.window_width, image_quality=u.quality,
                              annotation=",".join(sorted(u.annotation)) or None,
                              presentation_uid=checked.presentation[0] if checked.presentation else None,
                              presentation_series_uid=checked.presentation[1] if checked.presentation else None)
    return RenderedResult(ref=ref, repository_uid=ref.repository_uid or source.repository_uid,
                          body=Body(lambda: iter((data,)), len(data), result.media_type), used=used,
                          anonymized=anonymize)


def _frame_index(header, frame: int | None) -> int:
    frames = frame_count(header)
    if frames <= 1:
        return 0  # PS3.18 §8.2.7: FrameNumber is ignored for single-frame objects
    if frame is None:
        raise Rejected(codes.SINGLE_FRAME_NOT_AVAILABLE, "The object has several frames: ask for one with FrameNumber")
    if frame > frames:
        raise Rejected(codes.FRAME_OUT_OF_RANGE, f"FrameNumber is beyond the object's {frames} frames")
    return frame - 1


def _presentation_state(source: ImagingDocumentSource, uid: str, series_uid: str):
    record = source.store.locate(uid)
    if record is None:
        raise Rejected(codes.PRESENTATION_UID_UNKNOWN, "No presentation state with this PresentationUID here")
    if record.series_uid != series_uid:
        raise Rejected(codes.PRESENTATION_SERIES_UID_UNKNOWN,
                       "The presentation state is not in the PresentationSeriesUID given")
    with source.store.open(record) as fp:
        try:
            return pydicom.dcmread(fp)
        except Exception:
            raise Rejected(codes.PROCESSING_FAILURE, "The presentation state cannot be read") from None
