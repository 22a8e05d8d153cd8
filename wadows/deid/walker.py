"""The one walk through a dataset that applies the compiled table and the safety net.

Per element, through every item of every sequence at any depth (file meta included):

* odd groups (private): removed, or judged by :mod:`wadows.deid.private` under Retain Safe Private;
* groups 50xx (curves) and 60xx (overlays): removed whole; group lengths (gggg,0000): dropped;
* Table E.1-1 rows: the action compiled for the profile (:mod:`wadows.deid.actions`);
* anything else: the safety net (:mod:`wadows.deid.safe_attributes`): names, free text, dates, times,
  ages, AE titles and URIs go unless allow-listed (judged by the stricter of the encoded and the
  dictionary VR); UIDs are remapped unless they name a class, syntax or coding scheme; other VRs stay.

What each action does to a value:

* D: a dummy of the VR (:mod:`wadows.deid.dummies`); a UI value is remapped instead; Patient ID gets a
  keyed pseudonym (``ANON-`` + 20 hex digits) so a patient's objects stay together without the ID.
  A sequence under D keeps its items, and inside them every value the safety net would touch is
  dummied instead of removed (the tree stays valid: an SR keeps its content items and public codes).
* Z: the attribute with an empty value (an empty sequence).
* C: text kept when the descriptor cleaner accepts it (:mod:`wadows.deid.descriptors`), dates shifted
  (Modified Dates), times kept (the shift is whole days); otherwise the row's Basic Profile action. A
  sequence under C keeps its items and cleans every free-text value in them. Names are never "clean".
* U: the keyed UID (:mod:`wadows.deid.uids`), for every value of a multi-valued UI.
* K: unchanged; a sequence under K is kept and its items cleaned.

An original value stays only when it is well formed for its VR (:mod:`wadows.deid.well_formed`: malformed bytes
can carry anything), and an element whose VR is not a DICOM VR never does.

Elements that stay as they were are copied in their encoded form, never decoded; new datasets are
built from plain dicts (``Dataset(dict)``), which is much cheaper than one ``__setitem__`` per element.
"""

from __future__ import annotations

from typing import Callable

from pydicom import config
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from wadows.deid import safe_attributes as safe
from wadows.deid.actions import Action, CompiledTable, Op
from wadows.deid.dates import shift_da, shift_dt
from wadows.deid.descriptors import is_clean
from wadows.deid.dummies import BINARY_VRS, dummy_element, empty_element, text_element
from wadows.deid.elements import converted, dictionary_vr, element, raw_ascii, text_of, text_value, vr_of
from wadows.deid.private import PRIVATE_CHARACTERISTICS, PrivatePolicy
from wadows.deid.profile import Profile
from wadows.deid.uids import UidMapper
from wadows.deid.well_formed import VRS, well_formed

PATIENT_ID = 0x00100020
SOP_CLASS_UID = 0x00080016
MEDIA_STORAGE_SOP_CLASS_UID, MEDIA_STORAGE_SOP_INSTANCE_UID, TRANSFER_SYNTAX_UID = 0x00020002, 0x00020003, 0x00020010

# Beyond Table E.1-1: containers of original values (encrypted, signed or MAC'd copies of what we
# remove, open to dictionary attacks on the hashes) and the file meta's private information.
_ALSO_REMOVED = (0x04000500, 0xFFFAFFFA, 0x4FFE0001, 0x00020100, 0x00020102)

_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "AE", "UR"})
_CLEANABLE_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "AE", "CS"})
_DATE_VRS = frozenset({"DA", "DT", "TM"})
# C on these falls back to the Basic Profile action: names, URIs, ages, binary blobs, dates (unless shifted).
_UNCLEANABLE_VRS = _TEXT_VRS | _DATE_VRS | BINARY_VRS | {"AS", "UI"}
_IDENTIFYING_VRS = _TEXT_VRS | _DATE_VRS | {"AS"}

# Walk modes, by strictness: inside a C sequence free text is cleaned, inside a D sequence dummied.
# DUMMY_CODES is DUMMY for the items directly under a D sequence: a code there (Institution Code
# Sequence, Person Identification Code Sequence) is the identifying value itself, whatever its scheme.
NORMAL, CLEAN, DUMMY, DUMMY_CODES = 0, 1, 2, 3

_Element = DataElement | RawDataElement
_CACHE_LIMIT = 50_000

