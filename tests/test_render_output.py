"""Output of render_image: media types and their encodings, image quality, annotation, overlays, refusals."""

from __future__ import annotations

import copy
import io

import numpy as np
import pydicom
import pytest
from PIL import Image, features
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from wadows.dicom.frames import read_frame
from wadows.dicom.part10 import open_source
from wadows.render import (
    IMAGE_MEDIA_TYPES, SUPPORTED_MEDIA_TYPES, TEXT_MEDIA_TYPES, Rendered, RenderError, RenderFailure, RenderRequest,
    can_render, media_types_for, render_image, render_text,
)
from wadows.render.annotation import BOTTOM_RIGHT, TOP_LEFT, annotation_lines

PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/jp2": "JPEG2000"}


def load(name: str, index: int = 0, keep_unused_bits: bool = False) -> tuple[Dataset, np.ndarray]:
    with open(get_testdata_file(name), "rb") as fp:
        source = open_source(fp)
        return source.dataset, read_frame(source, index, keep_unused_bits=keep_unused_bits)


def render(header: Dataset, frame: np.ndarray, media_type: str = "image/png", **fields) -> tuple[Image.Image, Rendered]:
    rendered = render_image(header, frame, RenderRequest(media_type, **fields))
    image = Image.open(io.BytesIO(rendered.data))
    image.load()
    return image, rendered


def test_supported_media_types():
    assert IMAGE_MEDIA_TYPES[0] == "image/jpeg"  # PS3.18 default for images
    assert TEXT_MEDIA_TYPES[0] == "text/html"  # and for reports
    assert {"image/jpeg", "image/png", "image/gif", "text/plain", "text/html"} <= SUPPORTED_MEDIA_TYPES
    assert ("image/jp2" in SUPPORTED_MEDIA_TYPES) == features.check("jpg_2000")
    assert can_render("IMAGE/JPEG; q=0.8")
    assert not can_render("application/pdf") and not can_render("image/tiff") and not can_render("text/xml")


def test_media_types_for_each_kind_of_object():
    ct, _ = load("CT_small.dcm")
    assert media_types_for(ct) == IMAGE_MEDIA_TYPES
    assert media_types_for(pydicom.dcmread(get_testdata_file("test-SR.dcm"))) == TEXT_MEDIA_TYPES
    assert media_types_for(pydicom.dcmread(get_testdata_file("rtplan.dcm"))) == ()


@pytest.mark.parametrize("media_type", IMAGE_MEDIA_TYPES)
@pytest.mark.parametrize("name, mode", [("MR_small.dcm", "L"), ("examples_rgb_color.dcm", "RGB"),
                                        ("examples_palette.dcm", "RGB"), ("examples_ybr_color.dcm", "RGB")])
def test_every_format_decodes_to_the_right_size_and_mode(media_type, name, mode):
    header, frame = load(name)
    image, rendered = render(header, frame, media_type, rows=100)
    assert image.format == PILLOW_FORMATS[media_type]
    assert rendered.media_type == media_type
    assert image.height == 100 and abs(image.width - 100 * int(header.Columns) / int(header.Rows)) <= 1
    expected_mode = {"image/gif": "P"}.get(media_type, mode)  # GIF stores a palette either way
    assert image.mode == expected_mode
    assert (rendered.used.rows, rendered.used.columns) == (image.height, image.width)


def test_jpeg_quality_changes_size_and_is_echoed():
    header, frame = load("examples_rgb_color.dcm")
    low_image, low = render(header, frame, "image/jpeg", quality=10)
    high_image, high = render(header, frame, "image/jpeg", quality=95)
    assert len(low.data) < len(high.data) * 0.6
    assert (low.used.quality, high.used.quality) == (10, 95)
    reference = frame.astype(int)
    assert np.abs(np.asarray(high_image).astype(int) - reference).mean() < \
        np.abs(np.asarray(low_image).astype(int) - reference).mean()
    assert render(header, frame, "image/jpeg")[1].used.quality == 90  # the default


def test_png_is_lossless_and_has_no_quality():
    header, frame = load("examples_rgb_color.dcm")
    image, rendered = render(header, frame, "image/png", quality=10)
    assert np.array_equal(np.asarray(image), frame)
    assert rendered.used.quality is None


@pytest.mark.skipif(not features.check("jpg_2000"), reason="Pillow built without OpenJPEG")
def test_jpeg_2000_quality_100_is_lossless_and_lower_is_smaller():
    header, frame = load("examples_rgb_color.dcm")
    lossless_image, lossless = render(header, frame, "image/jp2")
    assert lossless.used.quality == 100
    assert np.array_equal(np.asarray(lossless_image), frame)
    assert lossless.data[4:8] == b"jP  "  # a JP2 file, not a bare codestream
    _, lossy = render(header, frame, "image/jp2", quality=30)
    assert len(lossy.data) < len(lossless.data) / 3


