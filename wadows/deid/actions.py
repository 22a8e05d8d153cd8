"""Table E.1-1 compiled for one profile: tag -> what to do, looked up once per element.

Choosing the column: an option's K or C replaces the Basic Profile action only when that option is
switched on. When several switched-on options name the same row, Retain Longitudinal Modified Dates
wins for its rows (a date kept unshifted next to shifted ones would reveal the shift), then K over C
(the options exist to retain; C is what is left when no option keeps the value whole).

Resolving the compound codes without per-IOD type knowledge, conservatively (PS3.15 allows the
stronger choice; the attribute's presence in the input tells us the IOD may need it):

* ``X/Z`` -> Z: keep the attribute with no value (an empty sequence), valid for Type 2 and 3.
* ``X/D``, ``X/Z/D``, ``Z/D`` -> D when the input has a value, Z when it is empty: a dummy is valid
  for Type 1, 2 and 3; an empty input cannot have been Type 1.
* ``X/Z/U*`` (Referenced / Source Image Sequence) -> keep the sequence and clean its items, whose
  Referenced SOP Instance UIDs are remapped by their own U row.

What the ops do to each VR is in :mod:`wadows.deid.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass

from wadows.deid.profile import Profile
from wadows.deid.table import Table, TableRow


class Op:
    KEEP = 0             # leave the value; a sequence is kept and its items cleaned
    REMOVE = 1           # X
    EMPTY = 2            # Z
    DUMMY = 3            # D; a sequence keeps its items, every identifying value in them dummied
    DUMMY_IF_VALUE = 4   # D for a present value, Z for an empty one (resolved X/D, X/Z/D, Z/D)
    CLEAN = 5            # C; falls back to the row's Basic Profile op when the value cannot be cleaned
    UID = 6              # U
    CODE = 7             # a code item field: kept in public coding schemes, cleaned otherwise


@dataclass(frozen=True, slots=True)
class Action:
    op: int
    fallback: int = Op.REMOVE   # for CLEAN: the op when cleaning fails


_BASIC_OPS = {
    "X": Op.REMOVE, "Z": Op.EMPTY, "D": Op.DUMMY, "U": Op.UID,
    "X/Z": Op.EMPTY, "X/D": Op.DUMMY_IF_VALUE, "X/Z/D": Op.DUMMY_IF_VALUE, "Z/D": Op.DUMMY_IF_VALUE,
    "X/Z/U*": Op.KEEP,
}


def effective_code(row: TableRow, profile: Profile) -> str:
    """The action code of ``row`` under ``profile`` (K, C or the Basic Profile code)."""
    if profile.retain_long_modified_dates and row.options.get("retain_long_modified_dates") == "C":
        return "C"
    chosen = {code for switch, code in row.options.items() if getattr(profile, switch)}
    if "K" in chosen:
        return "K"
    if "C" in chosen:
        return "C"
    return row.basic


def action_for(row: TableRow, profile: Profile) -> Action:
    code = effective_code(row, profile)
    if code == "K":
        return Action(Op.KEEP)
    basic = _BASIC_OPS[row.basic]
    if code == "C":
        return Action(Op.CLEAN, basic)
    return Action(basic)


@dataclass(frozen=True)
class CompiledTable:
    exact: dict[int, Action]    # every exact-tag row
    private: Action             # the "(GGGG,EEEE) where GGGG is odd" row
    edition: str


def compile_table(table: Table, profile: Profile) -> CompiledTable:
    exact: dict[int, Action] = {}
    private = Action(Op.REMOVE)
    for row in table.rows:
        tag = row.exact_tag
        if tag is not None:
            exact[tag] = action_for(row, profile)
        elif row.tag == "GGGGEEEE":
            private = action_for(row, profile)
        # Curves (50xx) and overlays (60xx) are removed as whole groups by the engine, whatever the
        # Clean Graphics column says: a bitmap or curve cannot be checked for burned-in text.
    return CompiledTable(exact, private, table.edition)
