"""What a rendering is asked for, what it produced, and how it fails: plain values, no DICOM."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

ANNOTATIONS = frozenset({"patient", "technique"})
MAX_OUTPUT_SIDE = 16384  # bound on Rows/Columns and on any output side: a caller must not make us allocate gigabytes


class RenderFailure(StrEnum):
    """Why a rendering failed; the operation maps each to its PS3.18 §6.4.4 error code."""

    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"  # this server never produces that media type
    NOT_RENDERABLE = "not-renderable"  # this object cannot be given in that media type (SR as JPEG, PDF as text)
    FRAME_OUT_OF_RANGE = "frame-out-of-range"
    INVALID_PARAMETER = "invalid-parameter"  # a value outside its domain (region, window width, quality, size)
    UNSUPPORTED_CHARSET = "unsupported-charset"  # a charset name we do not know
    CHARSET_CANNOT_ENCODE = "charset-cannot-encode"  # the text holds characters the charset lacks
    PROCESSING_FAILURE = "processing-failure"  # the object's own attributes cannot be applied (broken LUT, ...)


class RenderError(ValueError):
    """A rendering that cannot be done. The message names the problem, never a header or pixel value."""

    def __init__(self, code: RenderFailure, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class RenderRequest:
    """A rendering request; None means the default. Fields may be set after construction (the media type is
    often chosen last); render_image and render_text check the values when they start."""

    media_type: str
    rows: int | None = None  # maxima of the output size; the aspect ratio is kept
    columns: int | None = None
    region: tuple[float, float, float, float] | None = None  # normalized x1, y1, x2, y2 of the displayed image
    window: tuple[float, float] | None = None  # center, width (PS3.3 C.11.2.1.2)
    quality: int | None = None  # 1..100, for lossy output
    annotation: frozenset[str] = frozenset()  # subset of ANNOTATIONS
    frame: int | None = None  # 1-based; ignored for single-frame objects (PS3.18 §8.2.7)
    charset: str | None = None  # for text output; utf-8 when None
    draw_overlays: bool = True  # burn 60xx overlay planes in (the operation passes False when anonymizing)

    def check(self) -> None:
        """RenderError(INVALID_PARAMETER or FRAME_OUT_OF_RANGE) for a value outside its domain."""
        for name in ("rows", "columns"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= MAX_OUTPUT_SIDE:
                raise RenderError(RenderFailure.INVALID_PARAMETER, f"{name} must be between 1 and {MAX_OUTPUT_SIDE}")
        if self.region is not None:
            x1, y1, x2, y2 = self.region
            if not (0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0):
                raise RenderError(RenderFailure.INVALID_PARAMETER,
                                  "region must be x1,y1,x2,y2 with 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
        if self.window is not None:
            center, width = self.window
            if not (math.isfinite(center) and math.isfinite(width) and width >= 1.0):
                raise RenderError(RenderFailure.INVALID_PARAMETER, "window center must be finite, width at least 1")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise RenderError(RenderFailure.INVALID_PARAMETER, "image quality must be between 1 and 100")
        if not self.annotation <= ANNOTATIONS:
            raise RenderError(RenderFailure.INVALID_PARAMETER, "annotation must be patient and/or technique")
        if self.frame is not None and self.frame < 1:
            raise RenderError(RenderFailure.FRAME_OUT_OF_RANGE, "frame numbers start at 1")


@dataclass(frozen=True)
class RenderedValues:
    """The values a rendering actually used, for the response echo (PS3.18 §6.4.2.2)."""

    rows: int | None = None  # output size; None for text
    columns: int | None = None
    region: tuple[float, float, float, float] | None = None  # (0, 0, 1, 1) when the whole image was used
    window: tuple[float, float] | None = None  # center, width; None when no window applied (colour, VOI LUT)
    quality: int | None = None  # None for lossless output (PNG, GIF) and text; 100 for lossless JPEG 2000
    annotation: frozenset[str] = frozenset()
    frame: int | None = None  # 1-based frame rendered; None for text
    charset: str | None = None  # for text

    @property
    def window_center(self) -> float | None:
        return self.window[0] if self.window else None

    @property
    def window_width(self) -> float | None:
        return self.window[1] if self.window else None


@dataclass(frozen=True)
class Rendered:
    data: bytes
    media_type: str  # text output carries its charset parameter: "text/html; charset=utf-8"
    used: RenderedValues
    # Parts of a presentation state that were present but not applied (keywords or short phrases), so the
    # operation can tell the caller; empty when everything asked for was done.
    ignored: tuple[str, ...] = field(default=())