_KEEP = Action(Op.KEEP)
_REMOVE = Action(Op.REMOVE)
_DUMMY_ACTION = Action(Op.DUMMY)
_CLEAN_OR_DUMMY = Action(Op.CLEAN, Op.DUMMY)


class WalkState:
    """What one object's walk needs besides the profile: decided by its plan and its header."""

    __slots__ = ("keep_uids", "shift_days", "private_policy", "_pseudonym", "_make_pseudonym")

    def __init__(self, keep_uids: bool, shift_days: int | None, private_policy: PrivatePolicy | None,
                 make_pseudonym: Callable[[], str]) -> None:
        self.keep_uids = keep_uids
        self.shift_days = shift_days
        self.private_policy = private_policy
        self._make_pseudonym = make_pseudonym
        self._pseudonym: str | None = None

    def patient_pseudonym(self) -> str:
        if self._pseudonym is None:
            self._pseudonym = self._make_pseudonym()
        return self._pseudonym


class Walker:
    """The table compiled for one profile, applied element by element."""

    def __init__(self, profile: Profile, compiled: CompiledTable, uids: UidMapper) -> None:
        self.profile = profile
        self._uids = uids
        self._actions: dict[int, Action] = dict(compiled.exact)
        for tag in _ALSO_REMOVED:
            self._actions[tag] = _REMOVE
        for tag in safe.CODE_FIELDS:
            self._actions.setdefault(tag, Action(Op.CODE))
        self.retain_private = compiled.private.op == Op.CLEAN
        # The instance's private block declarations go with the private blocks, or stay (cleaned) with them.
        self._actions[PRIVATE_CHARACTERISTICS] = _KEEP if self.retain_private else _REMOVE
        self._unlisted: dict[tuple[int, str, int], Action] = {}

    def dataset(self, src: Dataset, state: WalkState) -> Dataset:
        """The de-identified copy of a top-level dataset (without file meta)."""
        return self._walk(src, NORMAL, state)

    def file_meta(self, header: Dataset, out: Dataset, new_sop_instance_uid: str, state: WalkState) -> FileMetaDataset:
        """The de-identified file meta of `header`, completed from `out` (its de-identified data set) so that the
        object can be written as Part 10."""
        original = getattr(header, "file_meta", None)
        kept = self._walk_elements(original, NORMAL, state) if original is not None else {}
        if TRANSFER_SYNTAX_UID not in kept:
            implicit, little = header.original_encoding
            kept[BaseTag(TRANSFER_SYNTAX_UID)] = _element(
                TRANSFER_SYNTAX_UID, "UI", ImplicitVRLittleEndian if implicit and little else ExplicitVRLittleEndian)
        sop_class = text_value(out, SOP_CLASS_UID)  # as kept: the original may have been dropped as malformed
        if sop_class and MEDIA_STORAGE_SOP_CLASS_UID not in kept:
            kept[BaseTag(MEDIA_STORAGE_SOP_CLASS_UID)] = _element(MEDIA_STORAGE_SOP_CLASS_UID, "UI", sop_class)
        kept[BaseTag(MEDIA_STORAGE_SOP_INSTANCE_UID)] = _element(
            MEDIA_STORAGE_SOP_INSTANCE_UID, "UI", new_sop_instance_uid)
        meta = FileMetaDataset(kept)
        if original is not None:
            meta.set_original_encoding(*original.original_encoding, original.original_character_set)
        return meta

    def _walk(self, src: Dataset, mode: int, state: WalkState) -> Dataset:
        kept = self._walk_elements(src, mode, state)
        # Dataset(dict) adopts the dict as is: much cheaper than one __setitem__ per element.
        out = Dataset(kept, parent_encoding=getattr(src, "_parent_encoding", default_encoding))
        is_implicit, is_little = src.original_encoding
        out.set_original_encoding(is_implicit, is_little, src.original_character_set)
        return out

    def _walk_elements(self, src: Dataset, mode: int, state: WalkState) -> dict[BaseTag, _Element]:
        kept: dict[BaseTag, _Element] = {}
        code_mode, mode = mode, (DUMMY if mode == DUMMY_CODES else mode)
        actions = self._actions
        private_tags = None
        code_scheme_public = None
        for tag in src.keys():
            group = tag >> 16
            if group & 1:
                if state.private_policy is not None:
                    if private_tags is None:
                        private_tags = []
                    private_tags.append(tag)
                continue
            if (group & 0xFF01) in (0x5000, 0x6000) or not tag & 0xFFFF:
                continue
            action = actions.get(tag)
            if action is not None and action.op == Op.REMOVE:
                continue
            elem = element(src, tag)
            vr = vr_of(tag, elem)
            if action is None:
                action = self._unlisted_action(tag, vr, mode)
            elif action.op == Op.CODE:
                if code_scheme_public is None:
                    code_scheme_public = (text_value(src, safe.CODING_SCHEME_DESIGNATOR)
                                          in safe.PUBLIC_CODING_SCHEMES)
                action = (_DUMMY_ACTION if code_mode >= DUMMY and (code_mode == DUMMY_CODES or not code_scheme_public)
                          else _KEEP if code_scheme_public else _CLEAN_OR_DUMMY)
            self._act(kept, src, tag, elem, vr, action, mode, state)
        if private_tags:
            self._private(kept, src, private_tags, mode, state)
        return kept

    def _unlisted_action(self, tag: int, vr: str, mode: int) -> Action:
        key = (tag, vr, mode)
        action = self._unlisted.get(key)
        if action is None:
            action = self._judge_unlisted(tag, vr, mode)
            if len(self._unlisted) < _CACHE_LIMIT:  # unknown tags are unbounded; the dictionary is not
                self._unlisted[key] = action
        return action

    def _judge_unlisted(self, tag: int, vr: str, mode: int) -> Action:
        profile = self.profile
        strict = Op.REMOVE if mode == NORMAL else Op.DUMMY
        if vr not in _IDENTIFYING_VRS and dictionary_vr(tag) in _IDENTIFYING_VRS:
            vr = dictionary_vr(tag)  # a name encoded under a harmless VR is still a name
        if vr == "SQ":
            return _KEEP
        if vr == "UI":
            return _KEEP if tag in safe.UID_KEPT else Action(Op.UID)
        if vr in _DATE_VRS:
            if profile.retain_long_full_dates:
                return _KEEP
            return Action(Op.CLEAN, strict) if profile.retain_long_modified_dates else Action(strict)
        if vr == "AS":
            return _KEEP if profile.retain_patient_characteristics else Action(strict)
        if vr in _TEXT_VRS:
            if tag in safe.VERBATIM and vr != "PN":
                return _KEEP
            if tag in safe.CLEANED or mode != NORMAL:
                return Action(Op.CLEAN, Op.DUMMY) if mode != DUMMY else _DUMMY_ACTION
            return _REMOVE
        if vr == "UN":
            return _REMOVE  # a public tag unknown to the dictionary: nothing to judge it by
        return _KEEP

    def _act(self, out: dict, src: Dataset, tag: int, elem: DataElement | RawDataElement, vr: str,
             action: Action, mode: int, state: WalkState) -> None:
        op = action.op
        if vr not in VRS:
            return  # not a DICOM VR: nothing says what its bytes are, and no writer could write a replacement
        if op == Op.KEEP:
            if vr == "SQ":
                out[tag] = self._sequence(src, tag, elem, mode, state)
            elif well_formed(src, tag, vr, elem, uid_syntax=tag in safe.UID_KEPT):
                out[tag] = elem
            # else: a value that does not fit its VR (a name in a US, text after a class UID) could carry anything
        elif op == Op.REMOVE:
            return
        elif op == Op.EMPTY:
            out[tag] = empty_element(tag, vr)
        elif op == Op.DUMMY or op == Op.DUMMY_IF_VALUE:
            if op == Op.DUMMY_IF_VALUE and _is_empty(elem):
                out[tag] = empty_element(tag, vr)
            elif vr == "SQ":
                out[tag] = self._sequence(src, tag, elem, DUMMY_CODES, state)
            elif vr == "UI":
                self._act(out, src, tag, elem, vr, Action(Op.UID), mode, state)
            elif tag == PATIENT_ID:
                out[tag] = text_element(tag, vr, state.patient_pseudonym())
            else:
                out[tag] = dummy_element(tag, vr, _length(elem))
        elif op == Op.UID:
            if _is_empty(elem):
                out[tag] = elem
            elif vr not in ("UI", "UN"):
                out[tag] = dummy_element(tag, vr, _length(elem))  # a UID row holding something else
            elif not state.keep_uids:
                out[tag] = text_element(tag, "UI", self._uids.map_multi(raw_ascii(elem) or ""))
            elif well_formed(src, tag, "UI", elem):
                out[tag] = elem  # retained as they are, when they are UIDs at all
        elif op == Op.CLEAN:
            self._clean(out, src, tag, elem, vr, action, mode, state)

    def _clean(self, out: dict, src: Dataset, tag: int, elem: DataElement | RawDataElement, vr: str,
               action: Action, mode: int, state: WalkState) -> None:
        if vr == "SQ":
            out[tag] = self._sequence(src, tag, elem, max(mode, CLEAN), state)
            return
        if vr in _DATE_VRS and state.shift_days is not None:
            text = raw_ascii(elem)
            if not text or vr == "TM":
                if well_formed(src, tag, vr, elem):
                    out[tag] = elem  # empty, or a time of day: a whole-day shift leaves it as it is
                    return
            else:
                shifted = shift_da(text, state.shift_days) if vr == "DA" else shift_dt(text, state.shift_days)
                if shifted is not None:
                    out[tag] = text_element(tag, vr, shifted)
                    return
        elif vr in _CLEANABLE_VRS:
            if _is_empty(elem) or (well_formed(src, tag, vr, elem) and is_clean(text_of(converted(src, elem).value))):
                out[tag] = elem
                return
        elif vr not in _UNCLEANABLE_VRS:
            if well_formed(src, tag, vr, elem):
                out[tag] = elem  # numbers carry nothing to clean
            return
        self._act(out, src, tag, elem, vr, Action(action.fallback), mode, state)

    def _sequence(self, src: Dataset, tag: int, elem: DataElement | RawDataElement, mode: int,
                  state: WalkState) -> DataElement:
        items = converted(src, elem).value or []
        return _element(tag, "SQ", Sequence([self._walk(item, mode, state) for item in items]))

    def _private(self, out: dict, src: Dataset, tags: list[int], mode: int, state: WalkState) -> None:
        policy = state.private_policy
        creators = {tag: text_value(src, tag) for tag in tags if 0x0010 <= (tag & 0xFFFF) <= 0x00FF
                    and _well_formed_creator(src, tag)}
        used: set[int] = set()
        for tag in tags:
            offset = tag & 0xFFFF
            if offset < 0x1000:
                continue
            creator_tag = (tag & 0xFFFF0000) | (offset >> 8)
            elem = element(src, tag)
            decision = policy.decide(tag, elem, creators.get(creator_tag))
            if decision == "X":
                continue
            vr = vr_of(tag, elem)
            if vr == "UN" and _looks_like_items(elem):
                # A private sequence of unknown VR (implicit VR, or written as UN): its items are
                # parsed and cleaned like any other; kept as opaque bytes they would hide names.
                elem, vr = elem._replace(VR="SQ"), "SQ"
            if decision == "K":
                self._act(out, src, tag, elem, vr, _KEEP, mode, state)
            else:
                op = {"D": Op.DUMMY, "Z": Op.EMPTY, "U": Op.UID}[decision]
                self._act(out, src, tag, elem, vr, Action(op), mode, state)
            used.add(creator_tag)
        for creator_tag in used:
            out[BaseTag(creator_tag)] = element(src, creator_tag)


def _well_formed_creator(src: Dataset, tag: int) -> bool:
    # A creator that is not a well-formed LO names no block: the block's elements go with it.
    elem = element(src, tag)
    return well_formed(src, tag, vr_of(tag, elem), elem)


def _element(tag: int, vr: str, value: object) -> DataElement:
    # Values we build are valid by construction: skip pydicom's per-value validation.
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


def _looks_like_items(elem: DataElement | RawDataElement) -> bool:
    value = elem.value if isinstance(elem, RawDataElement) else None
    return isinstance(value, bytes) and value[:4] in (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00")


def _is_empty(elem: DataElement | RawDataElement) -> bool:
    if isinstance(elem, RawDataElement):
        return not elem.length if elem.value is not None else False
    value = elem.value
    return value is None or value == "" or value == b"" or (isinstance(value, (list, Sequence)) and not value)


def _length(elem: DataElement | RawDataElement) -> int:
    if isinstance(elem, RawDataElement):
        return elem.length
    value = elem.value
    return len(value) if isinstance(value, (bytes, bytearray)) else 2
