"""The de-identifier: plan from an original header, then apply the profile in one walk.

``plan()`` is cheap and needs no pixel data: it decides the new SOP Instance UID, whether the object
may leave at all (:class:`Refusal`), whether its pixels must be edited and by how many days its dates
move. ``apply()`` builds a new Dataset (file meta included, see :mod:`wadows.deid.walker`) and never
modifies its input, then writes the markers (:mod:`wadows.deid.markers`).

"Already de-identified" objects ((0012,0062) YES + a method) keep their SOP Instance UID, as PS3.18
asks, and all their other UIDs too: they were replaced by an earlier de-identification, and remapping
only some of them would break the references between the objects of an already de-identified set.
The rest of the profile still runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pydicom.dataset import Dataset

from wadows.deid.actions import compile_table
from wadows.deid.dates import shift_days
from wadows.deid.elements import int_value, text_value
from wadows.deid.markers import add_markers, is_already_deidentified
from wadows.deid.pixels import (ImageGeometry, PixelEdit, PixelEditError, PixelRuleSet, embedded_overlay_bits,
                                make_pixel_edit)
from wadows.deid.private import PrivatePolicy, read_declarations
from wadows.deid.profile import Profile
from wadows.deid.table import load_table
from wadows.deid.uids import UidMapper, is_uid_text, is_valid_uid
from wadows.deid.walker import Walker, WalkState
from wadows.dicom.codec_panics import panics_raised_as_errors
from wadows.dicom.read_tags import tags_read

SOP_CLASS_UID, SOP_INSTANCE_UID = 0x00080016, 0x00080018
STUDY_INSTANCE_UID = 0x0020000D
PATIENT_ID = 0x00100020
MODALITY = 0x00080060
ROWS, COLUMNS, SAMPLES_PER_PIXEL = 0x00280010, 0x00280011, 0x00280002
BITS_ALLOCATED, BITS_STORED, PIXEL_REPRESENTATION = 0x00280100, 0x00280101, 0x00280103
BURNED_IN_ANNOTATION, RECOGNIZABLE_VISUAL_FEATURES = 0x00280301, 0x00280302


class Refusal(Exception):
    """The object cannot be de-identified (urn:dicom:wado:0001). ``reason`` names why, never a value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Plan:
    new_sop_instance_uid: str
    """The SOP Instance UID the output carries (the original one when already de-identified)."""
    already_deidentified: bool
    pixel_edit: PixelEdit | None
    """None: the pixel data may be streamed untouched. Otherwise whoever writes the object must apply
    it: apply() writes the markers on that understanding."""
    pixels_cleaned: bool = False
    """A pixel rule's regions will be blanked: 113101 and (0028,0301) NO are written."""
    pixel_rule: str | None = None
    """Name of the pixel rule that matched."""
    date_shift_days: int | None = None
    """Modified Dates: the (negative) whole-day shift of this patient."""
    keep_uids: bool = False
    """Retain UIDs, or already de-identified: no UID is remapped."""


