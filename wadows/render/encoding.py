"""The rendered image as bytes in the requested format, with Pillow."""

from __future__ import annotations

import io

from PIL import Image

from wadows.render.media import GIF, JP2, JPEG, PILLOW_FORMAT, PNG

DEFAULT_JPEG_QUALITY = 90  # visually lossless for 8-bit display images at a fraction of PNG's size


def encoded(image: Image.Image, media_type: str, quality: int | None) -> tuple[bytes, int | None]:
    """(bytes, quality used); the quality is None for the lossless formats (PNG, GIF)."""
    out = io.BytesIO()
    used: int | None = None
    if media_type == JPEG:
        used = quality or DEFAULT_JPEG_QUALITY
        image.save(out, "JPEG", quality=used, optimize=False)
    elif media_type == JP2:
        used = quality or 100
        image.save(out, "JPEG2000", **_jpeg2000_options(used))
    elif media_type == PNG:
        image.save(out, "PNG", compress_level=6)
    elif media_type == GIF:
        image.save(out, "GIF")  # Pillow builds an adaptive palette for RGB input
    else:
        raise AssertionError(f"no encoder for {media_type}; media.checked() admits only {sorted(PILLOW_FORMAT)}")
    return out.getvalue(), used


def _jpeg2000_options(quality: int) -> dict[str, object]:
    """Quality 100 is the reversible (lossless) transform; below that, a compression ratio that grows as quality
    falls: 90 -> 5.5:1, 50 -> 25.5:1, 1 -> 50:1 (JPEG 2000 has no 1..100 scale of its own)."""
    if quality >= 100:
        return {"irreversible": False}
    return {"irreversible": True, "quality_mode": "rates", "quality_layers": [(101 - quality) / 2]}
