"""Splits the bytes received from the server into CRLF-terminated lines.

Only CRLF ends a line (RFC 5321 §2.3.8, checklist R7): a bare LF or a bare CR is an ordinary
octet of the line.  Memory stays bounded: an incomplete line that can no longer fit the caller's
limit is an error at once, so the buffer never holds more than ``max_length`` plus the last
chunk fed.
"""

from __future__ import annotations

from smtpproto._wire.errors import RemoteProtocolError

__all__ = ["ReceiveBuffer"]

_CRLF = b"\r\n"
# The smallest legal limit: an empty line is just its CRLF.
_MIN_MAX_LENGTH = len(_CRLF)
# How much of an over-long line is copied into the exception (which truncates it further).
_EXCERPT = 256


class ReceiveBuffer:
    """A byte buffer that hands out complete lines in linear time overall.

    Fed chunks wait in a list and are joined to the unread rest only when that rest holds no
    complete line, and lines are sliced from the joined bytes at an advancing offset: each
    octet is copied about twice (once joined, once returned), and a chunk of whole replies,
    the usual case, is joined without a copy at all.  The rest carried into a join is always
    shorter than the caller's line limit, so joining stays linear however the bytes are cut.
    """

    __slots__ = ("_data", "_more", "_search_from", "_start")

    def __init__(self) -> None:
        self._data = b""
        # Chunks fed and not yet joined to ``_data``.
        self._more: list[bytes] = []
        # Offset in ``_data`` of the first byte not yet returned.
        self._start = 0
        # Offset where the next CRLF search begins: everything before it is known to hold no
        # CRLF.  It may point at a trailing CR, whose LF has not arrived yet.
        self._search_from = 0

    def feed(self, data: bytes) -> None:
        """Append bytes received from the server."""
        self._more.append(bytes(data))

    def next_line(self, max_length: int) -> bytes | None:
        """Return the next line without its CRLF, or ``None`` until a complete line is buffered.

        ``max_length`` counts the line including its CRLF.  A longer line raises
        ``RemoteProtocolError`` as soon as that is certain, even before its CRLF arrives.
        """
        if max_length < _MIN_MAX_LENGTH:
            raise ValueError(f"max_length must be at least {_MIN_MAX_LENGTH}, got {max_length}")
        data = self._data
        end = data.find(_CRLF, self._search_from)
        if end < 0:
            if self._more:
                data = self._join()
                end = data.find(_CRLF, self._search_from)
            if end < 0:
                start = self._start
                # Even one more octet would complete the line beyond the limit.
                if len(data) - start >= max_length:
                    raise self._too_long(max_length)
                # Step back one octet so a CR at the very end is searched again with its LF.
                self._search_from = max(start, len(data) - 1)
                return None
        start = self._start
        after = end + 2  # past the CRLF
        if after - start > max_length:
            raise self._too_long(max_length)
        self._start = self._search_from = after
        return data[start:end]

    def _join(self) -> bytes:
        """Join the unread rest and the waiting chunks into ``_data`` (offsets rebased)."""
        start = self._start
        self._data = data = self._data[start:] + b"".join(self._more)
        self._more.clear()
        self._search_from -= start
        self._start = 0
        return data

    def __len__(self) -> int:
        """The number of bytes buffered and not yet returned."""
        return len(self._data) - self._start + sum(map(len, self._more))

    def __bool__(self) -> bool:
        """Whether any byte is buffered and not yet returned (without counting them)."""
        return self._start < len(self._data) or bool(self._more)

    def take_all(self) -> bytes:
        """Return everything buffered and empty the buffer."""
        rest = self._join()
        self._data = b""
        self._start = self._search_from = 0
        return rest

    def _too_long(self, max_length: int) -> RemoteProtocolError:
        start = self._start
        return RemoteProtocolError(
            f"reply line longer than {max_length} octets (including CRLF)",
            line=self._data[start : start + _EXCERPT],
        )