class Deidentifier:
    """PS3.15 Annex E for one profile and one key; safe to share between threads."""

    def __init__(self, profile: Profile, key: bytes, pixel_rules: PixelRuleSet | None = None) -> None:
        self.profile = profile
        self.pixel_rules = pixel_rules if pixel_rules is not None else PixelRuleSet.builtin()
        self._uids = UidMapper(key)
        compiled = compile_table(load_table(), profile)
        self.edition = compiled.edition
        self._walker = Walker(profile, compiled, self._uids)

    def map_uid(self, uid: str) -> str:
        """The UID this de-identifier writes for ``uid`` (identity for well-known UIDs and under
        Retain UIDs)."""
        return uid if self.profile.retain_uids else self._uids.map(uid)

    def plan(self, header: Dataset) -> Plan:
        """Decide from the original header (pixel data not needed). Raises :class:`Refusal`."""
        sop_class_uid = text_value(header, SOP_CLASS_UID)
        if sop_class_uid and not is_valid_uid(sop_class_uid):
            # The walk would drop it (text could follow the digits), and without it there is no Part 10 file.
            raise Refusal("the SOP Class UID is not a valid UID")
        already = is_already_deidentified(header)
        keep_uids = self.profile.retain_uids or already
        new_sop_instance_uid = self._new_sop_instance_uid(header, keep_uids)
        pixel_edit, rule = self._plan_pixels(header)
        return Plan(
            new_sop_instance_uid=new_sop_instance_uid,
            already_deidentified=already,
            pixel_edit=pixel_edit,
            pixels_cleaned=rule is not None,
            pixel_rule=rule,
            date_shift_days=self._date_shift(header) if self.profile.retain_long_modified_dates else None,
            keep_uids=keep_uids,
        )

    def plan_with_inputs(self, header: Dataset) -> tuple[Plan, frozenset[int] | None]:
        """plan(header), and the top-level elements it was decided from (None: the header as a whole). A header
        that holds the same elements there, its SOP Instance UID aside, gets the plan of plan_like()."""
        return tags_read(self.plan, header)

    def plan_like(self, earlier: Plan, header: Dataset) -> Plan:
        """plan(header), for a header that agrees with the one `earlier` was made from in every element that
        plan_with_inputs() named for it, but its SOP Instance UID: only what follows from that one is decided
        again."""
        return replace(earlier, new_sop_instance_uid=self._new_sop_instance_uid(header, earlier.keep_uids))

    def _new_sop_instance_uid(self, header: Dataset, keep_uids: bool) -> str:
        sop_instance_uid = text_value(header, SOP_INSTANCE_UID)
        if not sop_instance_uid:
            raise Refusal("the object has no SOP Instance UID")
        if not keep_uids:
            return self._uids.map(sop_instance_uid)
        if not is_uid_text(sop_instance_uid):
            raise Refusal("the SOP Instance UID to keep is not a UID")
        return sop_instance_uid

    def apply(self, header: Dataset, plan: Plan) -> Dataset:
        """A new de-identified Dataset with file meta. Pixel data, when present, is passed through."""
        policy = PrivatePolicy(read_declarations(header)) if self._walker.retain_private else None
        state = WalkState(plan.keep_uids, plan.date_shift_days, policy, lambda: self._pseudonym(header))
        out = self._walker.dataset(header, state)
        out.file_meta = self._walker.file_meta(header, out, plan.new_sop_instance_uid, state)
        add_markers(out, header, self.profile, self.edition, plan.already_deidentified, plan.pixels_cleaned)
        return out

    def _plan_pixels(self, header: Dataset) -> tuple[PixelEdit | None, str | None]:
        rows, columns = int_value(header, ROWS), int_value(header, COLUMNS)
        if not rows or not columns:
            return None, None  # not an image: nothing can be burned in
        profile = self.profile
        visual = text_value(header, RECOGNIZABLE_VISUAL_FEATURES).upper()
        if visual == "YES":
            raise Refusal("recognizable visual features (de-facing is not supported)")
        if profile.clean_recognizable_visual_features and visual != "NO":
            raise Refusal("recognizable visual features are not ruled out")
        burned = text_value(header, BURNED_IN_ANNOTATION).upper()
        suspect = burned == "YES" or (not burned and text_value(header, MODALITY).upper()
                                      in profile.burned_in_suspect_modalities)
        rule = self.pixel_rules.first_match(header) if profile.clean_pixel_data else None
        if suspect and rule is None:
            why = "burned-in annotation" if burned == "YES" else "burned-in annotation suspected for this modality"
            raise Refusal(f"{why} and no pixel-cleaning rule matches" if profile.clean_pixel_data
                          else f"{why} and Clean Pixel Data is switched off")
        bits_allocated = int_value(header, BITS_ALLOCATED) or 8
        bits_stored = int_value(header, BITS_STORED) or bits_allocated
        overlay_bits = embedded_overlay_bits(header, bits_stored)
        if rule is None and not overlay_bits:
            return None, None
        geometry = ImageGeometry(rows, columns, int_value(header, SAMPLES_PER_PIXEL) or 1,
                                 bits_stored, int_value(header, PIXEL_REPRESENTATION) == 1)
        edit = make_pixel_edit(geometry, rule.regions if rule else (), bool(overlay_bits))
        return edit, (rule.name if rule else None)

    def _date_shift(self, header: Dataset) -> int:
        # Per patient; an object without Patient ID is shifted per study instead.
        patient_id = text_value(header, PATIENT_ID)
        digest = (self._uids.keyed_digest(b"date-shift/patient", patient_id) if patient_id else
                  self._uids.keyed_digest(b"date-shift/study", text_value(header, STUDY_INSTANCE_UID)))
        return shift_days(digest, self.profile.date_shift_min_days, self.profile.date_shift_max_days)

    def _pseudonym(self, header: Dataset) -> str:
        patient_id = text_value(header, PATIENT_ID)
        return "ANON-" + self._uids.keyed_digest(b"patient-id", patient_id)[:10].hex().upper()


def apply_pixel_edit(dataset: Dataset, plan: Plan) -> None:
    """Run ``plan.pixel_edit`` on a full de-identified dataset in memory (offline use and tests): the
    pixel data is decoded, edited and stored uncompressed (Explicit VR Little Endian)."""
    if plan.pixel_edit is None:
        return
    with panics_raised_as_errors():  # a Rust codec's panic, as an Exception (wadows.dicom.codec_panics)
        array = np.array(dataset.pixel_array)  # a writable copy
    edited = plan.pixel_edit(array, dataset)
    photometric = str(dataset.PhotometricInterpretation)
    if photometric.startswith("YBR") and edited.ndim >= 3 and dataset.get("SamplesPerPixel", 1) == 3:
        photometric = "RGB"  # pydicom decodes YCbCr to RGB
    dataset.set_pixel_data(edited, photometric, int(dataset.BitsStored), generate_instance_uid=False)


__all__ = ["Deidentifier", "Plan", "Refusal", "PixelEditError", "apply_pixel_edit"]
