"""The attributes that describe one frame: enhanced multi-frame objects keep rescale, window and pixel spacing
in functional groups (PS3.3 C.7.6.16), per frame or shared, instead of at the top level."""

from __future__ import annotations

from pydicom.dataset import Dataset

from wadows.dicom.frames import frame_count
from wadows.render.request import RenderError, RenderFailure

# Functional group macros whose attributes the rendering pipeline reads.
_RENDERING_MACROS = (
    "PixelValueTransformationSequence",  # Rescale Slope/Intercept
    "FrameVOILUTSequence",  # Window Center/Width, VOI LUT Function
    "PixelMeasuresSequence",  # Pixel Spacing, Slice Thickness
    "PlanePositionSequence",
)


def frame_index(header: Dataset, frame_number: int | None) -> int:
    """The 0-based index of the requested 1-based frame. PS3.18 §8.2.7: a frame number is ignored for
    single-frame objects; without one, a multi-frame object renders its first frame."""
    count = frame_count(header)
    if count == 1 or frame_number is None:
        return 0
    if not 1 <= frame_number <= count:
        raise RenderError(RenderFailure.FRAME_OUT_OF_RANGE,
                          f"frame {frame_number} is out of range: the object has {count} frames")
    return frame_number - 1


def frame_attributes(header: Dataset, index: int) -> Dataset:
    """`header` with the shared and then this frame's functional group attributes laid over it (the frame's
    own win). The header itself when it has no functional groups; never modified."""
    groups = [seq[0] for seq in (header.get("SharedFunctionalGroupsSequence"),) if seq]
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    if not groups:
        return header
    view = Dataset(dict(header._dict))  # shares element objects; we only add or replace entries
    for group in groups:
        for keyword in _RENDERING_MACROS:
            macro = group.get(keyword)
            if macro:
                for elem in macro[0]:
                    view[elem.tag] = elem
    return view
