"""Which transfer syntax a returned object goes out in, decided from UIDs alone (IHE RAD-69 rule).

We return the stored syntax when the caller accepts it, else convert to the first acceptable syntax we can
produce. We never compress lossily on the fly (clinical data); decompressing a lossy source is fine.
`can_encode` is what `part10.encode` does, minus what only the pixels can tell (e.g. 32-bit data has no
RLE profile): encode() raises TranscodeError for those before it yields a byte.
"""

from __future__ import annotations

from collections.abc import Sequence

from wadows.dicom import syntaxes


class TranscodeError(Exception):
    """The object cannot be written in the requested transfer syntax (the DICOM reason, no patient data)."""


def pixel_bytes_carry_over(source_ts: str, target_ts: str) -> bool:
    """Whether the stored pixel value bytes are valid as they are in `target_ts` (only the element header changes)."""
    source, target = syntaxes.normalize(source_ts), syntaxes.normalize(target_ts)
    return source == target or (
        source in syntaxes.LITTLE_ENDIAN_NATIVE and target in syntaxes.LITTLE_ENDIAN_NATIVE
    )


def refusal_reason(source_ts: str, target_ts: str, pixel_edit: bool = False) -> str | None:
    """Why an object stored in `source_ts` cannot go out in `target_ts`; None when it can."""
    source, target = syntaxes.normalize(source_ts), syntaxes.normalize(target_ts)
    if not syntaxes.is_known(target):
        return "not a transfer syntax we can write"
    if not syntaxes.is_known(source):
        return "the stored transfer syntax is unknown"
    if not pixel_edit and pixel_bytes_carry_over(source, target):
        return None
    prefix = "cleaned pixels must be re-encoded; " if pixel_edit and source == target else ""
    if not syntaxes.encoder_available(target):
        if syntaxes.is_lossy(target):
            return f"{prefix}lossy, and we never compress lossily on the fly"
        if target in syntaxes.LOSSLESS_ENCODABLE:
            return f"{prefix}its encoder plugin is not installed"
        return f"{prefix}no encoder for {target.name}"
    if not syntaxes.decoder_available(source):
        return f"no decoder here for the stored {source.name}"
    return None


def can_encode(source_ts: str, target_ts: str, pixel_edit: bool = False) -> bool:
    """Whether encode() can write an object stored in `source_ts` as `target_ts` (with or without a pixel edit)."""
    return refusal_reason(source_ts, target_ts, pixel_edit) is None


def choose_transfer_syntax(stored_ts: str, accepted: Sequence[str], pixel_edit: bool = False) -> str | None:
    """The stored syntax if accepted (and re-encodable when pixels are edited), else the first acceptable
    syntax in the caller's order that we can produce; None when none."""
    stored = syntaxes.normalize(stored_ts)
    wanted = [syntaxes.normalize(ts) for ts in accepted]
    if stored in wanted and can_encode(stored, stored, pixel_edit):
        return str(stored)
    for target in wanted:
        if can_encode(stored, target, pixel_edit):
            return str(target)
    return None


def explain_refusal(stored_ts: str, accepted: Sequence[str], pixel_edit: bool = False) -> str:
    """One line for an XDSRepositoryError: the stored syntax and why each accepted one is impossible."""
    parts = [f"stored as {syntaxes.describe(stored_ts)}"]
    if not accepted:
        parts.append("no transfer syntax was requested")
    seen: set[str] = set()
    for ts in accepted:
        target = syntaxes.normalize(ts)
        if target in seen:
            continue
        seen.add(target)
        reason = refusal_reason(stored_ts, target, pixel_edit) or "possible"
        parts.append(f"{syntaxes.describe(target)}: {reason}")
    return "; ".join(parts)
