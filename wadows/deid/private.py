"""Retain Safe Private (PS3.15 E.3.10): which private data elements of an instance may stay.

Without the option every private element goes (creators, private sequences, at any depth). With it, a
private element stays only when one of these says it is safe, in this order:

1. The instance's own Private Data Element Characteristics Sequence (0008,0300), per block (group +
   creator): SAFE keeps the whole block, UNSAFE drops it, MIXED keeps the elements listed in
   Nonidentifying Private Elements (0008,0304) and applies the Deidentification Action (0008,0307:
   D, Z, X or U) to those in Identifying Private Elements (0008,0306); the rest of a MIXED block goes.
2. ``data/safe_private.json``: a short list of numeric acquisition parameters (Table E.3.10-1 rows).
   The element must really hold a value of the listed VR (explicit VR equal, or for implicit/UN the
   bytes parse as it), and a code string one of the entry's listed values, so a wrong entry or a
   misused element cannot let text out.

Everything else is removed, and so is a private creator whose block keeps nothing.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from wadows.deid.elements import text_of, value_of

KEEP = "K"
REMOVE = "X"
_ACTIONS = {"D", "Z", "X", "U"}

PRIVATE_CHARACTERISTICS = 0x00080300
_GROUP_REF, _CREATOR_REF, _STATUS, _NONIDENTIFYING = 0x00080301, 0x00080302, 0x00080303, 0x00080304
_ACTION_SEQ, _IDENTIFYING, _ACTION = 0x00080305, 0x00080306, 0x00080307

_TEXT_NUMBER = re.compile(rb"[0-9+\-.eE \\]*")
_BINARY_SIZE = {"FL": 4, "FD": 8, "SS": 2, "US": 2, "SL": 4, "UL": 4, "SV": 8, "UV": 8}
_NUMERIC_VRS = frozenset({"IS", "DS", *_BINARY_SIZE})


@dataclass(frozen=True)
class BlockDeclaration:
    status: str                      # SAFE, UNSAFE or MIXED
    nonidentifying: frozenset[int]   # element offsets (low byte) that are safe
    actions: dict[int, str]          # element offset -> D, Z, X or U


def creator_key(creator: str) -> str:
    return creator.strip().upper()


@dataclass(frozen=True)
class KnownSafe:
    vr: str
    values: frozenset[str] | None   # for code strings: the only values that may pass


@functools.cache
def known_safe() -> dict[tuple[int, str], dict[int, KnownSafe]]:
    """(group, creator) -> {element offset: KnownSafe} from data/safe_private.json."""
    data = json.loads(resources.files("wadows.deid").joinpath("data", "safe_private.json")
                      .read_text(encoding="utf-8"))
    table: dict[tuple[int, str], dict[int, KnownSafe]] = {}
    for entry in data["elements"]:
        key = (int(entry["group"], 16), creator_key(entry["creator"]))
        values = frozenset(entry["values"]) if "values" in entry else None
        if entry["vr"] not in _NUMERIC_VRS and values is None:
            raise ValueError(f"safe private entry {entry['name']!r}: text needs a list of allowed values")
        table.setdefault(key, {})[int(entry["offset"], 16)] = KnownSafe(entry["vr"], values)
    return table


def read_declarations(header: Dataset) -> dict[tuple[int, str], BlockDeclaration]:
    """The blocks declared in the instance's (0008,0300); malformed items are ignored (= not safe)."""
    declarations: dict[tuple[int, str], BlockDeclaration] = {}
    items = value_of(header, PRIVATE_CHARACTERISTICS) or []
    for item in items:
        group = value_of(item, _GROUP_REF)
        creator = text_of(value_of(item, _CREATOR_REF)).strip()
        status = text_of(value_of(item, _STATUS)).strip().upper()
        if not isinstance(group, int) or not creator or status not in {"SAFE", "UNSAFE", "MIXED"}:
            continue
        nonidentifying = value_of(item, _NONIDENTIFYING) or []
        if isinstance(nonidentifying, int):
            nonidentifying = [nonidentifying]
        actions: dict[int, str] = {}
        for action_item in value_of(item, _ACTION_SEQ) or []:
            action = text_of(value_of(action_item, _ACTION)).strip().upper()
            offsets = value_of(action_item, _IDENTIFYING) or []
            if isinstance(offsets, int):
                offsets = [offsets]
            if action in _ACTIONS:
                actions.update({o & 0xFF: action for o in offsets})
        declarations[(group, creator_key(creator))] = BlockDeclaration(
            status, frozenset(o & 0xFF for o in nonidentifying), actions)
    return declarations


def _holds(elem: DataElement | RawDataElement, known: KnownSafe) -> bool:
    """True when the element really holds what the known-safe entry allows."""
    encoded_vr = elem.VR
    if encoded_vr not in (None, "UN") and encoded_vr != known.vr:
        return False
    raw = elem.value
    if known.values is not None:
        text = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else text_of(raw)
        return all(v.strip("\0 ") in known.values for v in text.split("\\"))
    if encoded_vr not in (None, "UN"):
        return True  # an explicit numeric VR holds numbers
    if not isinstance(raw, (bytes, bytearray)):
        return False
    if known.vr in ("IS", "DS"):
        return _TEXT_NUMBER.fullmatch(raw.rstrip(b"\0 ")) is not None
    size = _BINARY_SIZE.get(known.vr)
    return size is not None and len(raw) % size == 0


class PrivatePolicy:
    """Decides, element by element, what Retain Safe Private keeps of one instance."""

    def __init__(self, declarations: dict[tuple[int, str], BlockDeclaration]) -> None:
        self.declarations = declarations
        self.known = known_safe()

    def decide(self, tag: int, elem: DataElement | RawDataElement, creator: str | None) -> str:
        """KEEP, REMOVE, or a declared D / Z / U action, for a private data element (not a creator)."""
        element = tag & 0xFFFF
        if creator is None or element < 0x1000:
            return REMOVE
        group, offset = tag >> 16, element & 0xFF
        key = (group, creator_key(creator))
        declaration = self.declarations.get(key)
        if declaration is not None:
            if declaration.status == "SAFE":
                return KEEP
            if declaration.status == "MIXED":
                if offset in declaration.nonidentifying:
                    return KEEP
                return declaration.actions.get(offset, REMOVE)
            return REMOVE
        known = self.known.get(key, {}).get(offset)
        if known is not None and _holds(elem, known):
            return KEEP
        return REMOVE
