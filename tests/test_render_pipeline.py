"""The grayscale and colour pipelines of wadows.render, checked numerically on PNG output (lossless, so the
decoded pixels are the rendered values): Modality LUT, VOI (request, object, LUT, data range), polarity,
signed and 32-bit data, palette and true colour."""

from __future__ import annotations

import copy
import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from wadows.dicom.frames import read_frame
from wadows.dicom.part10 import open_source
from wadows.render import Rendered, RenderRequest, frame_index, render_image


def decoded(rendered: Rendered) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(rendered.data)))


def load(name: str, index: int = 0, keep_unused_bits: bool = False) -> tuple[Dataset, np.ndarray]:
    with open(get_testdata_file(name), "rb") as fp:
        source = open_source(fp)
        return source.dataset, read_frame(source, index, keep_unused_bits=keep_unused_bits)


def png(header: Dataset, pixels: np.ndarray, **fields) -> tuple[np.ndarray, Rendered]:
    rendered = render_image(header, pixels, RenderRequest("image/png", **fields))
    return decoded(rendered), rendered


def linear_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 written out as the standard states it, to 0..255."""
    x = x.astype(np.float64)
    below = x <= center - 0.5 - (width - 1) / 2
    above = x > center - 0.5 + (width - 1) / 2
    inside = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.where(below, 0.0, np.where(above, 255.0, inside))


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal to within one grey level (float rounding at exact halves)."""
    difference = np.abs(actual.astype(np.int32) - np.rint(expected).astype(np.int32))
    assert difference.max() <= 1
    assert (difference == 0).mean() > 0.99


def gray(rows: int, columns: int, values: np.ndarray, **attributes) -> Dataset:
    """A minimal monochrome image header for a synthetic frame."""
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3.4"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = values.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if values.dtype.kind == "i" else 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def test_request_window_applies_the_linear_function_to_rescaled_values():
    header, frame = load("CT_small.dcm")  # signed, Rescale Intercept -1024
    image, rendered = png(header, frame, window=(40.0, 400.0))
    hounsfield = frame.astype(np.float64) * float(header.RescaleSlope) + float(header.RescaleIntercept)
    assert_close(image, linear_window(hounsfield, 40.0, 400.0))
    assert rendered.used.window == (40.0, 400.0)
    # a few pixels by hand: the brightest tissue is white, air is black
    assert image[np.unravel_index(np.argmax(hounsfield), hounsfield.shape)] == 255
    assert image[np.unravel_index(np.argmin(hounsfield), hounsfield.shape)] == 0


def test_object_window_is_the_default_and_the_request_overrides_it():
    header, frame = load("MR_small.dcm")  # Window Center 600, Width 1600
    by_object, rendered = png(header, frame)
    assert rendered.used.window == (600.0, 1600.0)
    assert_close(by_object, linear_window(frame, 600.0, 1600.0))
    by_request, rendered = png(header, frame, window=(300.0, 200.0))
    assert rendered.used.window == (300.0, 200.0)
    assert_close(by_request, linear_window(frame, 300.0, 200.0))
    assert not np.array_equal(by_object, by_request)
    for row, column in ((10, 10), (32, 32), (50, 20)):
        x = float(frame[row, column])
        expected = 0 if x <= 199.5 else 255 if x > 398.5 else round(((x - 299.5) / 199 + 0.5) * 255)
        assert abs(int(by_request[row, column]) - expected) <= 1


def test_without_any_window_the_data_range_spans_black_to_white():
    header, frame = load("CT_small.dcm")
    assert "WindowCenter" not in header
    image, rendered = png(header, frame)
    assert image.min() == 0 and image.max() == 255
    hounsfield = frame.astype(np.float64) - 1024
    center, width = rendered.used.window
    assert width == hounsfield.max() - hounsfield.min() + 1
    assert_close(image, linear_window(hounsfield, center, width))


