"""A discard-everything SMTP server for benchmarks: answers as fast as Python can, stores nothing.

Run as ``python bench/_sink.py [--port N] [--chunking]``: it prints ``PORT <n>`` once it listens
on 127.0.0.1.  It offers PIPELINING and 8BITMIME (like smtp-sink, without SIZE or CHUNKING), and
with ``--chunking`` CHUNKING too (BDAT, RFC 3030).  It answers every command of a pipelined group
in one write, looks for the end of DATA with ``bytes.find`` over whole reads (a 200 MB message
costs it a few hundred ``find`` calls, not a loop per line), and skips a BDAT chunk by its
length.  It does no validation at all: it exists to keep the server out of the client's
measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

GREETING = b"220 sink ESMTP discard\r\n"
EHLO_REPLY = b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
EHLO_CHUNKING = EHLO_REPLY.replace(b"250 ENHANCED", b"250-CHUNKING\r\n250 ENHANCED")
OK = b"250 2.0.0 Ok\r\n"
# The reply to each command verb (the first four octets, upper-cased).
REPLIES = {
    b"EHLO": EHLO_REPLY,
    b"HELO": b"250 sink\r\n",
    b"MAIL": OK,
    b"RCPT": OK,
    b"RSET": OK,
    b"NOOP": OK,
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"QUIT": b"221 2.0.0 Bye\r\n",
}
UNKNOWN = b"502 5.5.2 Command not recognized\r\n"
QUEUED = b"250 2.0.0 Ok: discarded\r\n"
CHUNK_OK = b"250 2.0.0 Ok: chunk received\r\n"
BAD_BDAT = b"501 5.5.4 BDAT needs a size\r\n"
END_OF_DATA = b"\r\n.\r\n"
# Octets of the previous read kept to find an end of data split across two reads.
CARRY = len(END_OF_DATA) - 1


class DiscardProtocol(asyncio.Protocol):
    """One connection: command lines until DATA, then octets until the end-of-data line."""

    def __init__(self, chunking: bool = False) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunking = chunking
        self.replies = {**REPLIES, b"EHLO": EHLO_CHUNKING} if chunking else REPLIES
        self.pending = b""  # an incomplete command line
        self.in_data = False
        self.carry = b""  # the last octets of message data seen
        self.chunk_left = 0  # octets of a BDAT chunk still to skip
        self.chunk_reply = b""  # its reply, sent once the chunk is in

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(GREETING)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        out: list[bytes] = []
        while data:
            if self.chunk_left:
                data = self._chunk(data, out)
            elif self.in_data:
                data = self._message_data(data, out)
            else:
                data = self._commands(data, out)
        if out:
            self.transport.write(b"".join(out))

    def _message_data(self, data: bytes, out: list[bytes]) -> bytes:
        """Skip message data; returns what follows the end of data (empty while inside it)."""
        window = self.carry + data[:CARRY]
        end = window.find(END_OF_DATA)
        if end >= 0:
            rest_at = end + len(END_OF_DATA) - len(self.carry)
        else:
            end = data.find(END_OF_DATA)
            if end < 0:
                tail = data[-CARRY:]  # never copy the whole read just to keep its end
                self.carry = tail if len(tail) == CARRY else (self.carry + tail)[-CARRY:]
                return b""
            rest_at = end + len(END_OF_DATA)
        self.in_data = False
        out.append(QUEUED)
        return data[rest_at:]

    def _chunk(self, data: bytes, out: list[bytes]) -> bytes:
        """Skip a BDAT chunk; returns what follows it."""
        taken = min(self.chunk_left, len(data))
        self.chunk_left -= taken
        if not self.chunk_left:
            out.append(self.chunk_reply)
        return data[taken:]

    def _bdat(self, line: bytes, out: list[bytes]) -> None:
        """``BDAT <size> [LAST]``: its reply waits for the chunk (RFC 3030 §2)."""
        words = line.split()
        if len(words) < 2 or not words[1].isdigit():
            out.append(BAD_BDAT)
            return
        last = len(words) > 2 and words[2].upper() == b"LAST"
        self.chunk_reply = QUEUED if last else CHUNK_OK
        self.chunk_left = int(words[1])
        if not self.chunk_left:
            out.append(self.chunk_reply)

    def _commands(self, data: bytes, out: list[bytes]) -> bytes:
        """Answer complete command lines; returns the octets after DATA's line, if any."""
        assert self.transport is not None
        data = self.pending + data
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            verb = data[start : start + 4].upper()
            line_start, start = start, end + 1
            if verb == b"BDAT" and self.chunking:
                self._bdat(data[line_start:end], out)
                if self.chunk_left:
                    self.pending = b""
                    return data[start:]
                continue
            out.append(self.replies.get(verb, UNKNOWN))
            if verb == b"QUIT":
                self.transport.write(b"".join(out))
                out.clear()
                self.transport.close()
                self.pending = b""
                return b""
            if verb == b"DATA":
                self.in_data = True
                self.carry = b"\r\n"  # the DATA line's CRLF: a lone "." right away ends it
                self.pending = b""
                return data[start:]
        self.pending = data[start:]
        return b""


async def serve(port: int, chunking: bool) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: DiscardProtocol(chunking), "127.0.0.1", port, backlog=1024
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--chunking", action="store_true", help="offer CHUNKING (BDAT) too")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.chunking))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
