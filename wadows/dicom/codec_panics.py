"""A pixel codec's panic, turned at the call into an Exception like any other failure to code the input.

Codecs written in Rust (pylibjpeg-rle, on an RLE segment that decodes past the end of its frame) panic, and pyo3
raises the panic as pyo3_runtime.PanicException, which derives from BaseException so that `except Exception`
does not catch it: left alone it goes through every handler and ends the worker. It means nothing worse than
"this input cannot be coded", so the codec call sites raise it as CodecPanic, which their handlers turn into the
documented errors. Anything else that is not an Exception (KeyboardInterrupt, SystemExit, GeneratorExit) passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["CodecPanic", "panics_raised_as_errors", "without_panics"]

T = TypeVar("T")


class CodecPanic(Exception):
    """A codec panicked on its input (the panic's own words: positions and sizes, never pixel values)."""


@contextmanager
def panics_raised_as_errors() -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        if not _is_panic(exc):
            raise
        raise CodecPanic(str(exc)[:300]) from None


def without_panics(items: Iterator[T]) -> Iterator[T]:
    """`items` (a codec's generator), with a panic while producing one raised as CodecPanic."""
    try:
        while True:
            with panics_raised_as_errors():
                try:
                    item = next(items)
                except StopIteration:
                    return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # closed early: the codec's generator is not left suspended


def _is_panic(exc: BaseException) -> bool:
    kind = type(exc)
    return not isinstance(exc, Exception) and kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"
