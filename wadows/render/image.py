"""render_image: one decoded frame to a JPEG, PNG, GIF or JPEG 2000 picture.

Order (PS3.4 N.2 and PS3.3 C.10): pixel values -> grayscale or colour pipeline -> overlays burned in at
stored resolution -> displayed area -> rotation and flip -> region -> output size (aspect kept, non-square
pixels corrected) -> annotation at output resolution -> encoding.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from wadows.dicom.frames import frame_count
from wadows.render import geometry, media
from wadows.render.annotation import annotation_lines, draw_annotation
from wadows.render.color import palette_to_rgb, true_color_to_rgb
from wadows.render.encoding import encoded
from wadows.render.frame_attributes import frame_attributes, frame_index
from wadows.render.grayscale import GrayscaleSettings, stored_values, to_grayscale
from wadows.render.overlays import overlay_mask
from wadows.render.presentation import PresentationPlan, plan
from wadows.render.request import RenderedValues, Rendered, RenderError, RenderFailure, RenderRequest

WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)


def render_image(header: Dataset, frame: np.ndarray, request: RenderRequest,
                 presentation: Dataset | None = None) -> Rendered:
    """Render `frame` (as wadows.dicom.frames.read_frame gives it, for frame_index(header, request.frame))
    of the image described by `header`, with the parts of `presentation` (a Grayscale Softcopy Presentation
    State) that apply to it. The annotation draws from `header`: pass the de-identified one when anonymizing."""
    request.check()
    media_type = media.checked(request.media_type, media.IMAGE_MEDIA_TYPES)
    if not media.is_image(header):
        raise RenderError(RenderFailure.NOT_RENDERABLE, "this object has no image to render")
    index = frame_index(header, request.frame)
    _check_shape(frame, header)
    attrs = frame_attributes(header, index)
    little_endian = _little_endian(header)
    mask = overlay_mask(header, index, frame, little_endian) if request.draw_overlays else None
    steps = plan(presentation, attrs, index + 1) if presentation is not None else PresentationPlan()

    pixels, window, ignored = _display_values(stored_values(frame, header), attrs, request, steps, little_endian)
    if mask is not None:
        pixels = pixels.copy()  # it may be the caller's frame itself
        pixels[mask] = 255  # overlays in white, after polarity, so they stay white (broadcasts over RGB)
    image = Image.fromarray(pixels)

    stretch = steps.area.x_stretch if steps.area else geometry.pixel_x_stretch(attrs)
    if steps.area:
        image = geometry.displayed_area(image, steps.area)
    image = geometry.oriented(image, steps.rotation, steps.flip)
    if request.region:
        image = geometry.region(image, request.region)
    sx, sy = (stretch, 1.0) if steps.rotation in (0, 180) else (1.0, stretch)  # the stretch follows the x axis
    magnification = steps.area.magnification if steps.area else None
    image = geometry.resized(image, geometry.output_size((image.width * sx, image.height * sy),
                                                         request.rows, request.columns, magnification))
    corners = annotation_lines(attrs, request.annotation, index + 1, frame_count(header), window)
    image = draw_annotation(image, corners)

    data, quality = encoded(image, media_type, request.quality)
    used = RenderedValues(rows=image.height, columns=image.width, region=request.region or WHOLE_IMAGE,
                          window=window, quality=quality, annotation=request.annotation, frame=index + 1)
    return Rendered(data, media_type, used, steps.ignored + ignored)


def _display_values(stored: np.ndarray, attrs: Dataset, request: RenderRequest, steps: PresentationPlan,
                    little_endian: bool) -> tuple[np.ndarray, tuple[float, float] | None, tuple[str, ...]]:
    """8-bit grey (rows, columns) or RGB (rows, columns, 3), the window used, and what was not applied."""
    photometric = str(attrs.get("PhotometricInterpretation", "")).strip().upper()
    grayscale_steps = steps.voi or steps.presentation_lut or steps.modality
    not_for_colour = ("grayscale transformations of the presentation state (colour image)",) if grayscale_steps else ()
    if stored.ndim == 3:
        return true_color_to_rgb(stored, attrs), None, not_for_colour
    if photometric == "PALETTE COLOR":
        return palette_to_rgb(stored, attrs), None, not_for_colour
    settings = GrayscaleSettings(window=request.window, modality=steps.modality, voi=steps.voi,
                                 presentation_lut=steps.presentation_lut)
    pixels, window = to_grayscale(stored, attrs, little_endian, settings)
    return pixels, window, ()


def _check_shape(frame: np.ndarray, header: Dataset) -> None:
    expected = (int(header.Rows), int(header.Columns))
    if frame.ndim not in (2, 3) or frame.shape[:2] != expected:
        raise RenderError(RenderFailure.PROCESSING_FAILURE, "the frame does not have the size the header gives")


def _little_endian(header: Dataset) -> bool:
    """Byte order of the header's OW values (LUT and overlay data): that of the file it came from."""
    little_endian = header.original_encoding[1]
    if little_endian is None:
        meta = getattr(header, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        return syntax != "1.2.840.10008.1.2.2"  # Explicit VR Big Endian
    return bool(little_endian)
