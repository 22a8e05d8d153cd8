"""De-identifying a header as its difference from a similar header de-identified before.

When a header differs from an earlier one only in a few top-level elements (the next slice of a series), the
de-identified output differs only in what the walk makes of those elements, provided that

* the two plans agree on everything the walk and the markers depend on (all Plan fields but the new SOP
  Instance UID, no pixel edit), and
* every differing element is *substitutable*: what the walk makes of it depends on its own bytes, the
  character set and the plan alone, and nothing else in the output depends on it.

Substitutable: a private element when Retain Safe Private is off (the walk drops it without reading it), and
a public element still in its encoded form, with a defined length and a VR that is neither SQ, UN nor
ambiguous, unless it is one of the elements others depend on (_INFLUENCERS). Each differing element is then
de-identified by the walker itself, on a data set holding only these elements and the character set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from pydicom.datadict import DicomDictionary, RepeatersDictionary, mask_match
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from wadows.deid import safe_attributes as safe
from wadows.deid.engine import Deidentifier, Plan
from wadows.deid.markers import (BURNED_IN_ANNOTATION, DEIDENTIFICATION_METHOD, DEIDENTIFICATION_METHOD_CODES,
                                 PATIENT_IDENTITY_REMOVED, TEMPORAL_INFORMATION_MODIFIED)
from wadows.deid.walker import NORMAL, WalkState
from wadows.dicom.dataset_copies import encoded_like

SPECIFIC_CHARACTER_SET = 0x00080005

# Top-level elements whose value reaches beyond their own output.
_INFLUENCERS = frozenset({
    SPECIFIC_CHARACTER_SET,  # how every text value is read and written
    0x00080016,  # SOP Class UID: copied into the file meta
    0x00100020,  # Patient ID: the pseudonym
    0x00080300,  # Private Data Element Characteristics Sequence: what Retain Safe Private keeps
    # read by the markers, or replaced by them
    PATIENT_IDENTITY_REMOVED, DEIDENTIFICATION_METHOD, DEIDENTIFICATION_METHOD_CODES, BURNED_IN_ANNOTATION,
    TEMPORAL_INFORMATION_MODIFIED,
    # what pydicom reads to settle an ambiguous VR elsewhere (Bits Allocated, Pixel Representation,
    # Waveform Bits Allocated, LUT Descriptor)
    0x00280100, 0x00280103, 0x54001004, 0x00283002,
    # a code item's fields are judged by its Coding Scheme Designator
    *safe.CODE_FIELDS, safe.CODING_SCHEME_DESIGNATOR,
})
_UNDEFINED = 0xFFFFFFFF


class _PseudonymNeeded(Exception):
    pass


def changed_outputs(deidentifier: Deidentifier, header: Dataset, plan: Plan, earlier_plan: Plan,
                    changed: Iterable[int]) -> dict[int, DataElement | RawDataElement | None] | None:
    """What apply(header, plan) makes of each of the `changed` top-level elements (None: removed), when the
    rest of its output is the output of the earlier header (see the module docstring); else None."""
    if not same_walk(plan, earlier_plan):
        return None
    walker = deidentifier._walker  # the very walk apply() runs
    elements = header._dict
    subset = {}
    for tag in changed:
        elem = elements.get(tag)
        if not _substitutable(tag, elem, walker.retain_private):
            return None
        subset[tag] = elem
    charset = elements.get(SPECIFIC_CHARACTER_SET)
    if charset is not None:
        subset[charset.tag] = charset
    src = encoded_like(*header.original_encoding, header.original_character_set).make(subset)
    # No private policy: private elements are only substitutable without Retain Safe Private.
    state = WalkState(plan.keep_uids, plan.date_shift_days, None, _no_pseudonym)
    try:
        kept = walker._walk_elements(src, NORMAL, state)  # Walker.dataset() without the Dataset around it
    except _PseudonymNeeded:
        return None
    if any(tag not in subset for tag in kept):
        return None
    return {tag: kept.get(tag) for tag in subset if tag != SPECIFIC_CHARACTER_SET}


def same_walk(plan: Plan, earlier: Plan) -> bool:
    """Whether two plans lead to the same walk and markers: equal in every field but the new SOP Instance
    UID (a field added to Plan later is compared too), neither with a pixel edit."""
    if plan.pixel_edit is not None or earlier.pixel_edit is not None:
        return False
    return all(getattr(plan, name) == getattr(earlier, name) for name in _COMPARED_PLAN_FIELDS)


_COMPARED_PLAN_FIELDS = tuple(f.name for f in dataclasses.fields(Plan)
                              if f.name not in ("new_sop_instance_uid", "pixel_edit"))


def _substitutable(tag: int, elem: object, private_policy: bool) -> bool:
    group = tag >> 16
    if group & 1:
        return not private_policy  # dropped unread; under a policy its creator and declarations decide
    if tag in _INFLUENCERS or group == 0x0002 or not isinstance(elem, RawDataElement):
        return False
    if elem.value is None or elem.length == _UNDEFINED:
        return False
    vr = elem.VR or _dictionary_entry_vr(tag)
    return vr is not None and vr not in ("SQ", "UN") and " or " not in vr


def _dictionary_entry_vr(tag: int) -> str | None:
    entry = DicomDictionary.get(tag)
    if entry is None:
        mask = mask_match(tag)
        entry = RepeatersDictionary.get(mask) if mask else None
    return entry[0] if entry else None


def _no_pseudonym() -> str:
    raise _PseudonymNeeded
