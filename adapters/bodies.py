"""Performing the body requests of :mod:`smtpproto.driver` (``OpenBody``, ``ReadBody``,
``CloseBody``): reading a path, a binary file object or an iterable of chunks.

Plain blocking calls, for any driver: a blocking driver calls :func:`perform_body_request`
directly, an event loop's driver runs it in a worker thread (``asyncio.to_thread``,
``trio.to_thread.run_sync``) so that a slow disk or a pipe never stalls the loop.  Any
``OSError`` (or error of the caller's iterable) becomes :exc:`~smtpproto.BodyReadError`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from smtpproto import BodyReadError
from smtpproto.driver import CloseBody, OpenBody, OpenedBody, ReadBody

__all__ = ["BodyRequest", "perform_body_request"]

BodyRequest = OpenBody | ReadBody | CloseBody


def perform_body_request(request: BodyRequest) -> OpenedBody | bytes | None:
    """Perform one body request: an :class:`OpenedBody` for ``OpenBody``, the next chunk
    (``b""`` at the end) for ``ReadBody``, ``None`` for ``CloseBody``."""
    try:
        if isinstance(request, OpenBody):
            return _open(request)
        reader = request.reader
        assert isinstance(reader, _Reader), f"not a reader this module opened: {reader!r}"
        if isinstance(request, ReadBody):
            return reader.read(request.max_bytes)
        reader.close()
        return None
    except BodyReadError:
        raise
    except Exception as exc:  # the caller's stream may fail in any way: never a lost session
        raise BodyReadError(f"cannot read the message body: {exc}") from exc


class _Reader:
    """One pass over a body: a file (opened here from a path, or the caller's) or chunks."""

    def __init__(self, file: BinaryIO | None, chunks: Iterator[bytes], owned: bool) -> None:
        self.file, self.chunks, self.owned = file, chunks, owned

    def read(self, max_bytes: int) -> bytes:
        if self.file is not None:
            return self.file.read(max_bytes)
        for chunk in self.chunks:
            if chunk:  # an empty chunk would read as the end
                return bytes(chunk)
        return b""

    def close(self) -> None:
        if self.owned and self.file is not None:
            self.file.close()


def _open(request: OpenBody) -> OpenedBody:
    source = request.source
    if isinstance(source, os.PathLike):
        file: BinaryIO = open(source, "rb")  # noqa: SIM115 -- closed by CloseBody
        return OpenedBody(_Reader(file, iter(()), owned=True), os.fstat(file.fileno()).st_size, 0)
    if hasattr(source, "read"):
        caller_file: BinaryIO = source  # type: ignore[assignment]
        start, size = _position(caller_file, request.start)
        return OpenedBody(_Reader(caller_file, iter(()), owned=False), size, start)
    chunks: Iterable[bytes] = source
    return OpenedBody(_Reader(None, iter(chunks), owned=False))


def _position(file: BinaryIO, start: int | None) -> tuple[int | None, int | None]:
    """(start offset, octets left) of a seekable file, rewound to ``start`` when given;
    (None, None) for a pipe or a socket, which can be read only once."""
    try:
        if not file.seekable():
            return None, None
        here = file.tell() if start is None else file.seek(start)
        end = file.seek(0, io.SEEK_END)
        file.seek(here)
    except (OSError, ValueError):
        return None, None
    return here, end - here
