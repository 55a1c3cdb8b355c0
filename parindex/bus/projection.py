"""Projections: apply the log in order, in batches, exactly once in effect.

Each projection stores the last stream sequence it applied in the same transaction as its rows
(docs/architecture.md, decision 4), so a crash between batches re-reads at most one batch and skips
what is already applied. The read position lives in PostgreSQL, not in a NATS consumer: dropping the
rows and the offset rebuilds from sequence 1. A message that cannot be decoded goes to the
dead-letter subject with its reason and the projection moves on; so does an event whose apply
fails deterministically (parindex.bus.faults): the failed batch is re-applied one event per
transaction to find it (docs/architecture.md, decision 17). Only transient errors are retried.
With the offset goes the id of the event it points at; before consuming, the runner checks that the
log still holds that event and rebuilds from sequence 1 if it does not (docs/architecture.md,
decision 24).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RawStreamMsg
from nats.js.errors import NotFoundError
from opentelemetry import trace
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import subjects
from contracts.events import BallotFields, Envelope, EventError, Payload, decode, decode_ballot
from parindex.bus.deadletter import dead_letter
from parindex.bus.faults import is_event_fault
from parindex.bus.pull import BatchPull, live_fetch, pending, stream_seq
from parindex.bus.reading import Decoder, read_event
from parindex.db import offsets
from parindex.telemetry import metrics
from parindex.telemetry.tracing import extract_trace

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parindex.projection")


class Rejected(Exception):
    """Raised by a projection for one event it cannot apply: it is dead-lettered, not retried."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


class OffsetMovedBack(Exception):
    """The stored offset is below what this runner applied: another instance or `parindex
    rebuild` reset the projection. Transient: run() resumes from the stored offset
    (docs/architecture.md, decision 26)."""


@dataclass(frozen=True)
class Event:
    seq: int
    subject: str
    envelope: Envelope
    # BallotFields: a projection's own decode may give a ballot as plain values (decision 43)
    payload: Payload | BallotFields
    headers: dict[str, str] | None = None


H = TypeVar("H", bound=Callable[..., Awaitable[None]])
_HANDLES = "__parindex_handles__"


def on(payload: type[Payload]) -> Callable[[H], H]:
    """Mark a projection method as the handler of one event type.

    The method takes (self, session, event, payload) with the payload annotated as that type;
    Dispatching checks the annotation when the class is made, so a handler cannot silently
    receive another event's payload.
    """

    def mark(method: H) -> H:
        setattr(method, _HANDLES, payload)
        return method

    return mark


class Dispatching:
    """Base of every projection: typed one-method-per-event dispatch (decision 28).

    Events without a handler are skipped. `begin` and `end` frame a batch, inside the
    runner's transaction, for projections that accumulate (scoring's tallies).
    """

    name: str
    handlers: ClassVar[dict[type[Payload], Callable[..., Awaitable[None]]]] = {}
    # Set by the runner: a catch-up batch with more batches to follow. A projection may leave
    # rows derived from all its data to a later batch, if it records that in the same
    # transaction (scoring's results; docs/architecture.md, decision 43).
    more_follows: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[type[Payload], Callable[..., Awaitable[None]]] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                payload = getattr(attr, _HANDLES, None)
                if payload is None:
                    continue
                declared = list(inspect.signature(attr).parameters.values())[-1].annotation
                if declared not in (payload, payload.__name__):
                    raise TypeError(f"{cls.__name__}.{attr.__name__} handles {payload.__name__}")
                handlers[payload] = attr
        cls.handlers = handlers

    @classmethod
    def reads(cls) -> frozenset[str]:
        """The event types this projection applies."""
        return frozenset(p.__name__ for p in cls.handlers)

    async def begin(self, session: AsyncSession) -> None:
        """Before a batch's first event."""

    async def end(self, session: AsyncSession) -> None:
        """After a batch's last event."""

    async def apply(self, session: AsyncSession, events: Sequence[Event]) -> None:
        # The runner holds the offset row's lock and passes only events past it (decision 12).
        await self.begin(session)
        handlers = self.handlers
        for e in events:
            p = e.payload
            if isinstance(p, BallotFields):
                await self.ballot_fields(session, e, p)
                continue
            handler = handlers.get(type(p))
            if handler is not None:
                await handler(self, session, e, p)
        await self.end(session)

    async def ballot_fields(self, session: AsyncSession, e: Event, p: BallotFields) -> None:
        """A ballot as plain values; only a projection that decodes them (FastBallots) gets one."""
        raise TypeError(f"{self.name} cannot apply BallotFields")


