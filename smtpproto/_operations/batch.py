"""Many messages over one session: whole transactions in flight, each message settled in order.

With PIPELINING, the end of one message's data may be followed, in the same write, by the next
message's MAIL, RCPT and DATA (RFC 2920 §3.1: the end of data does not end a group), so a message
costs one round trip.  With CHUNKING too, ``BDAT … LAST`` carries a whole message and ends no
group either, so a window of whole transactions travels at once, bounded by
:class:`~smtpproto.TransactionWindow`.  Without PIPELINING the messages go one after the other.

Each message ends as a :class:`~smtpproto.SendResult` or as the error that stopped it.  A refused
message never touches the next (RSET where the state needs it); a 421 or a lost connection
settles every message in flight as not delivered.  ``Session.send_message`` is the batch of one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from smtpproto._machine.state import State
from smtpproto._wire.errors import (
    ConnectionLostError,
    DataRefused,
    RecipientsRefused,
    ReplyError,
    SenderRefused,
    SMTPError,
    UnexpectedReplyCode,
)
from smtpproto._wire.events import Bdat, Command, Data, EndOfMessage, Quit, RcptTo, Reply, Rset
from smtpproto._wire.results import RecipientResult, SendResult
from smtpproto.driver import Operation

from .channel import FATAL_ERRORS
from .message import BodyReader, OutgoingMessage
from .signing import signed

if TYPE_CHECKING:
    from .session import Session

__all__ = ["PIPELINE_GROUP", "Batch", "MessageOutcome", "result_of"]

#: What each message of a batch comes to: its result, or the error that stopped it.
MessageOutcome = SendResult | SMTPError

# Commands written before reading replies under PIPELINING, for one transaction: small enough
# that neither side's socket buffer can fill and deadlock (RFC 2920 §3.1).  A transaction with
# more recipients goes alone, in groups of this size.
PIPELINE_GROUP = 50
# Commands without arguments are all alike: one instance each serves every message.
_DATA = Data()
_END_OF_MESSAGE = EndOfMessage()
_RSET = Rset()


class _Job:
    """One message of the batch: the recipients still to settle, and what it came to."""

    __slots__ = ("first", "message", "outcome", "results", "retried")

    def __init__(self, message: OutgoingMessage) -> None:
        self.message = message
        self.retried = False  # written again once, after a refused BDAT ahead of it
        self.first: SendResult | None = None  # its first transaction's result
        self.results: dict[str, RecipientResult] = {}
        self.outcome: MessageOutcome | None = None


class _Flight:
    """One mail transaction: its opening commands, written or not yet, and its body."""

    __slots__ = (
        "behind_refusal",
        "chunk",
        "commands",
        "job",
        "open_group",
        "reader",
        "recipients",
        "rset",
        "sent",
    )

    def __init__(
        self,
        job: _Job,
        recipients: list[str],
        commands: list[Command],
        chunk: bytes | None,
        reader: BodyReader | None,
    ) -> None:
        self.job = job
        self.recipients = recipients
        self.commands = commands  # MAIL, RCPT…, then DATA or BDAT LAST under PIPELINING
        self.chunk = chunk  # the whole body, for a BDAT LAST that carries it
        self.reader = reader  # the body, for DATA
        self.sent = False  # the commands were written in a pipelined group
        self.rset = False  # an RSET went just before them (its reply comes first)
        # Whether more may follow in its group: not while DATA waits for its 354 (RFC 2920 §3.1)
        self.open_group = chunk is not None
        self.behind_refusal = False  # written behind a BDAT that was refused

    @property
    def follow_up(self) -> bool:
        return self.job.first is not None


class _Retry(Exception):
    """A transaction written behind a refused BDAT had its MAIL refused: write it again."""


class Batch:
    """The messages of one ``Session.send_messages`` call, and those of their transactions in
    flight.  :meth:`next_outcome` settles them one at a time, in order."""

    __slots__ = (
        "_done",
        "_exhausted",
        "_flights",
        "_follow_ups",
        "_jobs",
        "_messages",
        "_need_rset",
        "_peeked",
        "_quit",
        "_quit_sent",
        "_raising",
        "_ready",
        "_session",
        "_stopping",
    )

    def __init__(
        self,
        session: Session,
        messages: Iterable[OutgoingMessage],
        *,
        quit: bool = False,
        raising: bool = False,
    ) -> None:
        self._session = session
        self._raising = raising  # an error is raised, not handed out (send_message)
        self._messages: Iterator[OutgoingMessage] = iter(messages)
        self._quit = quit
        self._quit_sent = False
        self._exhausted = False  # the input has no message left
        self._peeked: OutgoingMessage | None = None  # taken from the input to see if it was over
        self._done = False  # and every outcome was handed out
        self._jobs: deque[_Job] = deque()  # taken from the input, outcome not handed out yet
        self._flights: deque[_Flight] = deque()  # commands written (or due), not settled
        self._ready: _Flight | None = None  # prepared, waiting until nothing is in flight
        self._follow_ups: deque[tuple[_Job, list[str]]] = deque()  # after a 452 (C10)
        self._need_rset = False  # transactions went behind a refused BDAT: RSET before more
        self._stopping = False  # a fatal error before a write: close once the flights settle

    # -- handing out outcomes ----------------------------------------------------------------

    def next_outcome(self) -> Operation[MessageOutcome | None]:
        """The outcome of the next message, in the order given; ``None`` after the last."""
        session = self._session
        while not (self._jobs and self._jobs[0].outcome is not None):
            if self._done:
                return None
            try:
                if session.closed and not self._flights:
                    self._refuse_next()
                    continue
                if self._room():  # write what may be written, then settle the oldest
                    commands = yield from self._riders(after_content=False)
                    if commands:
                        yield from session._send(*commands)
                if self._flights:
                    yield from self._settle_oldest()
                elif self._stopping:
                    yield from session._close()
                elif self._exhausted and not (self._jobs or self._follow_ups or self._ready):
                    self._done = True
                    yield from self._finish()
            except SMTPError as exc:
                # Refusals are outcomes already: what gets here is fatal, or dropped the
                # connection (content found mid-stream that the server cannot take, a body that
                # failed to read).  Nothing in flight was delivered.
                yield from session._close()
                yield from self._settle_all(exc)
            except GeneratorExit:  # the driver was interrupted mid-exchange: the line is gone
                session.connection_lost()
                raise
        outcome = self._jobs.popleft().outcome
        if self._raising and isinstance(outcome, SMTPError):
            raise outcome
        return outcome

    def abandon(self) -> Operation[None]:
        """Stop before the end: the caller wants no more outcomes.  Transactions in flight are
        dropped with the connection (none of them can then be delivered: a message whose end of
        data is unanswered is not); with none in flight the session stays usable, or QUITs if
        the batch was to."""
        if self._done:
            return
        self._done = True
        flights = self._take_flights()
        for flight in flights:
            yield from self._release(flight)
        if any(flight.sent or flight.rset for flight in flights) or self._quit_sent:
            yield from self._session._close()
        elif self._quit:
            yield from self._session._quit_and_close()

    @property
    def finished(self) -> bool:
        """Whether every outcome was handed out (or the batch was abandoned)."""
        return self._done

    def _refuse_next(self) -> None:
        """On a closed session, what is left fails at once, without I/O."""
        error = ConnectionLostError("the next command", "the connection is closed; open a new one")
        if self._follow_ups:
            job, recipients = self._follow_ups.popleft()
            self._follow_up_failed(job, recipients, error)
            return
        message = self._take_message()
        if message is None:
            self._done = True
            return
        job = _Job(message)
        job.outcome = error
        self._jobs.append(job)

    def _take_flights(self) -> list[_Flight]:
        """Every flight in flight, and the one prepared: taken off the batch."""
        flights = [*self._flights, *([self._ready] if self._ready is not None else [])]
        self._flights.clear()
        self._ready = None
        return flights

    def _settle_all(self, error: SMTPError) -> Operation[None]:
        """After a fatal error: every message in flight, and one prepared, was not delivered."""
        flights = self._take_flights()
        for flight in flights:
            yield from self._release(flight)
            self._settle(flight, error)

    def _finish(self) -> Operation[None]:
        """The batch is over: QUIT if asked (its reply may already be on its way)."""
        session = self._session
        if self._quit_sent:
            answered = False
            try:
                yield from session._read_reply()
                answered = True
            except SMTPError:
                pass
            yield from session._close(graceful=answered)
        elif self._quit:
            yield from session._quit_and_close()

    # -- writing transactions ----------------------------------------------------------------

    def _room(self) -> bool:
        """Whether to write more transactions now: nothing is in flight, or (PIPELINING) the
        window is half empty behind a transaction that leaves its group open."""
        if self._quit_sent or self._stopping:
            return False
        flights = self._flights
        window = self._session.options.window
        return not flights or (self._stacks() and len(flights) <= window.messages // 2)

    def _has_room(self) -> bool:
        """Whether one more transaction fits in the window."""
        flights = self._flights
        if not flights:
            return True
        window = self._session.options.window
        octets = sum(len(f.chunk) for f in flights if f.chunk is not None)
        return self._stacks() and len(flights) < window.messages and octets < window.octets

    def _stacks(self) -> bool:
        """Another transaction may join the last one in flight (PIPELINING, its group open)."""
        return self._session.conn.extensions.pipelining and self._flights[-1].open_group

    def _riders(self, *, after_content: bool) -> Operation[list[Command]]:
        """Prepare the transactions that may go in the write being made; their commands (QUIT
        last, when the messages are over and the caller asked for it)."""
        commands: list[Command] = []
        while not self._stopping and self._more_to_write() and self._has_room():
            flight = yield from self._next_flight()
            if flight is None:
                break
            pipelining = self._session.conn.extensions.pipelining
            if not pipelining or len(flight.commands) > PIPELINE_GROUP:
                if self._flights:
                    self._ready = flight  # goes alone, once nothing is in flight
                else:
                    self._flights.append(flight)  # exchanged by _conclude
                break
            if self._need_rset or self._session.conn.state is State.BDAT_FAILED:
                flight.rset, self._need_rset = True, False
                commands.append(_RSET)
            commands += flight.commands
            flight.sent = True
            self._flights.append(flight)
            if flight.chunk is None:
                break  # DATA ends the group
        if (commands or after_content) and self._quit_may_ride() and not self._more_to_write():
            commands.append(Quit())
            self._quit_sent = True
        return commands

    def _quit_may_ride(self) -> bool:
        """QUIT may end the write being made: asked for, and behind a group left open."""
        flights = self._flights
        return (
            self._quit
            and self._session.conn.extensions.pipelining
            and bool(flights)
            and flights[-1].open_group
        )

    def _more_to_write(self) -> bool:
        """Whether a transaction is left to write (a follow-up, or a message)."""
        # (A message read ahead, _peeked, means the input is not exhausted.)
        return not self._exhausted or self._ready is not None or bool(self._follow_ups)

    def _next_flight(self) -> Operation[_Flight | None]:
        """The next transaction to write: one prepared earlier, a follow-up, or the next
        message's; ``None`` when the messages are over.  A message that cannot go to this server
        (too large, 8-bit content, an unreadable body) settles here, before any write."""
        while True:
            if self._ready is not None:
                flight, self._ready = self._ready, None
                return flight
            if self._follow_ups:
                job, recipients = self._follow_ups.popleft()
            else:
                message = self._take_message()
                if message is None:
                    return None
                job = _Job(message)
                self._jobs.append(job)
                recipients = message.recipients
            reader = None  # a body in memory needs none: _send_content takes its bytes
            try:
                if job.message.options.dkim:  # once per message: a follow-up has the signed one
                    job.message = yield from signed(job.message)
                if job.message.body.data is None:
                    reader = yield from job.message.body.open()
                return self._prepare(job, recipients, reader)
            except SMTPError as exc:
                if reader is not None:
                    yield from reader.close()
                # Nothing was written for it; a fatal one closes the session once the
                # transactions in flight have settled.
                self._stopping = isinstance(exc, FATAL_ERRORS)
                if job.first is None:
                    job.outcome = exc
                else:
                    self._follow_up_failed(job, recipients, exc)

    def _take_message(self) -> OutgoingMessage | None:
        """The next message of the input, which is read one ahead: whether any is left is then
        known (for QUIT) without preparing it."""
        message = self._peeked
        if message is None and not self._exhausted:
            message = next(self._messages, None)
        self._peeked = None if message is None else next(self._messages, None)
        self._exhausted = self._peeked is None
        return message

    def _prepare(self, job: _Job, recipients: list[str], reader: BodyReader | None) -> _Flight:
        """The commands of a transaction for ``recipients`` of ``job``'s message."""
        session = self._session
        message = job.message
        ext = session.conn.extensions
        chunk = session._one_flight_body(message)
        size = message.size if reader is None else reader.size
        mail = session._mail_command(message, size, message.options)
        notify = message.options.notify if ext.dsn else None
        commands: list[Command] = [mail, *[RcptTo(r, notify) for r in recipients]]
        if ext.pipelining:
            commands.append(Bdat(chunk, last=True) if chunk is not None else _DATA)
        return _Flight(job, recipients, commands, chunk, reader)

    # -- settling transactions ---------------------------------------------------------------

    def _settle_oldest(self) -> Operation[None]:
        flight = self._flights[0]
        retry = False
        try:
            result: MessageOutcome = yield from self._conclude(flight)
        except (SenderRefused, RecipientsRefused, DataRefused, UnexpectedReplyCode) as exc:
            result = exc
        except _Retry:
            retry = True
        except SMTPError:
            if flight.reader is not None:
                yield from self._release(flight)
            raise
        # (An interrupted operation yields nothing more: its driver drops what it holds.)
        if flight.reader is not None:
            yield from self._release(flight)
        self._flights.popleft()
        if retry:
            self._follow_ups.appendleft((flight.job, flight.recipients))
            return
        self._settle(flight, result)
        if isinstance(result, UnexpectedReplyCode):
            # A code outside 2-5 ends its transaction (R5); with others in flight, the only
            # safe way out is to drop the connection.
            if self._flights or self._quit_sent:
                raise ConnectionLostError("the transaction", f"dropped after {result}")
            yield from self._session._end_transaction()

    def _release(self, flight: _Flight) -> Operation[None]:
        """Let go of ``flight``'s body, if it still holds one."""
        reader, flight.reader = flight.reader, None
        if reader is not None:
            yield from reader.close()

    def _conclude(self, flight: _Flight) -> Operation[SendResult]:
        """Read the replies to ``flight``'s commands; with DATA, send its content (and the
        transactions that ride behind it); its result, or its refusal raised."""
        session = self._session
        recipients = flight.recipients
        # A reply already in is taken without a generator of its own: replies to a group
        # mostly arrive together.
        read = session._next_reply
        if flight.rset:
            read() or (yield from session._await_reply())
        if flight.sent:
            replies = []
            for _ in flight.commands:
                replies.append(read() or (yield from session._await_reply()))
        else:
            replies = yield from session._exchange(flight.commands)
        mail_reply = replies[0]
        rcpt_replies = replies[1 : 1 + len(recipients)]
        # Short of replies only when MAIL was refused without PIPELINING (no RCPT was sent).
        pairs = zip(recipients, rcpt_replies, strict=False)
        accepted = [r for r, reply in pairs if reply.is_positive]
        tail_reply = replies[-1] if len(replies) == len(recipients) + 2 else None
        if not accepted or not mail_reply.is_positive:
            if not mail_reply.is_positive and flight.behind_refusal and not flight.job.retried:
                # The server may have held the refused transaction ahead: RSET, then again.
                flight.job.retried, self._need_rset = True, True
                raise _Retry
            yield from self._abandon(flight, tail_reply)
            if not mail_reply.is_positive:
                raise SenderRefused("the server refused the sender", mail_reply)
            raise RecipientsRefused(result_of(recipients, rcpt_replies, {}, mail_reply))
        if flight.chunk is not None:
            assert tail_reply is not None  # a BDAT LAST only with PIPELINING
            finals = [tail_reply]
            if session.conn.lmtp:
                finals += yield from session._lmtp_more(len(accepted))
            if not finals[0].is_positive:
                yield from self._reset_after_bdat()
        else:
            refusal = None
            if tail_reply is None or not tail_reply.is_intermediate:
                refusal = yield from session._start_data(tail_reply)
            if refusal is not None:
                refused = result_of(
                    recipients, rcpt_replies, dict.fromkeys(accepted, refusal), mail_reply, refusal
                )
                raise DataRefused("the server refused DATA", refusal, refused)
            yield from self._send_content(flight)
            finals = [read() or (yield from session._await_reply())]
            if session.conn.lmtp:
                finals += yield from session._lmtp_more(len(accepted))
        if session.conn.awaiting is None:  # nothing outstanding behind it
            session._no_unsolicited_reply()  # a reply too many: the last one proves nothing
        return session._final_results(recipients, rcpt_replies, accepted, finals, mail_reply)

    def _send_content(self, flight: _Flight) -> Operation[None]:
        """The content and its end, with the next transactions in the same write."""
        session = self._session
        source = flight.reader or flight.job.message.body.data
        assert source is not None  # a stream has a reader, a body in memory its bytes
        held = yield from session._stream_but_last(source)
        if flight.reader is not None:
            yield from self._release(flight)
        flight.open_group = True  # its end of data is in this write: others may follow
        riders: list[Command] = []
        if self._quit or self._more_to_write():
            riders = yield from self._riders(after_content=True)
        yield from session._end_content(held, riders)

    def _abandon(self, flight: _Flight, tail_reply: Reply | None) -> Operation[None]:
        """End a transaction that will not carry a message, leaving the session usable."""
        if flight.chunk is not None:
            yield from self._reset_after_bdat()
            return
        session = self._session
        if tail_reply is not None and tail_reply.is_intermediate:
            # DATA got 354 although nobody was accepted: end it with a lone dot (RFC 2920 §3.1).
            yield from session._send(_END_OF_MESSAGE)
            yield from session._read_reply()
        yield from session.command(_RSET)

    def _reset_after_bdat(self) -> Operation[None]:
        """After a refused BDAT, RSET (RFC 3030 §2): now, when nothing else is in flight, else
        before the next write; the transactions already written behind it may be refused for
        want of it, and are then written again, once."""
        if self._quit_sent:
            return
        if len(self._flights) == 1:
            self._need_rset = False
            yield from self._session.command(_RSET)
            return
        self._need_rset = True
        for behind in self._flights:
            behind.behind_refusal = True

    def _settle(self, flight: _Flight, outcome: MessageOutcome) -> None:
        """Record what ``flight`` came to for its message; a 452 may defer recipients to a
        further transaction (C10)."""
        job = flight.job
        if flight.follow_up:
            if isinstance(outcome, SMTPError):
                self._follow_up_failed(job, flight.recipients, outcome)
                return
            job.results.update((r.recipient, r) for r in outcome.recipients)
        elif isinstance(outcome, SMTPError):
            job.outcome = outcome
            return
        else:
            job.first = outcome
            recipients = outcome.recipients
            if len(recipients) == len(job.message.recipients) and not any(
                map(_too_many, recipients)
            ):
                job.outcome = outcome  # the usual case: one transaction says it all
                return
            job.results = {r.recipient: r for r in recipients}
        self._defer_or_finish(job, flight.recipients)

    def _defer_or_finish(self, job: _Job, tried: list[str]) -> None:
        """Another transaction for the recipients deferred by "too many recipients" (C10), or
        the message's result."""
        deferred = [r for r in tried if _too_many(job.results[r])]
        message = job.message
        if (
            deferred
            and len(deferred) < len(tried)
            and not message.single_use
            and not self._quit_sent
            and not self._session.closed
        ):
            self._follow_ups.append((job, deferred))
            return
        first = job.first
        assert first is not None
        by_order = tuple(job.results[r] for r in message.recipients)
        job.outcome = SendResult(by_order, first.mail_reply, first.data_reply)

    def _follow_up_failed(self, job: _Job, recipients: list[str], exc: SMTPError) -> None:
        """A further transaction's failure becomes results, never the message's error: the
        recipients of the first transaction are already delivered and stay reported so (C10,
        C12).  Without a reply for them (a lost connection), it counts as a 451 (C16)."""
        if isinstance(exc, (RecipientsRefused, DataRefused)):
            results = exc.result.recipients
        else:
            reply = exc.reply if isinstance(exc, ReplyError) else None
            reply = reply or Reply.synthesized(451, f"4.4.2 {exc}")
            results = tuple(RecipientResult(r, reply) for r in recipients)
        job.results.update((r.recipient, r) for r in results)
        self._defer_or_finish(job, [])


