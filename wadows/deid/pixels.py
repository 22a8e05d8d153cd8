"""Clean Pixel Data: rules that say where burned-in text is, and the pixel edit that blanks it.

Rule format (a list of tables, e.g. ``[[anonymize.pixel_rules]]`` in TOML)::

    [[anonymize.pixel_rules]]
    name = "Acme Sono 5 header band"          # required, shown in logs and in Plan.pixel_rule
    regions = [[0, 0, 640, 48], [560, 440, 80, 40]]
    [anonymize.pixel_rules.match]
    Modality = "US"                            # exact value (case-insensitive for text)
    Manufacturer = ["ACME*", "Acme Medical"]   # a list = any of these; '*' = any run of characters
    ManufacturerModelName = "SONO 5*"
    Rows = 480                                 # numbers compare as numbers
    ImageType = "DERIVED\\SECONDARY*"          # multi-valued attributes match on their values joined by '\'

* ``match``: at least one DICOM keyword of the original header (Manufacturer, ManufacturerModelName,
  SOPClassUID, Modality, Rows, Columns, ImageType, SeriesDescription, SoftwareVersions, ...). Every
  keyword must match (AND); a list matches when any element does (OR). An attribute absent from the
  header never matches. Text compares case-insensitively after trimming spaces; ``*`` is the only
  wildcard. Numbers compare numerically against single-valued attributes.
* ``regions``: at least one ``[x, y, width, height]`` in pixel coordinates: x = column and y = row of
  the top-left corner, counted from 0 at the top-left of the image; width/height > 0. The same regions
  are blanked on every frame; parts outside the image are ignored. Blanked pixels get the value 0 in
  every sample (black for MONOCHROME2 and RGB).
* Rules are tried in order (configured rules after the built-in ones); the first match wins.

Built-in rules (``data/pixel_rules.json``) are shipped only for layouts that were verified on real
images of that device; a wrong rule would let burned-in text out while the object claims Clean Pixel
Data. None could be verified here, so the built-in list is empty and objects with burned-in annotation
are refused until an operator adds the rule for their device.

The pixel edit also zeroes embedded overlay planes: overlay bits stored in the unused high bits of the
pixel data ((60xx,0102) Overlay Bit Position >= Bits Stored) are cleared by masking every pixel to its
Bits Stored (signed data re-extended from its sign bit).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from wadows.deid.elements import element, int_value, value_of

PixelEdit = Callable[[np.ndarray, Dataset], np.ndarray]


class PixelEditError(Exception):
    """The pixel array handed to the edit does not fit the image it was planned for."""


@dataclass(frozen=True)
class Region:
    x: int
    y: int
    width: int
    height: int


class _Matcher:
    """One keyword's accepted values."""

    __slots__ = ("tag", "keyword", "patterns", "numbers")

    def __init__(self, keyword: str, wanted: Any) -> None:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ValueError(f"pixel rule matches on unknown DICOM keyword {keyword!r}")
        self.tag = tag
        self.keyword = keyword
        values = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        if not values:
            raise ValueError(f"pixel rule match on {keyword} has an empty list")
        self.patterns: list[re.Pattern[str]] = []
        self.numbers: list[float] = []
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ValueError(f"pixel rule match on {keyword} must be text or a number")
            if isinstance(value, str):
                body = ".*".join(re.escape(part) for part in value.strip().split("*"))
                self.patterns.append(re.compile(body, re.IGNORECASE | re.DOTALL))
            else:
                self.numbers.append(float(value))

    def matches(self, header: Dataset) -> bool:
        value = value_of(header, self.tag)
        if value is None or value == "":
            return False
        if isinstance(value, (list, tuple, MultiValue)):
            text, single = "\\".join(str(v).strip() for v in value), None
        else:
            text, single = str(value).strip(), value
        if self.numbers and single is not None:
            try:
                if float(single) in self.numbers:
                    return True
            except (TypeError, ValueError):
                pass
        return any(p.fullmatch(text) for p in self.patterns)


@dataclass(frozen=True)
class PixelRule:
    name: str
    matchers: tuple[_Matcher, ...]
    regions: tuple[Region, ...]

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> "PixelRule":
        if not isinstance(table, Mapping):
            raise ValueError("each pixel rule must be a table with name, match and regions")
        unknown = sorted(set(table) - {"name", "match", "regions"})
        if unknown:
            raise ValueError(f"pixel rule has unknown key(s): {', '.join(unknown)}")
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("pixel rule needs a non-empty name")
        match = table.get("match")
        if not isinstance(match, Mapping) or not match:
            raise ValueError(f"pixel rule {name!r} needs a non-empty match table")
        regions = table.get("regions")
        if not isinstance(regions, (list, tuple)) or not regions:
            raise ValueError(f"pixel rule {name!r} needs at least one region [x, y, width, height]")
        return cls(name.strip(), tuple(_Matcher(k, v) for k, v in match.items()),
                   tuple(_region(name, r) for r in regions))

    def matches(self, header: Dataset) -> bool:
        return all(m.matches(header) for m in self.matchers)