class FastBallots(Dispatching):
    """A projection that reads ballots as plain validated values (decision 43): the runner
    decodes BallotSubmitted in one pass of pydantic's Rust parser, without models, and falls
    back to `decode` for anything else and every refusal, so dead letters are unchanged."""

    def decode(self, raw: bytes, type_hint: str | None) -> tuple[Envelope, Payload | BallotFields]:
        if type_hint == "BallotSubmitted":
            fast = decode_ballot(raw)
            if fast is not None:
                return fast
        return decode(raw, type_hint)


class Projection(Protocol):
    name: str

    async def apply(self, session: AsyncSession, events: Sequence[Event]) -> None:
        """Apply a batch, in order, inside the caller's transaction."""

    async def reset(self, session: AsyncSession) -> None:
        """Delete every row this projection owns (rebuild from sequence 1)."""


async def read_offset(session: AsyncSession, name: str) -> int:
    """The stored offset (0: nothing applied). The table is the base migrations' (decision 28)."""
    seq = await session.scalar(
        text("SELECT seq FROM projection_offsets WHERE name = :n"), {"n": name}
    )
    return int(seq or 0)


async def ensure_event_id_column(session: AsyncSession) -> None:
    """Add last_event_id to a table created before decision 24; checked first so a running
    table is not locked for nothing."""
    if not await session.scalar(text(offsets.HAS_EVENT_ID)):
        await session.execute(text(offsets.ADD_EVENT_ID))


async def read_position(session: AsyncSession, name: str) -> tuple[int, str | None]:
    """The stored offset and the id of the event applied there (None: stored before decision 24)."""
    row = (
        await session.execute(
            text("SELECT seq, last_event_id FROM projection_offsets WHERE name = :n"), {"n": name}
        )
    ).first()
    return (int(row[0]), row[1]) if row else (0, None)


async def _save_offset(
    session: AsyncSession, name: str, seq: int, event_id: str | None = None
) -> None:
    await session.execute(
        text(
            "INSERT INTO projection_offsets (name, seq, last_event_id) VALUES (:n, :s, :e) "
            "ON CONFLICT (name) DO UPDATE SET seq = EXCLUDED.seq, "
            "last_event_id = EXCLUDED.last_event_id"
        ),
        {"n": name, "s": seq, "e": event_id},
    )


async def _advance(
    session: AsyncSession, name: str, current: int, seq: int, raw: dict[int, Msg]
) -> int:
    """Move the offset to seq with its event id, unless another instance is already there."""
    if seq > current:
        msg = raw.get(seq)
        await _save_offset(session, name, seq, _event_id(msg) if msg is not None else None)
        return seq
    return current


def _event_id(msg: Msg | RawStreamMsg) -> str | None:
    """The Nats-Msg-Id publish_event sets (the envelope's event_id); None for raw messages."""
    return (msg.headers or {}).get("Nats-Msg-Id") or None


async def _lock_offset(session: AsyncSession, name: str) -> int:
    await session.execute(
        text(
            "INSERT INTO projection_offsets (name, seq) VALUES (:n, 0) "
            "ON CONFLICT (name) DO NOTHING"
        ),
        {"n": name},
    )
    seq = await session.scalar(
        text("SELECT seq FROM projection_offsets WHERE name = :n FOR UPDATE"), {"n": name}
    )
    return int(seq or 0)


