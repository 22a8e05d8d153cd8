"""Checking the rendering parameters of a RenderedDocumentRequest (PS3.18 chapter 8.2) and choosing the media
type. A value the standard does not allow is urn:dicom:wado:0012 for that document; a media type we cannot
make is urn:dicom:wado:0006."""

from __future__ import annotations

from dataclasses import dataclass

from wadows.render import RenderError, text_charset
from wadows.wado import codes
from wadows.wado.messages import RenderingParameters
from wadows.wado.rejected import Rejected
from wadows.wado.uids import is_valid_uid

ANNOTATIONS = frozenset({"patient", "technique"})
_MAX_SIZE = 16384  # rows/columns beyond this are not a display request


@dataclass(frozen=True)
class CheckedParameters:
    rows: int | None
    columns: int | None
    region: tuple[float, float, float, float] | None
    window: tuple[float, float] | None
    quality: int | None
    annotation: frozenset[str]
    presentation: tuple[str, str] | None  # (PresentationUID, PresentationSeriesUID)


def check(params: RenderingParameters) -> CheckedParameters:
    window = None
    if (params.window_center is None) != (params.window_width is None):
        raise _invalid("WindowCenter and WindowWidth go together")
    if params.window_center is not None:
        window = (_number("WindowCenter", params.window_center), _number("WindowWidth", params.window_width))
        if window[1] < 1:
            raise _invalid("WindowWidth must be at least 1")
    presentation = None
    if (params.presentation_uid is None) != (params.presentation_series_uid is None):
        raise _invalid("PresentationUID and PresentationSeriesUID go together")
    if params.presentation_uid is not None:
        for name, value in (("PresentationUID", params.presentation_uid),
                            ("PresentationSeriesUID", params.presentation_series_uid)):
            if not is_valid_uid(value):
                raise _invalid(f"{name} is not a valid DICOM UID")
        if params.region is not None or window is not None:
            raise _invalid("Region and the window are taken from the presentation state when PresentationUID is given")
        presentation = (params.presentation_uid, params.presentation_series_uid)
    return CheckedParameters(
        rows=_whole("Rows", params.rows, 1, _MAX_SIZE),
        columns=_whole("Columns", params.columns, 1, _MAX_SIZE),
        region=_region(params.region),
        window=window,
        quality=_whole("ImageQuality", params.image_quality, 1, 100),
        annotation=_annotation(params.annotation),
        presentation=presentation,
    )


def frame_number(value: str | None) -> int | None:
    return _whole("FrameNumber", value, 1, 2**31 - 1)


def choose_media_type(requested: tuple[str, ...], offered: tuple[str, ...], default: str) -> str:
    """The first requested type we offer for this object; `*/*` and `type/*` take our default of that type."""
    if not requested:
        raise _invalid("ContentTypeList names no content type")
    for wanted in requested:
        media = wanted.split(";", 1)[0].strip().lower()
        if media == "*/*":
            return default
        if media.endswith("/*"):
            match = default if default.startswith(media[:-1]) else next(
                (o for o in offered if o.startswith(media[:-1])), None)
            if match:
                return match
        elif media in offered:
            return media
    raise Rejected(codes.FORMAT_NOT_SUPPORTED, "None of the requested content types can be made for this object "
                                               f"(possible: {', '.join(offered)})")


def choose_charset(requested: tuple[str, ...]) -> str:
    """The first requested charset that encodes text (the renderer's own rule); UTF-8 when none is named."""
    for name in requested:
        try:
            return text_charset(name.strip())
        except RenderError:
            continue
    if requested:
        raise Rejected(codes.FORMAT_NOT_SUPPORTED, "None of the requested charsets is known to this server")
    return "utf-8"


def _invalid(reason: str) -> Rejected:
    return Rejected(codes.INVALID_PARAMETER, reason)


def _whole(name: str, value: str | None, low: int, high: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        raise _invalid(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise _invalid(f"{name} must be between {low} and {high}")
    return number


def _number(name: str, value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise _invalid(f"{name} must be a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _invalid(f"{name} must be a finite number")
    return number


def _region(value) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    if len(parts) != 4:
        raise _invalid("Region needs four values: x1,y1,x2,y2 (or XMin, YMin, XMax, YMax)")
    x1, y1, x2, y2 = (_number("Region", str(p)) for p in parts)
    if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        raise _invalid("Region corners must be normalized (0.0 to 1.0) with x1 < x2 and y1 < y2")
    return x1, y1, x2, y2


def _annotation(value: str | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    words = frozenset(w.strip().lower() for w in value.split(",") if w.strip())
    unknown = words - ANNOTATIONS
    if unknown or not words:
        raise _invalid("Annotation takes patient and/or technique, comma-separated")
    return words
