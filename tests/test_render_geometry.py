"""Spatial rendering: Rows/Columns maxima and aspect, Region, non-square pixels, and the Grayscale Softcopy
Presentation State (displayed area, size modes, rotation, flip, VOI, Presentation LUT)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from wadows.dicom.frames import read_frame
from wadows.dicom.part10 import open_source
from wadows.render import Rendered, RenderError, RenderFailure, RenderRequest, render_image

IDENTITY = (128.0, 256.0)  # the window that maps 8-bit values to themselves
TL, TR, BL, BR = 10, 80, 160, 240


def decoded(rendered: Rendered) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(rendered.data)))


def load(name: str) -> tuple[Dataset, np.ndarray]:
    with open(get_testdata_file(name), "rb") as fp:
        source = open_source(fp)
        return source.dataset, read_frame(source, 0)


def quadrants(rows: int = 100, columns: int = 200) -> tuple[Dataset, np.ndarray]:
    """A synthetic image whose four quadrants have distinct values, so any crop, turn or flip shows."""
    values = np.empty((rows, columns), dtype=np.uint8)
    values[: rows // 2, : columns // 2] = TL
    values[: rows // 2, columns // 2:] = TR
    values[rows // 2:, : columns // 2] = BL
    values[rows // 2:, columns // 2:] = BR
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.WindowCenter, ds.WindowWidth = IDENTITY
    return ds, values


def png(header: Dataset, pixels: np.ndarray, presentation: Dataset | None = None,
        **fields) -> tuple[np.ndarray, Rendered]:
    rendered = render_image(header, pixels, RenderRequest("image/png", **fields), presentation)
    return decoded(rendered), rendered


def corners(image: np.ndarray) -> tuple[int, int, int, int]:
    """Values at the centres of the four quadrants: TL, TR, BL, BR."""
    rows, columns = image.shape[:2]
    r1, r2, c1, c2 = rows // 4, 3 * rows // 4, columns // 4, 3 * columns // 4
    return int(image[r1, c1]), int(image[r1, c2]), int(image[r2, c1]), int(image[r2, c2])


@pytest.mark.parametrize("rows, columns, expected", [
    (150, None, (150, 242)),  # (height, width); rows alone: width follows the aspect ratio
    (None, 242, (150, 242)),
    (100, 100, (62, 100)),  # both are maxima: the tighter one wins
    (600, 600, (372, 600)),  # scaled up to fit, never beyond either
    (None, None, (300, 484)),
])
def test_rows_and_columns_are_maxima_with_aspect_kept(rows, columns, expected):
    header, frame = load("examples_overlay.dcm")  # 300 x 484
    image, rendered = png(header, frame, rows=rows, columns=columns)
    assert image.shape == expected
    assert (rendered.used.rows, rendered.used.columns) == expected
    if rows:
        assert image.shape[0] <= rows
    if columns:
        assert image.shape[1] <= columns


def test_downscaling_resamples_rather_than_drops_pixels():
    header, frame = quadrants()
    # a one-pixel-wide white line vanishes with nearest-neighbour subsampling at some phases; Lanczos keeps it
    frame = frame.copy()
    frame[:, 101] = 255
    image, _ = png(header, frame, window=IDENTITY, columns=50)
    assert image.shape == (25, 50)
    assert image[:, 24:27].max() > TR + 20


@pytest.mark.parametrize("region, expected", [
    ((0.0, 0.0, 0.5, 0.5), TL),
    ((0.5, 0.0, 1.0, 0.5), TR),
    ((0.0, 0.5, 0.5, 1.0), BL),
    ((0.5, 0.5, 1.0, 1.0), BR),
])
def test_region_crops_the_right_quadrant(region, expected):
    header, frame = quadrants()
    image, rendered = png(header, frame, region=region)
    assert image.shape == (50, 100)
    assert np.all(image == expected)
    assert rendered.used.region == region


def test_region_then_size():
    header, frame = quadrants()
    image, rendered = png(header, frame, region=(0.5, 0.5, 1.0, 1.0), rows=20)
    assert image.shape == (20, 40)
    assert np.all(np.abs(image.astype(int) - BR) <= 1)
    assert rendered.used.region == (0.5, 0.5, 1.0, 1.0)


def test_whole_image_region_is_echoed():
    header, frame = quadrants()
    assert png(header, frame)[1].used.region == (0.0, 0.0, 1.0, 1.0)


@pytest.mark.parametrize("region", [(0.5, 0.0, 0.5, 1.0), (0.0, 0.0, 1.2, 1.0), (-0.1, 0.0, 1.0, 1.0)])
def test_bad_region_is_an_invalid_parameter(region):
    header, frame = quadrants()
    with pytest.raises(RenderError) as error:
        png(header, frame, region=region)
    assert error.value.code == RenderFailure.INVALID_PARAMETER


def test_non_square_pixels_are_corrected():
    header, frame = quadrants(100, 100)
    header.PixelSpacing = [1.0, 2.0]  # rows 1 mm apart, columns 2 mm: each pixel twice as wide as tall
    image, _ = png(header, frame)
    assert image.shape == (100, 200)
    header.PixelSpacing = [1.0, 1.0]
    assert png(header, frame)[0].shape == (100, 100)


def presentation_state(**attributes) -> Dataset:
    ps = Dataset()
    ps.SOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"
    ps.PresentationLUTShape = "IDENTITY"
    for keyword, value in attributes.items():
        setattr(ps, keyword, value)
    return ps


def area(top_left, bottom_right, mode="SCALE TO FIT", **attributes) -> Dataset:
    item = Dataset()
    item.DisplayedAreaTopLeftHandCorner = list(top_left)
    item.DisplayedAreaBottomRightHandCorner = list(bottom_right)
    item.PresentationSizeMode = mode
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def test_presentation_rotation_turns_clockwise():
    header, frame = quadrants()
    image, rendered = png(header, frame, presentation_state(ImageRotation=90))
    assert image.shape == (200, 100)
    assert corners(image) == (BL, TL, BR, TR)
    assert rendered.ignored == ()


def test_presentation_flip_mirrors():
    header, frame = quadrants()
    image, _ = png(header, frame, presentation_state(ImageHorizontalFlip="Y"))
    assert corners(image) == (TR, TL, BR, BL)


def test_presentation_rotation_comes_before_flip():
    header, frame = quadrants()
    image, _ = png(header, frame, presentation_state(ImageRotation=90, ImageHorizontalFlip="Y"))
    assert corners(image) == (TL, BL, TR, BR)  # a transpose; flip-then-rotate would give (BR, TR, BL, TL)


def test_displayed_area_selects_part_of_the_image():
    header, frame = quadrants()
    ps = presentation_state(DisplayedAreaSelectionSequence=[area((101, 1), (200, 50))])
    image, _ = png(header, frame, ps)
    assert image.shape == (50, 100)
    assert np.all(image == TR)


def test_displayed_area_corners_are_in_stored_coordinates_before_rotation():
    header, frame = quadrants()
    ps = presentation_state(ImageRotation=180, DisplayedAreaSelectionSequence=[area((200, 50), (101, 1))])
    image, _ = png(header, frame, ps)
    assert image.shape == (50, 100)
    assert np.all(image == TR)


def test_displayed_area_outside_the_image_is_black():
    header, frame = quadrants()
    ps = presentation_state(DisplayedAreaSelectionSequence=[area((-99, 1), (100, 100))])
    image, _ = png(header, frame, ps)
    assert image.shape == (100, 200)
    assert np.all(image[:, :100] == 0) and int(image[10, 150]) == TL


def test_magnify_mode_scales_and_rows_columns_still_limit():
    header, frame = quadrants()
    ps = presentation_state(DisplayedAreaSelectionSequence=[
        area((1, 1), (200, 100), "MAGNIFY", PresentationPixelMagnificationRatio=2.0)])
    assert png(header, frame, ps)[0].shape == (200, 400)
    assert png(header, frame, ps, columns=300)[0].shape == (150, 300)


def test_scale_to_fit_fills_rows_and_columns():
    header, frame = quadrants()
    ps = presentation_state(DisplayedAreaSelectionSequence=[area((1, 1), (100, 50))])
    image, _ = png(header, frame, ps, rows=200, columns=200)
    assert image.shape == (100, 200)


def test_presentation_pixel_aspect_ratio_stretches():
    header, frame = quadrants(100, 100)
    ps = presentation_state(DisplayedAreaSelectionSequence=[
        area((1, 1), (100, 100), PresentationPixelAspectRatio=[1, 2])])  # vertical 1 : horizontal 2
    assert png(header, frame, ps)[0].shape == (100, 200)
    ps.ImageRotation = 90  # the stretch belongs to the stored x axis, which is vertical after the turn
    assert png(header, frame, ps)[0].shape == (200, 100)


def test_true_size_is_scaled_to_fit_and_says_so():
    header, frame = quadrants()
    ps = presentation_state(DisplayedAreaSelectionSequence=[area((1, 1), (200, 100), "TRUE SIZE",
                                                                 PresentationPixelSpacing=[1.0, 1.0])])
    image, rendered = png(header, frame, ps, rows=50)
    assert image.shape == (50, 100)
    assert any("TRUE SIZE" in text for text in rendered.ignored)


def voi_item(center: float, width: float, sop_instance: str | None = None) -> Dataset:
    item = Dataset()
    item.WindowCenter, item.WindowWidth = center, width
    if sop_instance:
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        ref.ReferencedSOPInstanceUID = sop_instance
        item.ReferencedImageSequence = [ref]
    return item


def test_presentation_window_replaces_the_image_window():
    header, frame = quadrants()
    ps = presentation_state(SoftcopyVOILUTSequence=[voi_item(81.0, 2.0)])  # black up to 80, white from 81
    image, rendered = png(header, frame, ps)
    assert rendered.used.window == (81.0, 2.0)
    assert corners(image) == (0, 0, 255, 255)


def test_presentation_window_for_another_image_does_not_apply():
    header, frame = quadrants()
    ps = presentation_state(SoftcopyVOILUTSequence=[voi_item(80.5, 2.0, sop_instance="9.9.9")])
    image, rendered = png(header, frame, ps)
    assert rendered.used.window == IDENTITY  # the image's own
    assert corners(image) == (TL, TR, BL, BR)
    ps = presentation_state(SoftcopyVOILUTSequence=[voi_item(80.5, 2.0, sop_instance=header.SOPInstanceUID)])
    assert png(header, frame, ps)[1].used.window == (80.5, 2.0)


def test_request_window_beats_the_presentation_window():
    header, frame = quadrants()
    ps = presentation_state(SoftcopyVOILUTSequence=[voi_item(80.5, 2.0)])
    assert png(header, frame, ps, window=IDENTITY)[1].used.window == IDENTITY


def test_presentation_lut_shape_inverse():
    header, frame = quadrants()
    image, _ = png(header, frame, presentation_state(PresentationLUTShape="INVERSE"))
    assert corners(image) == (255 - TL, 255 - TR, 255 - BL, 255 - BR)


def test_presentation_lut_identity_overrides_monochrome1():
    header, frame = quadrants()
    header = copy.deepcopy(header)
    header.PhotometricInterpretation = "MONOCHROME1"
    assert corners(png(header, frame)[0]) == (255 - TL, 255 - TR, 255 - BL, 255 - BR)
    assert corners(png(header, frame, presentation_state(PresentationLUTShape="IDENTITY"))[0]) == (TL, TR, BL, BR)


def test_presentation_modality_lut_replaces_the_images_rescale():
    header, frame = quadrants()
    header.RescaleSlope, header.RescaleIntercept = 1, 1000  # would push everything white in this window
    ps = presentation_state(RescaleSlope=1, RescaleIntercept=0, RescaleType="US")
    assert corners(png(header, frame, ps)[0]) == (TL, TR, BL, BR)
    assert corners(png(header, frame)[0]) == (255, 255, 255, 255)


def test_unsupported_presentation_parts_are_reported():
    header, frame = quadrants()
    ps = presentation_state(GraphicAnnotationSequence=[Dataset()], ShutterShape="RECTANGULAR")
    _, rendered = png(header, frame, ps)
    assert "graphic annotations" in rendered.ignored
    assert "display shutter" in rendered.ignored


def test_presentation_grayscale_steps_on_colour_are_reported_not_applied():
    header, frame = load("examples_rgb_color.dcm")
    ps = presentation_state(PresentationLUTShape="INVERSE", ImageHorizontalFlip="Y")
    image, rendered = png(header, frame, ps)
    assert np.array_equal(image, frame[:, ::-1])
    assert any("colour" in text for text in rendered.ignored)


def test_presentation_voi_lut_sequence():
    header, frame = quadrants()
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 8]
    lut.LUTData = [255 - v for v in range(256)]  # a reversing LUT
    item = Dataset()
    item.VOILUTSequence = [lut]
    image, rendered = png(header, frame, presentation_state(SoftcopyVOILUTSequence=[item]))
    assert corners(image) == (255 - TL, 255 - TR, 255 - BL, 255 - BR)
    assert rendered.used.window is None