class ProjectionRunner:
    """Single writer for one projection: fetch a batch, apply it, commit it with its offset."""

    def __init__(
        self,
        nc: Client,
        sessions: async_sessionmaker,
        projection: Projection,
        *,
        filter_subject: str = "par.evt.>",
        batch_size: int = 500,
        catch_up_batch: int = 5_000,
        on_batch: Callable[[int], Awaitable[None]] | None = None,
        on_refused: Callable[[Msg, str], Awaitable[None]] | None = None,
        on_seen: Callable[[list[tuple[int, str]]], None] | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.sessions = sessions
        self.projection = projection
        self.filter_subject = filter_subject
        self.batch_size = batch_size
        self.catch_up_batch = max(catch_up_batch, batch_size)
        self.on_batch = on_batch
        # Where a refused event goes: the dead-letter stream, unless the reader may not write
        # there (the audit, as the read-only auditor, lists them in its report instead).
        self.on_refused = on_refused
        # Told (stream sequence, subject) of each batch before any of it is applied: survey's
        # memory of its own rows forgets what the batch is about to change (decision 49).
        self.on_seen = on_seen
        # When a live read last found nothing more on the log (time.monotonic()).
        self.caught_up_at = float("-inf")
        # A projection may decode its hot events faster (scoring's ballots, decision 43): the
        # same decoder on the live path, the rebuild and the audit; refusals are decode()'s.
        self._decode: Decoder = getattr(projection, "decode", decode)
        self.applied_seq = 0
        self._owes_settle = False  # a catch-up batch left derived rows to a later one
        self._stop = asyncio.Event()
        # True from finding the log behind the stored offset until the rebuild catches up;
        # /readyz reports not ready meanwhile (docs/architecture.md, decision 24).
        self.log_mismatch = False
        self._rebuild_until = 0
        self._column_ready = False
        # (stored offset, the log's last sequence) when the log was last found behind the offset,
        # kept after the rebuild so the admin portal can say it happened (decision 26).
        self.last_mismatch: tuple[int, int] | None = None

    async def reset(self) -> None:
        async with self.sessions.begin() as session:
            await ensure_event_id_column(session)
            await self.projection.reset(session)
            await _save_offset(session, self.projection.name, 0)
        self.applied_seq = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until stop(): reconnects and resumes from the stored offset after any error."""
        while not self._stop.is_set():
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "projection %s failed; resuming from its offset", self.projection.name
                )
                await asyncio.sleep(0.5)

    async def catch_up(self, until_seq: int | None = None) -> int:
        """Apply everything in the stream (or up to until_seq) and return; rebuild and audit."""
        if until_seq is None:
            info = await self.js.stream_info(subjects.EVENTS_STREAM)
            until_seq = info.state.last_seq
        until_seq = await self._last_of_filter(until_seq)
        while True:
            await self._consume(until_seq=until_seq)
            if self.applied_seq >= until_seq:
                return self.applied_seq

    async def _last_of_filter(self, until_seq: int) -> int:
        """`until_seq`, or the filter's last event if that comes first. A reader of one
        campaign's subjects (the audit) never sees another campaign's later events, so it
        waited for ever to reach the stream's last sequence."""
        if self.filter_subject == subjects.all_events():
            return until_seq
        try:
            last = await self.js.get_last_msg(subjects.EVENTS_STREAM, self.filter_subject)
        except NotFoundError:
            return 0  # nothing matches: nothing to apply
        return min(until_seq, int(last.seq or 0))

    async def verify_log(self) -> bool:
        """Check the log still holds the event at the stored offset; rebuild if not.

        Runs before every consume (start, reconnect, catch_up). A power loss can leave the log
        behind the offset, and events published since then reuse its sequences: trusting the
        offset would skip them (docs/architecture.md, decision 24). True when it rebuilt.
        """
        name = self.projection.name
        async with self.sessions.begin() as session:
            if not self._column_ready:
                await ensure_event_id_column(session)
                self._column_ready = True
            seq, event_id = await read_position(session, name)
        if seq == 0:
            return False
        last_seq = (await self.js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
        if last_seq < seq:
            found = f"the log ends at sequence {last_seq}"
        elif event_id is None:  # an offset stored before decision 24: only the length is known
            return False
        else:
            try:
                held = _event_id(await self.js.get_msg(subjects.EVENTS_STREAM, seq, direct=True))
            except NotFoundError:
                held = None
            if held == event_id:
                return False
            found = f"sequence {seq} holds event {held}"
        log.error(
            "projection %s: stored offset %s (event %s) is not in the log: %s; "
            "rebuilding from sequence 1",
            name,
            seq,
            event_id,
            found,
        )
        self.log_mismatch = True
        self.last_mismatch = (seq, last_seq)
        metrics.projection_log_mismatch.labels(name).set(1)
        self._rebuild_until = last_seq
        async with self.sessions.begin() as session:
            # Another instance of this projection may have found it first and already be
            # rebuilding: reset only if the offset row is still the one found wrong.
            await _lock_offset(session, name)
            if await read_position(session, name) == (seq, event_id):
                await self.projection.reset(session)
                await _save_offset(session, name, 0)
        self.applied_seq = 0
        self._clear_alarm_if_caught_up()
        return True

    def _clear_alarm_if_caught_up(self) -> None:
        if self.applied_seq >= self._rebuild_until:
            self._clear_alarm()

    def _clear_alarm(self) -> None:
        if self.log_mismatch:
            self.log_mismatch = False
            metrics.projection_log_mismatch.labels(self.projection.name).set(0)
            log.info(
                "projection %s: rebuilt up to sequence %s", self.projection.name, self.applied_seq
            )

    async def _consume(self, until_seq: int | None = None) -> None:
        await self.verify_log()
        async with self.sessions.begin() as session:
            self.applied_seq = await read_offset(session, self.projection.name)
        if until_seq is not None and self.applied_seq >= until_seq:
            return
        if until_seq is not None:
            await self._catch_up_to(until_seq)
            return
        sub = await self.js.pull_subscribe(
            self.filter_subject,
            None,
            stream=subjects.EVENTS_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.applied_seq + 1,
                inactive_threshold=60,
            ),
        )
        reconnects = self.nc.stats["reconnects"]
        busy = False
        try:
            while not self._stop.is_set():
                if self.nc.stats["reconnects"] != reconnects:
                    # The server may have come back with a shorter log while our consumer
                    # survived: verify again before trusting it (decision 26).
                    log.info("projection %s: reconnected; verifying the log", self.projection.name)
                    return
                try:
                    msgs = await live_fetch(sub, self.batch_size, busy)
                except (NatsTimeout, TimeoutError):
                    busy = False
                    self.caught_up_at = time.monotonic()
                    self._clear_alarm()  # nothing left to fetch: the rebuild has caught up
                    continue
                busy = bool(msgs)
                if msgs:
                    if pending(msgs[-1]) == 0:
                        self.caught_up_at = time.monotonic()
                    await self._apply_batch(msgs)
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # connection may be gone; the server drops it when inactive
                pass

    async def _catch_up_to(self, until_seq: int) -> None:
        """Rebuild and audit: batches of `catch_up_batch` events, read ahead (issue #18).

        The same apply, offsets, dead letters and verification as the live path; only the
        batches are larger, so the projection writes its rows (and scoring recomputes its
        results) once per batch instead of once per 500 events.
        """
        pull = BatchPull(
            self.nc,
            subjects.EVENTS_STREAM,
            self.filter_subject,
            self.applied_seq + 1,
            batch=self.catch_up_batch,
            # Not no_wait: it answers with what the consumer's server holds at that instant, and
            # after cluster faults a rebuild once ended short of the live projection (cause not
            # proven). An empty answer after `wait` (1 s) is the end, as before decision 43.
        )
        await pull.start()
        try:
            with _young_collections_only():
                await self._catch_up_loop(pull, until_seq)
        finally:
            deferring = self._deferring()
            if deferring is not None:
                deferring.more_follows = False  # the live path never defers
            await pull.stop()
        if self._owes_settle:  # the last batch left work for one that never came
            async with self.sessions.begin() as session:
                await _lock_offset(session, self.projection.name)
                await self.projection.apply(session, [])
            self._owes_settle = False

    def _deferring(self) -> Dispatching | None:
        """The projection that may defer work to a later batch, also behind a wrapper that
        names it `inner` (parindex rebuild's reset guard)."""
        p = getattr(self.projection, "inner", self.projection)
        return p if isinstance(p, Dispatching) else None

    def _more_follows(self, value: bool) -> None:
        deferring = self._deferring()
        if deferring is not None:
            deferring.more_follows = value
            self._owes_settle = value

    async def _catch_up_loop(self, pull: BatchPull, until_seq: int) -> None:
        reconnects = self.nc.stats["reconnects"]
        pending: list[Msg] = []
        batches = 0
        while not self._stop.is_set():
            if self.nc.stats["reconnects"] != reconnects:
                log.info("projection %s: reconnected; verifying the log", self.projection.name)
                return
            msgs = [m for m in await pull.fetch() if stream_seq(m) <= until_seq]
            pending += msgs
            reached = bool(pending) and stream_seq(pending[-1]) >= until_seq
            if pending and (not msgs or reached or len(pending) >= self.catch_up_batch):
                batch, pending = pending, []
                self._more_follows(bool(msgs) and not reached)
                await self._apply_batch(batch)
                del batch
                batches += 1
                # This batch's cycles; the heap from before the catch-up stays frozen, and what
                # reached the old generation meanwhile is collected every tenth batch.
                gc.collect(2 if batches % 10 == 0 else 1)
            if not msgs:
                self._clear_alarm()  # nothing left to fetch: the rebuild has caught up
                return
            if self.applied_seq >= until_seq:
                return

    def _trace(self, events: list[Event], started: int) -> None:
        """One span per traced event, child of its publisher's span (headers carry context)."""
        for e in events:
            if not e.headers or "traceparent" not in e.headers:
                continue
            parent = extract_trace(e.headers)
            span = tracer.start_span(
                f"{self.projection.name} apply {e.envelope.type}",
                context=parent,
                kind=trace.SpanKind.CONSUMER,
                start_time=started,
            )
            span.set_attribute("messaging.nats.stream_sequence", e.seq)
            span.set_attribute("parindex.event_id", e.envelope.event_id)
            span.end()

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        if self.on_refused is not None:
            await self.on_refused(msg, reason)
            return
        await dead_letter(self.js, self.projection.name, msg, reason)  # counts events_failed

    async def _apply_batch(self, msgs: list[Msg]) -> None:
        if self.on_seen is not None:  # all of them before the first await
            self.on_seen([(stream_seq(m), m.subject) for m in msgs])
        events: list[Event] = []
        last = self.applied_seq
        raw: dict[int, Msg] = {}
        for m in msgs:
            seq = stream_seq(m)
            raw[seq] = m
            if seq <= self.applied_seq:
                continue
            last = seq
            try:
                # Each type on its own subject only: the bus checks who publishes on a subject,
                # not what (docs/architecture.md, decision 47).
                hint = (m.headers or {}).get("Parindex-Type")
                env, payload = read_event(m.data, m.subject, hint, self._decode)
            except EventError as exc:
                await self._dead_letter(m, str(exc))
                continue
            events.append(Event(seq, m.subject, env, payload, m.headers))
        if last == self.applied_seq:
            return
        started = time.time_ns()
        try:
            new_seq, events = await self._commit(events, last, raw)
        except Exception as exc:
            if not is_event_fault(exc):
                raise  # transient: run() resumes from the stored offset
            log.warning(
                "projection %s: batch up to seq %s failed (%s); applying one event at a time",
                self.projection.name,
                last,
                _reason(exc),
            )
            new_seq, events = await self._commit_one_by_one(events, last, raw)
        self.applied_seq = new_seq
        self._trace(events, started)
        metrics.events_consumed.labels(self.projection.name).inc(len(events))
        metrics.applied_seq.labels(self.projection.name).set(last)
        self._clear_alarm_if_caught_up()
        if self.on_batch is not None:
            await self.on_batch(last)

    async def _commit(
        self, events: list[Event], last: int, raw: dict[int, Msg]
    ) -> tuple[int, list[Event]]:
        """Apply the batch in one transaction with its offset; the new offset and what applied."""
        while True:
            try:
                async with self.sessions.begin() as session:
                    # Several instances may run one projection: the offset row is the lock, and
                    # whatever another instance applied meanwhile is skipped (exactly once).
                    current = await _lock_offset(session, self.projection.name)
                    if current < self.applied_seq:
                        raise OffsetMovedBack(f"offset {current} < applied {self.applied_seq}")
                    todo = [e for e in events if e.seq > current]
                    if todo:
                        await self.projection.apply(session, todo)
                    new_seq = await _advance(session, self.projection.name, current, last, raw)
                return new_seq, events
            except Rejected as rej:  # the transaction rolled back; apply the batch without it
                await self._dead_letter(raw[rej.seq], rej.reason)
                events = [e for e in events if e.seq != rej.seq]

    async def _commit_one_by_one(
        self, events: list[Event], last: int, raw: dict[int, Msg]
    ) -> tuple[int, list[Event]]:
        """Find the culprit: one transaction per event, each with its offset (exactly once).

        An event whose error is its own fault is dead-lettered and the offset moves past it;
        any other error propagates and the batch is retried from the stored offset
        (docs/architecture.md, decision 17).
        """
        applied: list[Event] = []
        for e in events:
            try:
                async with self.sessions.begin() as session:
                    current = await _lock_offset(session, self.projection.name)
                    if e.seq > current:
                        await self.projection.apply(session, [e])
                        await _advance(session, self.projection.name, current, e.seq, raw)
                applied.append(e)
                continue
            except Rejected as rej:
                reason = rej.reason
            except Exception as exc:
                if not is_event_fault(exc):
                    raise
                reason = _reason(exc)
            await self._dead_letter(raw[e.seq], reason)
            async with self.sessions.begin() as session:
                current = await _lock_offset(session, self.projection.name)
                await _advance(session, self.projection.name, current, e.seq, raw)
        async with self.sessions.begin() as session:  # past undecodable messages at the end
            current = await _lock_offset(session, self.projection.name)
            new_seq = await _advance(session, self.projection.name, current, last, raw)
        return new_seq, applied


@contextlib.contextmanager
def _young_collections_only() -> Iterator[None]:
    """Pause the cyclic garbage collector's automatic runs for a catch-up; close() resumes them.

    A catch-up holds a batch of thousands of decoded events while it allocates more, and
    CPython's automatic full collections then traverse the whole heap again and again: measured,
    more than half the rebuild's CPU (issue #18). Meanwhile the heap from before is frozen and
    the catch-up collects only the young generations, once per batch.
    """

    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def _reason(exc: BaseException) -> str:
    """The dead-letter reason: the error's class and first line, never a stack trace."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:1000]
