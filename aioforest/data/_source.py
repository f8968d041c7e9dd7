"""Opening a path or a file object as text for the readers."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, cast

__all__ = ["PathOrFile", "open_text"]

#: What the readers accept: a filesystem path, or an open text or binary file object.
PathOrFile = str | os.PathLike[str] | IO[str] | IO[bytes]


@contextmanager
def open_text(source: PathOrFile) -> Iterator[tuple[IO[str], str, str | None]]:
    """Yield ``(text_file, display_name, source)`` for a path or an open file.

    Files are decoded as UTF-8 (a leading byte-order mark is dropped) with ``newline=""`` so the
    csv module sees the original line endings. ``display_name`` names the input in error
    messages (a stream without a ``name`` shows as ``<stream>``); ``source`` is the path, or
    ``None`` for an anonymous stream. File objects are not closed.
    """
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        with open(path, encoding="utf-8-sig", newline="") as f:
            yield f, path, path
        return
    name = getattr(source, "name", None)
    shown = name if isinstance(name, str) else None
    if _is_binary(source):
        wrapper = io.TextIOWrapper(cast(Any, source), encoding="utf-8-sig", newline="")
        try:
            yield wrapper, shown or "<stream>", shown
        finally:
            wrapper.detach()  # leave the caller's binary file open
        return
    yield source, shown or "<stream>", shown  # type: ignore[misc]


def _is_binary(f: Any) -> bool:
    if isinstance(f, io.TextIOBase):
        return False
    if isinstance(f, io.RawIOBase | io.BufferedIOBase):
        return True
    return "b" in str(getattr(f, "mode", ""))