def test_text_media_type_for_an_image_is_refused():
    header, frame = load("MR_small.dcm")
    with pytest.raises(RenderError) as error:
        render(header, frame, "text/plain")
    assert error.value.code == RenderFailure.NOT_RENDERABLE
    with pytest.raises(RenderError) as error:
        render(header, frame, "image/tiff")
    assert error.value.code == RenderFailure.UNSUPPORTED_MEDIA_TYPE


def test_report_as_image_and_image_as_text_are_refused():
    report = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    with pytest.raises(RenderError) as error:
        render_image(report, np.zeros((2, 2), np.uint8), RenderRequest("image/jpeg"))
    assert error.value.code == RenderFailure.NOT_RENDERABLE
    header, _ = load("MR_small.dcm")
    with pytest.raises(RenderError) as error:
        render_text(header, RenderRequest("text/html"))
    assert error.value.code == RenderFailure.NOT_RENDERABLE


@pytest.mark.parametrize("fields", [{"rows": 0}, {"columns": 100000}, {"quality": 0}, {"quality": 101},
                                    {"window": (40.0, 0.5)}, {"window": (float("nan"), 400.0)},
                                    {"annotation": frozenset({"everything"})}])
def test_invalid_request_values(fields):
    header, frame = load("MR_small.dcm")
    with pytest.raises(RenderError) as error:
        render(header, frame, "image/jpeg", **fields)
    assert error.value.code == RenderFailure.INVALID_PARAMETER


def test_request_fields_set_after_construction_are_checked_too():
    header, frame = load("MR_small.dcm")
    request = RenderRequest("")
    request.media_type, request.quality = "image/jpeg", 500
    with pytest.raises(RenderError) as error:
        render_image(header, frame, request)
    assert error.value.code == RenderFailure.INVALID_PARAMETER
    request.quality = 50
    assert render_image(header, frame, request).used.quality == 50


# --- annotation -------------------------------------------------------------------------------------------


def named(header: Dataset, name: str, patient_id: str) -> Dataset:
    header = copy.deepcopy(header)
    header.PatientName, header.PatientID = name, patient_id
    header.PatientBirthDate, header.PatientSex = "19020304", "F"
    return header


def box(image: np.ndarray, corner: str, size: int = 40) -> np.ndarray:
    return image[:size, :size] if corner == TOP_LEFT else image[-size:, -size:]


def test_annotation_lines_are_exactly_the_headers_values():
    header, _ = load("CT_small.dcm")
    header = named(header, "ZEBRA^QUUX^Q^DR^III", "ID-77")
    lines = annotation_lines(header, frozenset({"patient"}), 1, 1, None)
    assert lines == {TOP_LEFT: ["DR ZEBRA, QUUX Q III", "ID ID-77", "Born 1902-03-04", "Sex F"]}
    lines = annotation_lines(header, frozenset({"technique"}), 3, 12, (40.0, 400.0))
    assert lines[BOTTOM_RIGHT][:3] == ["CT", "Frame 3/12", "W 400 C 40"]
    assert "kV 120" in lines[BOTTOM_RIGHT]
    assert not any("ZEBRA" in line or "ID-77" in line for line in lines[BOTTOM_RIGHT])


def test_deidentified_header_gives_only_its_own_values():
    header, _ = load("CT_small.dcm")
    header = copy.deepcopy(header)
    for keyword in ("PatientName", "PatientBirthDate", "PatientSex"):
        if keyword in header:
            delattr(header, keyword)
    header.PatientID = "ANON-1"
    assert annotation_lines(header, frozenset({"patient"}), 1, 1, None) == {TOP_LEFT: ["ID ANON-1"]}


def test_annotation_draws_in_its_corner_and_depends_on_the_header():
    header, frame = load("examples_overlay.dcm")  # 484 x 300: the two corners are far apart
    patient = frozenset({"patient"})
    plain = np.asarray(render(header, frame)[0]).astype(int)
    zebra = np.asarray(render(named(header, "ZEBRA^QUUX", "1"), frame, annotation=patient)[0]).astype(int)
    other = np.asarray(render(named(header, "WU^LI", "2"), frame, annotation=patient)[0]).astype(int)
    assert np.any(box(zebra, TOP_LEFT) != box(plain, TOP_LEFT))
    assert np.array_equal(box(zebra, BOTTOM_RIGHT), box(plain, BOTTOM_RIGHT))
    assert np.any(box(zebra, TOP_LEFT, 80) != box(other, TOP_LEFT, 80))  # the name itself is drawn
    technique = np.asarray(render(header, frame, annotation=frozenset({"technique"}))[0]).astype(int)
    assert np.any(box(technique, BOTTOM_RIGHT) != box(plain, BOTTOM_RIGHT))
    assert np.array_equal(box(technique, TOP_LEFT), box(plain, TOP_LEFT))


