"""Rendered images and text of stored objects (PS3.18 RetrieveRenderedImagingDocumentSet), on numpy and Pillow.

No spyne, no HTTP: the operation validates a request into a RenderRequest, reads the frame with
wadows.dicom.frames.read_frame(source, frame_index(header, request.frame)) and calls render_image or
render_text; RenderError.code tells it which PS3.18 error to report.
"""

from wadows.render.frame_attributes import frame_index
from wadows.render.image import render_image
from wadows.render.media import (
    IMAGE_MEDIA_TYPES, SUPPORTED_MEDIA_TYPES, TEXT_MEDIA_TYPES, can_render, media_types_for,
)
from wadows.render.request import (
    ANNOTATIONS, Rendered, RenderedValues, RenderError, RenderFailure, RenderRequest,
)
from wadows.render.text import render_text, text_charset

__all__ = [
    "ANNOTATIONS", "IMAGE_MEDIA_TYPES", "SUPPORTED_MEDIA_TYPES", "TEXT_MEDIA_TYPES", "RenderError", "RenderFailure",
    "RenderRequest", "Rendered", "RenderedValues", "can_render", "frame_index", "media_types_for", "render_image",
    "render_text", "text_charset",
]