def result_of(
    recipients: list[str],
    rcpt_replies: list[Reply],
    data_reply_of: dict[str, Reply],
    mail_reply: Reply | None = None,
    data_reply: Reply | None = None,
) -> SendResult:
    """The result of one transaction: each recipient with its RCPT reply, and the reply to the
    data for those accepted (``data_reply_of``)."""
    by_rcpt: dict[str, RecipientResult] = {}
    for rcpt, reply in zip(recipients, rcpt_replies, strict=True):
        data = data_reply_of.get(rcpt) if reply.is_positive else None
        if data is not None or rcpt not in by_rcpt:  # given twice: its accepted RCPT decides
            by_rcpt[rcpt] = RecipientResult(rcpt, reply, data)
    return SendResult(tuple(by_rcpt.values()), mail_reply, data_reply)


def _too_many(result: RecipientResult) -> bool:
    """A 452 to RCPT that means "too many recipients" (RFC 5321 §4.5.3.1.10, checklist C10)."""
    reply = result.rcpt_reply
    if result.accepted:
        return False
    status = None if reply.enhanced_status is None else str(reply.enhanced_status)
    if reply.code == 452:
        return status in (None, "4.5.3")
    # A 552 with 5.5.3 is the old way of saying it (RFC 5321 §4.5.3.1.10); a 552 for size is not.
    return reply.code == 552 and status == "5.5.3"