def test_annotation_without_patient_values_draws_nothing():
    header, frame = load("MR_small.dcm")
    header = copy.deepcopy(header)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        if keyword in header:
            delattr(header, keyword)
    plain = np.asarray(render(header, frame)[0])
    annotated, rendered = render(header, frame, annotation=frozenset({"patient"}))
    assert np.array_equal(np.asarray(annotated), plain)
    assert rendered.used.annotation == frozenset({"patient"})


@pytest.mark.parametrize("background", [0, 255])
def test_annotation_is_legible_on_dark_and_light_images(background):
    header = Dataset()
    header.Rows, header.Columns = 200, 300
    header.SamplesPerPixel, header.PhotometricInterpretation = 1, "MONOCHROME2"
    header.BitsAllocated, header.BitsStored, header.HighBit, header.PixelRepresentation = 8, 8, 7, 0
    header.WindowCenter, header.WindowWidth = 128, 256
    header.PatientName = "LEGIBLE^TEXT"
    frame = np.full((200, 300), background, dtype=np.uint8)
    image = np.asarray(render(header, frame, annotation=frozenset({"patient"}))[0])
    corner = box(image, TOP_LEFT, 30)
    assert (corner < 40).sum() > 50 and (corner > 215).sum() > 20  # light text on a dark box, either way


# --- overlays ---------------------------------------------------------------------------------------------


def test_overlay_burned_in_only_when_asked():
    header, frame = load("examples_overlay.dcm")
    full = pydicom.dcmread(get_testdata_file("examples_overlay.dcm"))
    plane = full.overlay_array(0x6000).astype(bool)
    assert plane.sum() > 100
    with_overlay = np.asarray(render(header, frame, draw_overlays=True)[0])
    without = np.asarray(render(header, frame, draw_overlays=False)[0])
    assert np.all(with_overlay[plane] == 255)
    assert np.array_equal(with_overlay[~plane], without[~plane])
    assert (without[plane] < 255).mean() > 0.5


def test_overlay_follows_region_and_size():
    header, frame = load("examples_overlay.dcm")
    plane = pydicom.dcmread(get_testdata_file("examples_overlay.dcm")).overlay_array(0x6000).astype(bool)
    rows, columns = np.nonzero(plane)
    region = (columns.min() / 484, rows.min() / 300, (columns.max() + 1) / 484, (rows.max() + 1) / 300)
    image = np.asarray(render(header, frame, region=region, draw_overlays=True)[0])
    assert image.shape == (rows.max() - rows.min() + 1, columns.max() - columns.min() + 1)
    assert np.all(image[plane[rows.min():rows.max() + 1, columns.min():columns.max() + 1]] == 255)


def test_embedded_overlay_bits(tmp_path):
    """The retired embedded form: bit 12 of 16-bit pixels with 12 bits stored."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
    values = ds.pixel_array.astype(np.uint16) & 0x0FFF
    values[10:20, 30:40] |= 1 << 12
    ds.PixelData = values.tobytes()
    ds.add_new((0x6000, 0x0010), "US", 64)
    ds.add_new((0x6000, 0x0011), "US", 64)
    ds.add_new((0x6000, 0x0040), "CS", "G")
    ds.add_new((0x6000, 0x0050), "SS", [1, 1])
    ds.add_new((0x6000, 0x0100), "US", 16)
    ds.add_new((0x6000, 0x0102), "US", 12)
    path = tmp_path / "embedded.dcm"
    ds.save_as(path)
    with open(path, "rb") as fp:
        source = open_source(fp)
        raw = read_frame(source, 0, keep_unused_bits=True)
        header = source.dataset
    with_overlay = np.asarray(render(header, raw, draw_overlays=True, window=(2000.0, 4000.0))[0])
    without = np.asarray(render(header, raw, draw_overlays=False, window=(2000.0, 4000.0))[0])
    assert np.all(with_overlay[10:20, 30:40] == 255)
    assert np.any(without[10:20, 30:40] != 255)
    assert np.array_equal(with_overlay[30:, :], without[30:, :])
