"""Which top-level elements of a data set a function reads.

A decision taken from a header (the de-identification plan, the check that the Image Pixel attributes account
for the Pixel Data) holds for a similar header as long as none of the elements it read differ. Rather than
keep a list of those elements beside each function, which would drift from the code, the function runs once on
a view of the data set that notes every element looked up. Anything that walks the elements as a whole (keys,
items, a copy) makes the answer "all of them": then no element can be ruled out.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from pydicom.dataset import Dataset

from wadows.dicom.dataset_copies import encoded_like

T = TypeVar("T")

SPECIFIC_CHARACTER_SET = 0x00080005


class _NotingDict(dict):
    """A data set's elements, noting the keys looked up (overriding __iter__ also routes dict(d), {**d} and
    d.update(...) from C through keys(), where they are noted as reading everything)."""

    def __init__(self, elements: dict) -> None:
        super().__init__(elements)
        self.read: set[int] = set()
        self.everything = False

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        self.read.add(key)
        return super().__contains__(key)

    def _whole(self):
        self.everything = True

    def keys(self):
        self._whole()
        return super().keys()

    def items(self):
        self._whole()
        return super().items()

    def values(self):
        self._whole()
        return super().values()

    def __iter__(self):
        self._whole()
        return super().__iter__()

    def __len__(self) -> int:
        self._whole()
        return super().__len__()

    def copy(self):
        self._whole()
        return super().copy()

    # pydicom writes back the elements it converts on reading; a write is noted as a read of its key
    # (conservative: what is read back later is then counted as read from the data set).
    def __setitem__(self, key, value) -> None:
        self.read.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self.read.add(key)
        super().__delitem__(key)

    def pop(self, key, *default):
        self.read.add(key)
        return super().pop(key, *default)

    def setdefault(self, key, default=None):
        self.read.add(key)
        return super().setdefault(key, default)

    def update(self, *args, **kwargs) -> None:
        self._whole()
        super().update(*args, **kwargs)


def tags_read(function: Callable[[Dataset], T], ds: Dataset) -> tuple[T, frozenset[int] | None]:
    """function(ds) run on a view of `ds` (same elements and encoding; `ds` itself is not touched), and the
    tags of the elements it looked up; None when it looked at them as a whole. Its file meta is not in the view:
    a function that reads it fails here rather than read it unnoticed."""
    elements = _NotingDict(ds._dict)
    view = encoded_like(*ds.original_encoding, ds.original_character_set).make(elements)
    result = function(view)
    if elements.everything:
        return result, None
    # Text is decoded in the data set's character set: it is read by whatever reads text.
    return result, frozenset({SPECIFIC_CHARACTER_SET, *(int(tag) for tag in elements.read if isinstance(tag, int))})
