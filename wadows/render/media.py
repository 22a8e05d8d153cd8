"""Which media types we render to, and which of them fit an object (PS3.18 Table 6.1.1-3, WS column)."""

from __future__ import annotations

from pydicom.dataset import Dataset
from PIL import Image

from wadows.render.request import RenderError, RenderFailure

JPEG, PNG, GIF, JP2 = "image/jpeg", "image/png", "image/gif", "image/jp2"
PLAIN, HTML = "text/plain", "text/html"

# Pillow's format names; JPEG 2000 is there only when Pillow was built with OpenJPEG.
PILLOW_FORMAT = {JPEG: "JPEG", PNG: "PNG", GIF: "GIF", JP2: "JPEG2000"}


def _writable_image_types() -> tuple[str, ...]:
    Image.init()  # registers every Pillow plugin, so Image.SAVE lists all writers
    return tuple(media_type for media_type, fmt in PILLOW_FORMAT.items() if fmt in Image.SAVE)


IMAGE_MEDIA_TYPES: tuple[str, ...] = _writable_image_types()  # image/jpeg first: the default
TEXT_MEDIA_TYPES: tuple[str, ...] = (HTML, PLAIN)
SUPPORTED_MEDIA_TYPES: frozenset[str] = frozenset(IMAGE_MEDIA_TYPES + TEXT_MEDIA_TYPES)


def normalize(media_type: str) -> str:
    """`Image/JPEG; q=0.9` -> `image/jpeg`: parameters and case do not change what we produce."""
    return media_type.split(";", 1)[0].strip().lower()


def can_render(media_type: str) -> bool:
    return normalize(media_type) in SUPPORTED_MEDIA_TYPES


def checked(media_type: str, kinds: tuple[str, ...]) -> str:
    """The normalized media type, if we produce it and it is one of `kinds`; RenderError otherwise."""
    normalized = normalize(media_type)
    if normalized not in SUPPORTED_MEDIA_TYPES:
        raise RenderError(RenderFailure.UNSUPPORTED_MEDIA_TYPE, "this server does not render to that media type")
    if normalized not in kinds:
        raise RenderError(RenderFailure.NOT_RENDERABLE, f"this object cannot be rendered as {normalized}")
    return normalized


def is_image(header: Dataset) -> bool:
    """Image Pixel module present (the header of open_source has no Pixel Data element, so look at its attributes)."""
    return all(keyword in header for keyword in ("Rows", "Columns", "BitsAllocated"))


def is_structured_text(dataset: Dataset) -> bool:
    """An SR document (or a Key Object Selection, which is one): a content tree under a root CONTAINER."""
    return str(dataset.get("ValueType", "")).strip() == "CONTAINER" and "ContentSequence" in dataset


def media_types_for(header: Dataset) -> tuple[str, ...]:
    """The media types this object renders to here, the PS3.18 default first; () when it renders to none
    (encapsulated PDF/CDA, waveforms, RT plans, ...: those go out as application/dicom only)."""
    if is_image(header):
        return IMAGE_MEDIA_TYPES
    if is_structured_text(header):
        return TEXT_MEDIA_TYPES
    return ()