def test_pixel_padding_is_left_out_of_the_data_range():
    values = np.array([[-2000, 0], [100, 200]], dtype=np.int16)
    header = gray(2, 2, values, PixelPaddingValue=-2000)
    _, rendered = png(header, values)
    center, width = rendered.used.window
    assert width == 201  # 0..200, without the padding value


def test_voi_lut_sequence_maps_through_the_lut():
    values = np.array([[0, 500, 501], [502, 503, 1500]], dtype=np.uint16)
    header = gray(2, 3, values)
    item = Dataset()
    item.LUTDescriptor = [4, 500, 8]  # 4 entries for inputs 500..503; below -> first, above -> last
    item.LUTData = [10, 20, 30, 250]
    header.VOILUTSequence = [item]
    image, rendered = png(header, values)
    assert rendered.used.window is None
    assert image.tolist() == [[10, 10, 20], [30, 250, 250]]  # 8-bit LUT output is already 0..255


def test_modality_lut_sequence_replaces_rescale():
    values = np.array([[0, 1], [2, 3]], dtype=np.uint16)
    header = gray(2, 2, values, RescaleSlope=100, RescaleIntercept=0)
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]
    item.LUTData = [0, 1000, 3000, 4000]
    header.ModalityLUTSequence = [item]
    image, _ = png(header, values, window=(2000.5, 4001.0))  # maps 0..4000 linearly to 0..255
    assert_close(image, linear_window(np.array([[0, 1000], [3000, 4000]]), 2000.5, 4001.0))


def test_sigmoid_voi_lut_function():
    values = np.array([[0, 50, 100]], dtype=np.uint16)
    header = gray(1, 3, values, WindowCenter=50, WindowWidth=40, VOILUTFunction="SIGMOID")
    image, _ = png(header, values)
    expected = 255 / (1 + np.exp(-4 * (values.astype(float) - 50) / 40))
    assert_close(image, expected)


def test_monochrome1_is_inverted():
    header, frame = load("MR_small.dcm")
    normal, _ = png(header, frame)
    inverted_header = copy.deepcopy(header)
    inverted_header.PhotometricInterpretation = "MONOCHROME1"
    inverted, _ = png(inverted_header, frame)
    assert_close(inverted, 255.0 - normal)
    assert not np.array_equal(inverted, normal)


def test_presentation_lut_shape_inverse_of_the_image_inverts_once():
    header, frame = load("MR_small.dcm")
    normal, _ = png(header, frame)
    header = copy.deepcopy(header)
    header.PresentationLUTShape = "INVERSE"
    assert_close(png(header, frame)[0], 255.0 - normal)
    header.PhotometricInterpretation = "MONOCHROME1"  # DX style: MONOCHROME1 with INVERSE, not inverted twice
    assert_close(png(header, frame)[0], 255.0 - normal)


def test_signed_values_with_garbage_above_bits_stored():
    """12 signed bits in 16 with bits set above them (as read with keep_unused_bits): the renderer masks
    and sign-extends, so the picture equals that of the clean values."""
    clean = np.array([[-2048, -1, 0], [1, 1000, 2047]], dtype=np.int16)
    dirty = ((clean.view(np.uint16) & 0x0FFF) | 0xA000).view(np.int16)
    header = gray(2, 3, clean, BitsStored=12, HighBit=11)
    expected, rendered = png(header, clean)
    assert np.array_equal(png(header, dirty)[0], expected)
    assert rendered.used.window == (0.0, 4096.0)  # the data range -2048..2047: c - 0.5 -/+ (w - 1)/2
    assert expected[0, 0] == 0 and expected[1, 2] == 255


def test_rtdose_32_bit_multi_frame():
    for index in (0, 7):
        header, frame = load("rtdose.dcm", index)
        image, rendered = png(header, frame, frame=index + 1)
        assert image.shape == (10, 10)
        assert rendered.used.frame == index + 1
        assert_close(image, linear_window(frame, *rendered.used.window))


