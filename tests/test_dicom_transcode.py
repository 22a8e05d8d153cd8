"""wadows.dicom.transcode: the transfer syntax decision (RAD-69 rule) and its agreement with what
part10.encode really does on real files."""

from __future__ import annotations

import warnings

import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    MPEG2MPML,
    RLELossless,
)

from wadows.dicom.part10 import encode, open_source
from wadows.dicom.transcode import TranscodeError, can_encode, choose_transfer_syntax, explain_refusal

NATIVE = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
LOSSLESS_OUT = [RLELossless, JPEGLSLossless, JPEG2000Lossless]
NEVER_OUT = [JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1, JPEGLSNearLossless, JPEG2000]


# ---------------------------------------------------------------- can_encode


@pytest.mark.parametrize("ts", NATIVE + LOSSLESS_OUT + NEVER_OUT + [MPEG2MPML])
def test_the_stored_syntax_without_edit_is_always_possible(ts):
    assert can_encode(ts, ts)


@pytest.mark.parametrize("source", NATIVE + [RLELossless, JPEGBaseline8Bit, JPEG2000, JPEGLSNearLossless])
def test_every_decodable_source_goes_to_every_native_and_lossless_syntax(source):
    for target in NATIVE + LOSSLESS_OUT:
        assert can_encode(source, target)
        assert can_encode(source, target, pixel_edit=True)


@pytest.mark.parametrize("target", NEVER_OUT)
def test_lossy_and_unencodable_targets_are_refused(target):
    assert not can_encode(ExplicitVRLittleEndian, target)
    assert not can_encode(RLELossless, target, pixel_edit=True)


def test_an_edit_forces_re_encoding_even_in_the_stored_syntax():
    assert not can_encode(JPEGBaseline8Bit, JPEGBaseline8Bit, pixel_edit=True)
    assert not can_encode(JPEG2000, JPEG2000, pixel_edit=True)  # lossy J2K: never a new lossy generation
    assert can_encode(JPEG2000Lossless, JPEG2000Lossless, pixel_edit=True)
    assert can_encode(ExplicitVRBigEndian, ExplicitVRBigEndian, pixel_edit=True)


def test_sources_without_a_decoder_only_go_out_as_stored():
    assert not can_encode(MPEG2MPML, ExplicitVRLittleEndian)
    assert can_encode(HTJ2KLossless, ExplicitVRLittleEndian)  # pylibjpeg-openjpeg decodes HTJ2K


def test_unknown_uids_are_refused():
    assert not can_encode(ExplicitVRLittleEndian, "1.2.3.4")
    assert not can_encode("1.2.3.4", ExplicitVRLittleEndian)
    assert not can_encode("1.2.3.4", "1.2.3.4")  # we could not even write its header
    assert not can_encode(ExplicitVRLittleEndian, "not a uid")


def test_padded_uids_are_understood():
    assert can_encode(" 1.2.840.10008.1.2.4.50\0", "1.2.840.10008.1.2.1 ")


# ---------------------------------------------------------------- choose_transfer_syntax


def test_the_stored_syntax_wins_when_accepted():
    assert choose_transfer_syntax(JPEGBaseline8Bit, [ExplicitVRLittleEndian, JPEGBaseline8Bit]) == JPEGBaseline8Bit


def test_otherwise_the_first_possible_in_the_callers_order():
    accepted = [JPEG2000, JPEGLSNearLossless, RLELossless, ExplicitVRLittleEndian]
    assert choose_transfer_syntax(JPEGBaseline8Bit, accepted) == RLELossless


def test_an_edit_skips_a_stored_syntax_we_cannot_re_encode():
    accepted = [JPEGBaseline8Bit, ExplicitVRLittleEndian]
    assert choose_transfer_syntax(JPEGBaseline8Bit, accepted) == JPEGBaseline8Bit
    assert choose_transfer_syntax(JPEGBaseline8Bit, accepted, pixel_edit=True) == ExplicitVRLittleEndian


def test_none_when_nothing_is_possible():
    assert choose_transfer_syntax(ExplicitVRLittleEndian, [JPEGBaseline8Bit, JPEG2000]) is None
    assert choose_transfer_syntax(ExplicitVRLittleEndian, []) is None
    assert choose_transfer_syntax(JPEGBaseline8Bit, [JPEGBaseline8Bit], pixel_edit=True) is None


# ---------------------------------------------------------------- explain_refusal


def test_the_explanation_names_the_stored_syntax_and_each_reason():
    text = explain_refusal(JPEGBaseline8Bit, [JPEG2000, JPEGLSNearLossless, "1.2.3.4", JPEG2000])
    assert text.startswith("stored as JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)")
    assert "JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91): lossy" in text
    assert "JPEG-LS Lossy (Near-Lossless) Image Compression (1.2.840.10008.1.2.4.81): lossy" in text
    assert "unknown transfer syntax (1.2.3.4)" in text
    assert text.count("1.2.840.10008.1.2.4.91") == 1  # repeated UIDs once
    assert "\n" not in text


def test_the_explanation_for_a_missing_encoder_and_an_edit():
    text = explain_refusal(ExplicitVRLittleEndian, [JPEGLosslessSV1])
    assert "no encoder for JPEG Lossless" in text
    text = explain_refusal(JPEGBaseline8Bit, [JPEGBaseline8Bit], pixel_edit=True)
    assert "cleaned pixels must be re-encoded" in text
    assert explain_refusal(ExplicitVRLittleEndian, []).endswith("no transfer syntax was requested")


def test_the_explanation_does_not_echo_what_is_not_a_uid(caplog, recwarn):
    caplog.set_level("DEBUG")
    text = explain_refusal(ExplicitVRLittleEndian, ["DOE^JOHN 1970-01-01"])
    assert choose_transfer_syntax(ExplicitVRLittleEndian, ["DOE^JOHN 1970-01-01"]) is None
    assert "DOE" not in text and "malformed" in text
    assert "DOE" not in caplog.text  # nor in pydicom's UID validation warnings
    assert not [w for w in recwarn if "DOE" in str(w.message)]


# ---------------------------------------------------------------- agreement with encode()


FILES = {"CT_small.dcm": ExplicitVRLittleEndian, "MR_small_RLE.dcm": RLELossless,
         "SC_rgb_jpeg_dcmtk.dcm": JPEGBaseline8Bit, "JPEG2000.dcm": JPEG2000,
         "MR_small_bigendian.dcm": ExplicitVRBigEndian}


@pytest.mark.parametrize("name", sorted(FILES))
def test_can_encode_agrees_with_encode(name):
    targets = NATIVE + LOSSLESS_OUT + NEVER_OUT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(get_testdata_file(name), "rb") as fp:
            source = open_source(fp)
            assert source.transfer_syntax == FILES[name]
            for edit in (None, lambda array, header: array):
                for target in targets:
                    expected = can_encode(source.transfer_syntax, target, pixel_edit=edit is not None)
                    try:
                        for _ in encode(source.dataset, source, target, pixel_edit=edit):
                            pass
                        worked = True
                    except TranscodeError:
                        worked = False
                    assert worked == expected, (target.name, edit is not None)
