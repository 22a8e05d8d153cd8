"""What a Grayscale Softcopy Presentation State (PS3.3 A.33.1) asks for one image frame, as a plan.

Applied: Modality LUT, Softcopy VOI LUT (window or LUT), Presentation LUT (shape or sequence), Displayed Area
(area, presentation size mode, pixel spacing or aspect ratio), Spatial Transformation (rotation, flip).
Not applied, and reported in `ignored`: graphic annotations and text, shutters, overlays carried in or
activated by the presentation state, mask subtraction, ICC profiles and palettes of colour presentation states,
and TRUE SIZE (no physical display here: scaled to fit instead).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue


# Presentation state content we do not render: keyword -> what to report.
_NOT_APPLIED = {
    "GraphicAnnotationSequence": "graphic annotations",
    "ShutterShape": "display shutter",
    "ShutterOverlayGroup": "bitmap display shutter",
    "MaskSubtractionSequence": "mask subtraction",
    "ICCProfile": "ICC profile",
    "RedPaletteColorLookupTableDescriptor": "pseudo-colour palette",
    "BlendingSequence": "blending",
}


@dataclass(frozen=True)
class DisplayedArea:
    top_left: tuple[int, int]  # column, row; 1-based, in the image before rotation and flip
    bottom_right: tuple[int, int]
    magnification: float | None  # MAGNIFY mode; None means scale to fit
    x_stretch: float  # displayed width of a pixel over its height (non-square pixels), before rotation


@dataclass(frozen=True)
class PresentationPlan:
    modality: Dataset | None = None  # the presentation state, when it carries a Modality LUT module
    voi: Dataset | None = None  # the Softcopy VOI LUT item for this image and frame (a window or a VOI LUT)
    presentation_lut: Dataset | None = None  # the presentation state, when it carries a Presentation LUT
    area: DisplayedArea | None = None
    rotation: int = 0  # clockwise degrees: 0, 90, 180, 270; applied before the flip (PS3.3 C.10.6)
    flip: bool = False
    ignored: tuple[str, ...] = ()


def plan(presentation: Dataset, image: Dataset, frame_number: int) -> PresentationPlan:
    """The parts of `presentation` that apply to frame `frame_number` (1-based) of `image`."""
    sop_instance = str(image.get("SOPInstanceUID", ""))
    ignored = [text for keyword, text in _NOT_APPLIED.items() if keyword in presentation]
    if any(tag.group >> 8 == 0x60 for tag in presentation.keys()):
        ignored.append("overlays of the presentation state")
    voi = _applicable(presentation.get("SoftcopyVOILUTSequence"), sop_instance, frame_number)
    if voi is not None and "WindowWidth" not in voi and "VOILUTSequence" not in voi:
        voi = None
    area = _area(_applicable(presentation.get("DisplayedAreaSelectionSequence"), sop_instance, frame_number), ignored)
    has_modality = "ModalityLUTSequence" in presentation or "RescaleSlope" in presentation
    has_plut = "PresentationLUTShape" in presentation or "PresentationLUTSequence" in presentation
    return PresentationPlan(
        modality=presentation if has_modality else None,
        voi=voi,
        presentation_lut=presentation if has_plut else None,
        area=area,
        rotation=_rotation(presentation.get("ImageRotation")),
        flip=str(presentation.get("ImageHorizontalFlip", "N")).strip().upper() == "Y",
        ignored=tuple(ignored),
    )


def _applicable(sequence: object, sop_instance: str, frame_number: int) -> Dataset | None:
    """The first item that applies to this image and frame: no Referenced Image Sequence means every image."""
    for item in sequence or ():  # type: ignore[attr-defined]
        references = item.get("ReferencedImageSequence")
        if not references:
            return item
        for ref in references:
            if str(ref.get("ReferencedSOPInstanceUID", "")) != sop_instance:
                continue
            frames = ref.get("ReferencedFrameNumber")
            if frames in (None, ""):
                return item
            listed = frames if isinstance(frames, MultiValue) else [frames]
            if frame_number in {int(f) for f in listed}:
                return item
    return None


def _area(item: Dataset | None, ignored: list[str]) -> DisplayedArea | None:
    if item is None:
        return None
    try:
        left, top = (int(v) for v in item.DisplayedAreaTopLeftHandCorner)
        right, bottom = (int(v) for v in item.DisplayedAreaBottomRightHandCorner)
    except (AttributeError, TypeError, ValueError):
        ignored.append("displayed area without valid corners")
        return None
    mode = str(item.get("PresentationSizeMode", "SCALE TO FIT")).strip().upper()
    magnification = None
    if mode == "MAGNIFY":
        ratio = item.get("PresentationPixelMagnificationRatio")
        magnification = float(ratio) if ratio not in (None, "") and float(ratio) > 0 else 1.0
    elif mode == "TRUE SIZE":
        ignored.append("presentation size mode TRUE SIZE (scaled to fit)")
    return DisplayedArea((left, top), (right, bottom), magnification, _x_stretch(item))


def _x_stretch(item: Dataset) -> float:
    spacing = item.get("PresentationPixelSpacing")  # row spacing \ column spacing
    if spacing and len(spacing) == 2 and float(spacing[0]) > 0 and float(spacing[1]) > 0:
        return float(spacing[1]) / float(spacing[0])
    aspect = item.get("PresentationPixelAspectRatio")  # vertical \ horizontal
    if aspect and len(aspect) == 2 and int(aspect[0]) > 0 and int(aspect[1]) > 0:
        return int(aspect[1]) / int(aspect[0])
    return 1.0


def _rotation(value: object) -> int:
    try:
        degrees = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    return degrees if degrees in (0, 90, 180, 270) else 0
