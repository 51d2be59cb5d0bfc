"""Performing the body requests of :mod:`smtpproto.driver` (``OpenBody``, ``ReadBody``,
``CloseBody``): reading a path, a binary file object or an iterable of chunks; and the spool
that DKIM signing needs for a body that can be read only once (``SpoolBody``, ``RemoveSpool``).

Plain blocking calls, for any driver: a blocking driver calls :func:`perform_body_request`
directly, an event loop's driver runs it in a worker thread (``asyncio.to_thread``,
``trio.to_thread.run_sync``) so that a slow disk or a pipe never stalls the loop.  Any
``OSError`` (or error of the caller's iterable) becomes :exc:`~smtpproto.BodyReadError`.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from smtpproto import BodyReadError
from smtpproto.driver import (
    CloseBody,
    OpenBody,
    OpenedBody,
    ReadBody,
    RemoveSpool,
    SpoolBody,
)

__all__ = ["BODY_REQUESTS", "BodyRequest", "perform_body_request"]

BodyRequest = OpenBody | ReadBody | CloseBody | SpoolBody | RemoveSpool
#: The request types :func:`perform_body_request` performs, for ``isinstance``.
BODY_REQUESTS = (OpenBody, ReadBody, CloseBody, SpoolBody, RemoveSpool)
# Copied to a spool in pieces of this size: the spool costs this much memory at most.
_SPOOL_PIECE = 1 << 20


def perform_body_request(
    request: BodyRequest,
) -> OpenedBody | bytes | os.PathLike[str] | None:
    """Perform one body request: an :class:`OpenedBody` for ``OpenBody``, the next chunk
    (``b""`` at the end) for ``ReadBody``, the spool's path for ``SpoolBody``, ``None`` for
    ``CloseBody`` and ``RemoveSpool``."""
    try:
        if isinstance(request, OpenBody):
            return _open(request)
        if isinstance(request, SpoolBody):
            return _spool(request)
        if isinstance(request, RemoveSpool):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(request.path)
            return None
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


def _spool(request: SpoolBody) -> os.PathLike[str]:
    """Append ``request.content`` to the spool (made here, not deleted on close: the core
    reads it twice and then asks for :class:`RemoveSpool`); a failed copy leaves no new file."""
    content = request.content
    if request.path is None:
        fd, name = tempfile.mkstemp(prefix="smtpproto-spool-")
        file: BinaryIO = os.fdopen(fd, "wb")
        path = pathlib.Path(name)
    else:
        path = pathlib.Path(request.path)
        file = open(path, "ab")  # noqa: SIM115 -- closed below
    try:
        with file:
            if isinstance(content, bytes):
                file.write(content)
            else:
                assert isinstance(content, _Reader), f"not a reader this module opened: {content!r}"
                while piece := content.read(_SPOOL_PIECE):
                    file.write(piece)
    except BaseException:
        if request.path is None:
            path.unlink(missing_ok=True)
        raise
    return path


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