def test_jpeg2000_and_rle_compressed_grayscale():
    for name in ("JPEG2000.dcm", "MR_small_RLE.dcm"):
        header, frame = load(name)
        image, rendered = png(header, frame)
        assert image.shape == (int(header.Rows), int(header.Columns))
        assert image.dtype == np.uint8 and image.std() > 5
    rle, _ = png(*load("MR_small_RLE.dcm"))
    native, _ = png(*load("MR_small.dcm"))
    assert np.array_equal(rle, native)


def test_palette_colour_gives_the_lut_colours():
    header, frame = load("examples_palette.dcm")
    image, rendered = png(header, frame)
    assert image.shape == (350, 800, 3)
    assert rendered.used.window is None
    full = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    first = int(full.RedPaletteColorLookupTableDescriptor[1])
    luts = [np.frombuffer(full[f"{c}PaletteColorLookupTableData"].value, dtype="<u2")
            for c in ("Red", "Green", "Blue")]
    for row, column in ((0, 0), (100, 400), (300, 790), (20, 200)):
        index = int(frame[row, column]) - first
        assert tuple(image[row, column]) == tuple(int(lut[index]) >> 8 for lut in luts)
    assert len({tuple(p) for p in image.reshape(-1, 3)[::97]}) > 5  # really coloured, not grey


@pytest.mark.parametrize("name", ["examples_rgb_color.dcm", "SC_rgb_rle_2frame.dcm", "examples_jpeg2k.dcm"])
def test_true_colour_passes_through(name):
    header, frame = load(name)
    image, rendered = png(header, frame, window=(10.0, 20.0))  # a window has no meaning for colour
    assert image.shape == frame.shape
    assert np.array_equal(image, frame)
    assert rendered.used.window is None


def test_ybr_multi_frame_renders_rgb_frames():
    header, first = load("examples_ybr_color.dcm", 0)
    _, later = load("examples_ybr_color.dcm", 20)
    image_1, rendered_1 = png(header, first, frame=1)
    image_21, rendered_21 = png(header, later, frame=21)
    assert image_1.shape == (240, 320, 3)
    assert np.array_equal(image_1, first) and np.array_equal(image_21, later)
    assert not np.array_equal(image_1, image_21)
    assert (rendered_1.used.frame, rendered_21.used.frame) == (1, 21)


def test_16_bit_rgb_is_scaled_to_8_bits():
    header, frame = load("SC_rgb_rle_16bit.dcm")
    image, _ = png(header, frame)
    assert image.dtype == np.uint8
    assert_close(image, frame.astype(np.float64) * 255 / 65535)


def test_enhanced_multi_frame_window_comes_from_the_functional_groups():
    values = np.array([[0, 100], [200, 300]], dtype=np.uint16)
    header = gray(2, 2, values, NumberOfFrames=2)
    shared, frame_voi, frame_two, voi_two = Dataset(), Dataset(), Dataset(), Dataset()
    frame_voi.WindowCenter, frame_voi.WindowWidth = 150, 301
    shared.FrameVOILUTSequence = [frame_voi]
    voi_two.WindowCenter, voi_two.WindowWidth = 50, 101
    frame_two.FrameVOILUTSequence = [voi_two]
    header.SharedFunctionalGroupsSequence = [shared]
    header.PerFrameFunctionalGroupsSequence = [Dataset(), frame_two]
    assert png(header, values, frame=1)[1].used.window == (150.0, 301.0)
    assert png(header, values, frame=2)[1].used.window == (50.0, 101.0)


def test_frame_must_match_the_header():
    header, frame = load("MR_small.dcm")
    from wadows.render import RenderError, RenderFailure
    with pytest.raises(RenderError) as error:
        png(header, frame[:10])
    assert error.value.code == RenderFailure.PROCESSING_FAILURE


def test_request_frame_selects_the_frame_the_operation_reads():
    with open(get_testdata_file("examples_ybr_color.dcm"), "rb") as fp:
        source = open_source(fp)
        request = RenderRequest("image/png", frame=12)
        frame = read_frame(source, frame_index(source.dataset, request.frame))
        assert np.array_equal(frame, read_frame(source, 11))
        assert render_image(source.dataset, frame, request).used.frame == 12
