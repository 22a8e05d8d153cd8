"""Annotation (PS3.18 §8.2.1): patient and technique text burned into the rendered image's corners.

This is the one place where patient data is written on purpose. The lines come only from the header the
caller passes: when anonymizing, that is the de-identified header, so only de-identified values appear.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from wadows.render import values

TOP_LEFT, BOTTOM_RIGHT = "top-left", "bottom-right"


def annotation_lines(header: Dataset, kinds: frozenset[str], frame_number: int, frames: int,
                     window: tuple[float, float] | None) -> dict[str, list[str]]:
    """The text for each corner: patient top left, technique bottom right; only values the header has."""
    corners: dict[str, list[str]] = {}
    if "patient" in kinds:
        lines = [
            values.person_name(header.get("PatientName")),
            _labelled("ID", header.get("PatientID")),
            _labelled("Born", values.date(header.get("PatientBirthDate"))),
            _labelled("Sex", header.get("PatientSex")),
        ]
        corners[TOP_LEFT] = [line for line in lines if line]
    if "technique" in kinds:
        lines = [
            values.plain(header.get("Modality")),
            f"Frame {frame_number}/{frames}" if frames > 1 else "",
            f"W {values.number(window[1])} C {values.number(window[0])}" if window else "",
            _labelled("kV", values.number(header.get("KVP"))),
            _labelled("Thk", values.number(header.get("SliceThickness"), "mm")),
            _labelled("Loc", values.number(header.get("SliceLocation"), "mm")),
        ]
        corners[BOTTOM_RIGHT] = [line for line in lines if line]
    return {corner: lines for corner, lines in corners.items() if lines}


def draw_annotation(image: Image.Image, corners: dict[str, list[str]]) -> Image.Image:
    """White text on a black box: legible on dark and light images alike."""
    if not corners:
        return image
    image = image.copy()
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(9, min(48, round(min(image.size) / 28))))
    white, black = (255, 255, 255) if image.mode == "RGB" else 255, (0, 0, 0) if image.mode == "RGB" else 0
    margin = 2
    for corner, lines in corners.items():
        text = "\n".join(lines)
        left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
        width, height = right - left, bottom - top
        if corner == TOP_LEFT:
            x, y = margin, margin
        else:
            x, y = image.width - width - 2 * margin, image.height - height - 2 * margin
        draw.rectangle((x - margin, y - margin, x + width + margin, y + height + margin), fill=black)
        align = "left" if corner == TOP_LEFT else "right"
        draw.multiline_text((x - left, y - top), text, font=font, fill=white, align=align)
    return image


def _labelled(label: str, value: object) -> str:
    text = values.plain(value)
    return f"{label} {text}" if text else ""
