"""Who has a counted ballot, derived from the log when asked, never stored per person.

A ballot's subject ends in the keyed pseudonym, so JetStream's per-subject counts say which
pseudonyms have a ballot; only this service holds the key that maps respondents to pseudonyms.
A ballot counts only if it is sequenced before the campaign's DeadlineReached (the log decides:
docs/architecture.md, decision 15), the same rule scoring applies. Nothing here is written
anywhere: no flag, no time, no order of arrival (docs/architecture.md, decision 15).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import subjects
from services.survey.secrecy import pseudonym


async def deadline_seq(js: JetStreamContext, campaign_id: str) -> int | None:
    """Stream sequence of the campaign's DeadlineReached, or None while there is none."""
    try:
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.deadline(campaign_id))
    except NotFoundError:
        return None
    return int(msg.seq or 0)


class DeadlineProbe:
    """`counted` for many ballots at once: one lookup answers every ballot acked before it.

    A lookup sent after a ballot's ack sees that ballot on the log, and so answers for it
    exactly as a lookup of its own would (the log orders the two). During a rush every ballot
    asked the stream for the deadline subject on its own, a JetStream API request each; now
    the ballots acked while one lookup is out wait for the next, which starts the moment that
    one ends (docs/architecture.md, decision 46). At most one lookup per campaign is out.
    """

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._out: dict[str, asyncio.Future[int | None]] = {}  # sent: too early to answer
        self._next: dict[str, asyncio.Future[int | None]] = {}  # to send when _out ends

    async def counted(self, campaign_id: str, ballot_seq: int) -> bool:
        """True when the acked ballot at `ballot_seq` counts (no deadline on the log before it)."""
        closed_at = await self.deadline_seq(campaign_id)
        return closed_at is None or ballot_seq < closed_at

    async def deadline_seq(self, campaign_id: str) -> int | None:
        """As the module's deadline_seq, from a lookup sent after this call began."""
        if campaign_id not in self._out:
            return await asyncio.shield(self._send(campaign_id))
        later = self._next.get(campaign_id)
        if later is None:
            later = self._next[campaign_id] = asyncio.get_running_loop().create_future()
            later.add_done_callback(_retrieve)
        return await asyncio.shield(later)

    def _send(self, campaign_id: str) -> asyncio.Future[int | None]:
        out = asyncio.ensure_future(deadline_seq(self.js, campaign_id))
        self._out[campaign_id] = out
        out.add_done_callback(lambda done: self._ended(campaign_id, done))
        return out

    def _ended(self, campaign_id: str, done: asyncio.Future[int | None]) -> None:
        del self._out[campaign_id]
        _retrieve(done)  # its waiters have it; nobody else will ask
        waiting = self._next.pop(campaign_id, None)
        if waiting is None:
            return
        follow = self._send(campaign_id)
        follow.add_done_callback(lambda f: _settle(waiting, f))


def _retrieve(f: asyncio.Future[int | None]) -> None:
    if not f.cancelled():
        f.exception()


def _settle(target: asyncio.Future[int | None], source: asyncio.Future[int | None]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


async def ballot_pseudonyms(js: JetStreamContext, campaign_id: str) -> set[str]:
    """Pseudonyms with a ballot on the log (counted or not), from per-subject counts."""
    prefix = subjects.ballot(campaign_id, "")
    info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=prefix + "*")
    return {s[len(prefix) :] for s, n in (info.state.subjects or {}).items() if n}


async def voted(
    js: JetStreamContext, ballot_key: str, campaign_id: str, respondent_ids: Iterable[str]
) -> set[str]:
    """The respondents among `respondent_ids` whose ballot counts."""
    present = await ballot_pseudonyms(js, campaign_id)
    by_pseudo = {pseudonym(ballot_key, campaign_id, r): r for r in respondent_ids}
    found = {p: r for p, r in by_pseudo.items() if p in present}
    closed_at = await deadline_seq(js, campaign_id)
    if closed_at is None:
        return set(found.values())
    late = await late_pseudonyms(js, campaign_id, closed_at)
    return {r for p, r in found.items() if p not in late}


async def late_pseudonyms(js: JetStreamContext, campaign_id: str, closed_at: int) -> set[str]:
    """Pseudonyms whose ballot was sequenced after the deadline: one lookup per late ballot."""
    prefix = subjects.ballot(campaign_id, "")
    late: set[str] = set()
    seq = closed_at + 1
    while True:
        try:
            msg = await js.get_msg(subjects.EVENTS_STREAM, seq=seq, subject=prefix + "*", next=True)
        except NotFoundError:
            return late
        late.add(str(msg.subject)[len(prefix) :])
        seq = int(msg.seq or seq) + 1