def _region(rule: str, value: Any) -> Region:
    if isinstance(value, Mapping):
        value = [value.get(k) for k in ("x", "y", "width", "height")]
    if (not isinstance(value, (list, tuple)) or len(value) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"pixel rule {rule!r}: a region is [x, y, width, height] in whole pixels")
    x, y, width, height = value
    if x < 0 or y < 0 or width <= 0 or height <= 0:
        raise ValueError(f"pixel rule {rule!r}: region needs x, y >= 0 and width, height > 0")
    return Region(x, y, width, height)


class PixelRuleSet:
    """An ordered list of pixel rules; the first that matches a header wins."""

    def __init__(self, rules: Iterable[PixelRule] = ()) -> None:
        self.rules: tuple[PixelRule, ...] = tuple(rules)

    @classmethod
    def builtin(cls) -> "PixelRuleSet":
        data = json.loads(resources.files("wadows.deid").joinpath("data", "pixel_rules.json")
                          .read_text(encoding="utf-8"))
        return cls(PixelRule.from_mapping(r) for r in data["rules"])

    @classmethod
    def from_mapping(cls, tables: Iterable[Mapping[str, Any]] | None,
                     include_builtin: bool = True) -> "PixelRuleSet":
        """Rules from configuration tables (format in the module docstring), after the built-in ones."""
        if tables is None:
            tables = []
        if isinstance(tables, Mapping) or not isinstance(tables, (list, tuple)):
            raise ValueError("pixel_rules must be a list of rule tables")
        configured = [PixelRule.from_mapping(t) for t in tables]
        names = [r.name for r in configured]
        if len(names) != len(set(names)):
            raise ValueError("pixel rule names must be unique")
        base = cls.builtin().rules if include_builtin else ()
        return cls((*base, *configured))

    def first_match(self, header: Dataset) -> PixelRule | None:
        for rule in self.rules:
            if rule.matches(header):
                return rule
        return None

    def __len__(self) -> int:
        return len(self.rules)


@dataclass(frozen=True)
class ImageGeometry:
    rows: int
    columns: int
    samples_per_pixel: int
    bits_stored: int
    signed: bool


def make_pixel_edit(geometry: ImageGeometry, regions: tuple[Region, ...], strip_high_bits: bool) -> PixelEdit:
    """The callable handed to the Part 10 writer: blanks ``regions`` on every frame and, when
    ``strip_high_bits``, clears the bits above Bits Stored (embedded overlays)."""

    def pixel_edit(array: np.ndarray, header: Dataset) -> np.ndarray:
        color = geometry.samples_per_pixel > 1
        plane = array.shape[-3:-1] if color else array.shape[-2:]
        if (array.ndim < 2 or tuple(plane) != (geometry.rows, geometry.columns)
                or (color and array.shape[-1] != geometry.samples_per_pixel)):
            raise PixelEditError("pixel array shape does not match the planned image geometry")
        if not array.flags.writeable:
            array = array.copy()
        if strip_high_bits and array.dtype.kind in "iu" and geometry.bits_stored < array.dtype.itemsize * 8:
            _strip_high_bits(array, geometry.bits_stored, geometry.signed)
        for r in regions:
            if color:
                array[..., r.y:r.y + r.height, r.x:r.x + r.width, :] = 0
            else:
                array[..., r.y:r.y + r.height, r.x:r.x + r.width] = 0
        return array

    return pixel_edit


def _strip_high_bits(array: np.ndarray, bits_stored: int, signed: bool) -> None:
    mask = (1 << bits_stored) - 1
    if array.dtype.kind == "u" and not signed:
        np.bitwise_and(array, array.dtype.type(mask), out=array)
        return
    # Keep the stored bits, then extend the sign from bit (bits_stored - 1) again (or not, if unsigned).
    values = array.astype(np.int64) & mask
    if signed:
        sign = 1 << (bits_stored - 1)
        values = (values ^ sign) - sign
    array[...] = values.astype(array.dtype)


def embedded_overlay_bits(header: Dataset, bits_stored: int) -> list[int]:
    """Bit positions of overlay planes stored inside the pixel data (retired mechanism): an overlay
    group with an Overlay Bit Position at or above Bits Stored and no separate Overlay Data."""
    positions = []
    for group in range(0x6000, 0x6020, 2):
        position = int_value(header, (group << 16) | 0x0102)
        if position is None or position < bits_stored:
            continue
        if element(header, (group << 16) | 0x3000) is None:
            positions.append(position)
    return positions
