"""What a transfer syntax is, and which pixel codecs this installation has for it.

Facts only (PS3.5 §10 and Annex A, plus what pydicom's pixel plugins can do here); the policy of
which conversions we allow lives in `transcode`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydicom import config
from pydicom import uid as dicom_uid
from pydicom.pixels import get_decoder, get_encoder
from pydicom.uid import UID

# Pixel data stored as plain values (no encapsulation).
NATIVE: frozenset[str] = frozenset({
    dicom_uid.ImplicitVRLittleEndian,
    dicom_uid.ExplicitVRLittleEndian,
    dicom_uid.ExplicitVRBigEndian,
    dicom_uid.DeflatedExplicitVRLittleEndian,
})

# Native syntaxes whose pixel value bytes are identical: only the element header differs
# (deflate compresses the whole data set stream, not the pixel values).
LITTLE_ENDIAN_NATIVE: frozenset[str] = NATIVE - {dicom_uid.ExplicitVRBigEndian}

# Compressed syntaxes we may produce: lossless ones only, never a new lossy generation of clinical data.
LOSSLESS_ENCODABLE: frozenset[str] = frozenset({
    dicom_uid.RLELossless,
    dicom_uid.JPEGLSLossless,
    dicom_uid.JPEG2000Lossless,
})

# Lossy syntaxes with the Lossy Image Compression Method (0028,2114) term of PS3.3 C.7.6.1.1.5.
# JPEG 2000 (4.91) and HTJ2K (4.203) may hold reversible streams, but the syntax does not promise it.
LOSSY_METHOD: dict[str, str] = {
    dicom_uid.JPEGBaseline8Bit: "ISO_10918_1",
    dicom_uid.JPEGExtended12Bit: "ISO_10918_1",
    dicom_uid.JPEGLSNearLossless: "ISO_14495_1",
    dicom_uid.JPEG2000: "ISO_15444_1",
    dicom_uid.JPEG2000MC: "ISO_15444_2",
    dicom_uid.HTJ2K: "ISO_15444_15",
    **{ts: "ISO_13818_2" for ts in (
        dicom_uid.MPEG2MPML, dicom_uid.MPEG2MPMLF, dicom_uid.MPEG2MPHL, dicom_uid.MPEG2MPHLF)},
    **{ts: "ISO_14496_10" for ts in (
        dicom_uid.MPEG4HP41, dicom_uid.MPEG4HP41F, dicom_uid.MPEG4HP41BD, dicom_uid.MPEG4HP41BDF,
        dicom_uid.MPEG4HP422D, dicom_uid.MPEG4HP422DF, dicom_uid.MPEG4HP423D, dicom_uid.MPEG4HP423DF,
        dicom_uid.MPEG4HP42STEREO, dicom_uid.MPEG4HP42STEREOF)},
    **{ts: "ISO_23008_2" for ts in (dicom_uid.HEVCMP51, dicom_uid.HEVCM10P51)},
}

_UID_SHAPE = re.compile(r"[0-9]+(\.[0-9]+)*")


def normalize(ts: str) -> UID:
    """A caller's UID string as a pydicom UID: surrounding blanks and the NUL padding some writers leave removed.
    Not validated: pydicom would log a malformed value verbatim, and callers' strings stay out of logs."""
    return UID(str(ts).strip().rstrip("\0").strip(), validation_mode=config.IGNORE)


def is_known(ts: str) -> bool:
    """Whether `ts` is a transfer syntax pydicom knows how to encode a data set in."""
    try:
        return normalize(ts).is_transfer_syntax
    except Exception:  # pydicom raises on some malformed strings; unknown either way
        return False


def is_native(ts: str) -> bool:
    return normalize(ts) in NATIVE


def is_lossy(ts: str) -> bool:
    return normalize(ts) in LOSSY_METHOD


def data_set_encoding(ts: str) -> tuple[bool, bool]:
    """(implicit VR, little endian) of the data set in a known transfer syntax."""
    uid = normalize(ts)
    return uid.is_implicit_VR, uid.is_little_endian


def describe(ts: str) -> str:
    """`Name (uid)` for messages; pydicom's name for known UIDs, never more than a UID-shaped echo otherwise."""
    uid = normalize(ts)
    if is_known(uid):
        return f"{uid.name} ({uid})"
    if _UID_SHAPE.fullmatch(uid) and len(uid) <= 64:
        return f"unknown transfer syntax ({uid})"
    return "a malformed transfer syntax UID"


@lru_cache(maxsize=None)
def decoder_available(ts: str) -> bool:
    """Whether pixel data stored in `ts` can be decoded here (native data needs only numpy)."""
    uid = normalize(ts)
    if uid in NATIVE:
        return True
    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return False


@lru_cache(maxsize=None)
def encoder_available(ts: str) -> bool:
    """Whether we may and can produce pixel data in `ts` here: native, or lossless with its plugin installed."""
    uid = normalize(ts)
    if uid in NATIVE:
        return True
    if uid not in LOSSLESS_ENCODABLE:
        return False
    return bool(get_encoder(uid).is_available)
