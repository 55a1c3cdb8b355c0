"""The sender: drains the outbox into SMTP, one row per short transaction, rate-limited.

Order of operations for one row (the "exactly once" argument):
  1. BEGIN; claim the row (status pending, due) with FOR UPDATE SKIP LOCKED — other workers and
     instances skip it; if this process dies, PostgreSQL drops the connection and the lock, and
     the row is simply pending again.
  2. Ask identity for a credential (never stored, never logged; none for a reminder to someone
     who holds one, decision 37), render, hand to SMTP
     over one of a few persistent sessions (mail.SmtpPool; a session is dropped after any
     error, so a failed message never leaves a half-used session for the next).
  3. UPDATE the row to sent; COMMIT.
  4. Publish InvitationSent/ReminderSent (event_id derived from the Message-ID, so a republish
     is deduplicated by JetStream), then flag the row event_published. A sweep republishes rows
     left sent-but-unpublished by a crash between 3 and 4; the projection also sets the flag
     when it reads the event.
Residual window: a crash (or a lost "250 OK") between the SMTP server accepting the message in
step 2 and the COMMIT in step 3 sends that e-mail again on restart. It cannot be closed without
a transactional SMTP, so it is made recognisable: the resend carries the same Message-ID, which
mail clients and many MTAs treat as a duplicate. A graceful stop never opens the window: workers
finish the row in hand before the service stops. Nothing is sent twice otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as day_start
from typing import Any, Literal
from urllib.parse import urljoin

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import subjects
from contracts.campaign import Campaign
from contracts.events import (
    DeliveryFailed,
    InvitationSent,
    NoticeSent,
    Payload,
    ReminderSent,
    make,
)
from contracts.rpc import CREDENTIAL, CredentialReply, CredentialRequest
from parindex.bus import rpc
from parindex.bus.publish import publish_event
from parindex.db.campaigns import ByRowVersion
from parindex.runtime import endpoints
from parindex.web.service import Runtime
from services.notify.config import NotifyConfig, event_id_for
from services.notify.mail import (
    DeliveryError,
    SmtpPool,
    build_message,
    format_deadline,
    render,
)
from services.notify.projection import load_campaign

log = logging.getLogger(__name__)

CLAIM = text(
    "SELECT o.id, o.campaign_id, o.respondent_id, o.purpose, o.message_id, o.attempts, "
    "o.causation_id, r.full_name, COALESCE(o.address, r.email) AS email, r.unit_code, "
    "r.form_code, r.withdrawn, "
    "c.xmin::text AS campaign_version, c.closed, EXISTS (SELECT 1 FROM notify_outbox i "
    "WHERE i.campaign_id = o.campaign_id AND i.respondent_id = o.respondent_id "
    "AND i.purpose LIKE 'invitation:%' AND i.status = 'sent') AS invited "
    "FROM notify_outbox o "
    "LEFT JOIN notify_respondents r USING (campaign_id, respondent_id) "
    "LEFT JOIN notify_campaigns c USING (campaign_id) "
    "WHERE o.status = 'pending' AND o.next_attempt_at <= now() "
    "ORDER BY o.next_attempt_at, o.id LIMIT 1 FOR UPDATE OF o SKIP LOCKED"
)


class TokenBucket:
    """At most `rate` sends per second on average, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = max(rate, 0.001)
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def survey_link(rt: Runtime, config: NotifyConfig) -> str:
    """Where respondents log in: identity's public address, not notify's own."""
    if config.survey_url:
        return config.survey_url
    found = endpoints.value(rt.settings.state_dir, "open")
    return found or rt.settings.public_url or "http://127.0.0.1:8000/"


def kind_of(purpose: str) -> str:
    if purpose.startswith("notice:"):
        return "notice"  # to the old address after a change (decision 48)
    return "reminder" if purpose.startswith("reminder:") else "invitation"


CredentialPurpose = Literal["invitation", "reminder", "reset"]


def credential_purpose(purpose: str, invited: bool) -> CredentialPurpose:
    """What a row asks identity for (docs/architecture.md, decision 37).

    A reminder to someone whose invitation went out asks for no new password (identity
    answers without one if a credential is held), so it never breaks the invitation's; a
    reminder that is the person's first mail carries one. Resends and resets are "reset":
    the mail says the new password replaces the old one once used.
    """
    if kind_of(purpose) == "reminder":
        return "reminder" if invited else "invitation"
    if purpose.startswith(("invitation:reset:", "invitation:resend:")):
        return "reset"
    return "invitation"


def reset_link(link: str) -> str:
    """The reset page beside the login the mail links to (one front door, decision 30)."""
    return urljoin(link, "reset")


def reminder_days(purpose: str, deadline: datetime) -> str:
    """Days left as a reminder says them: from its offset ("reminder:d-3"), or counted now for
    a reminder an admin asked for ("reminder:now-<day>", decision 34)."""
    if "d-" in purpose:
        return purpose.rsplit("d-", 1)[1]
    return str(max(0, (deadline.astimezone(UTC).date() - datetime.now(UTC).date()).days))


def delivery_event(row: dict[str, Any], campaign: Campaign | None) -> Payload:
    """The event a finished row owes the log; rebuilt identically by the republish sweep."""
    if row["status"] == "failed":
        return DeliveryFailed(
            respondent_id=row["respondent_id"],
            purpose=row["purpose"],
            attempts=row["attempts"],
            error=row["last_error"] or "",
        )
    if kind_of(row["purpose"]) == "notice":
        return NoticeSent(
            respondent_id=row["respondent_id"],
            notice=row["purpose"].split(":", 1)[1],
            message_id=row["message_id"],
        )
    if kind_of(row["purpose"]) == "reminder":
        return ReminderSent(
            respondent_id=row["respondent_id"],
            reminder=row["purpose"].split(":", 1)[1],
            message_id=row["message_id"],
        )
    wave_id = row["purpose"].split(":", 1)[1]
    if wave_id.startswith(("resend:", "reset:", "email:")):
        wave = campaign.wave_for(row["form_code"], row["unit_code"]) if campaign else None
        wave_id = wave.id if wave else "resend"
    return InvitationSent(
        respondent_id=row["respondent_id"], wave_id=wave_id, message_id=row["message_id"]
    )


def _loggable(reason: str) -> str:
    """The kind of failure without the server's text, which may name the recipient.

    A timestamped log line must not tie a person to a moment (docs/architecture.md,
    decision 15); the full reason stays in the outbox row for the admin page.
    """
    if reason.startswith("SMTP "):
        return " ".join(reason.split()[:2])
    return reason.split(":", 1)[0]


def _day(finished_on: date | None) -> datetime:
    """Midnight UTC of the delivery's day: the event must not date a person's mail to the second.

    docs/architecture.md, decision 15; the sweep rebuilds the same value from `finished_on`.
    """
    day = finished_on or datetime.now(UTC).date()
    return datetime.combine(day, day_start(0), UTC)


@dataclass
class Outcome:
    row: dict[str, Any]
    campaign: Campaign | None


class Sender:
    def __init__(self, rt: Runtime, config: NotifyConfig, ready: asyncio.Event) -> None:
        self.rt = rt
        self.config = config
        self.ready = ready
        self.bucket = TokenBucket(rt.settings.mail_rate_per_s)
        # One persistent SMTP session per worker at most (docs/architecture.md, decision 29).
        self.smtp = SmtpPool(rt.settings, config.smtp_timeout_s, max(1, config.workers))
        self.wake = asyncio.Event()
        self.campaigns = ByRowVersion()
        self._stop = asyncio.Event()
        self._workers: list[asyncio.Task] = []

    def start(self) -> None:
        for i in range(max(1, self.config.workers)):
            self._workers.append(self.rt.spawn(self._worker(), f"sender-{i}"))
        self.rt.spawn(self._sweep_loop(), "sender-sweep")

    async def stop(self) -> None:
        """Graceful: let each worker finish the row in hand, so a stop never resends."""
        self._stop.set()
        self.wake.set()
        if self._workers:
            await asyncio.wait(self._workers, timeout=self.config.smtp_timeout_s + 10)
        await asyncio.wait({asyncio.ensure_future(asyncio.to_thread(self.smtp.close))}, timeout=5)

    def poke(self) -> None:
        self.wake.set()

    async def _campaign(self, session: AsyncSession, row: Mapping[str, Any]) -> Campaign | None:
        """The letter's campaign, parsed once per version of its row: the claim reads the
        version, not the 84 kB definition, which was parsed again for every letter and took
        more than half of notify's loop in a wave (issue #18)."""
        version = row["campaign_version"]
        if version is None:
            return None
        campaign = self.campaigns.get(row["campaign_id"], version)
        if campaign is None:
            campaign = await load_campaign(session, row["campaign_id"])
            if campaign is not None:
                self.campaigns.put(row["campaign_id"], version, campaign)
        return campaign

    async def _worker(self) -> None:
        await self.ready.wait()
        while not self._stop.is_set():
            try:
                busy = await asyncio.shield(asyncio.ensure_future(self.process_one()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sender: unexpected error; retrying shortly")
                busy = False
                await asyncio.sleep(1)
            if not busy and not self._stop.is_set():
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), self.config.poll_s)
                except TimeoutError:
                    pass

    async def process_one(self) -> bool:
        """Claim, send and record one due row; False when nothing is due."""
        async with self.rt.sessions() as session, session.begin():
            found = (await session.execute(CLAIM)).mappings().first()
            if found is None:
                return False
            row = dict(found)
            campaign = await self._campaign(session, row)
            if campaign is None or row["closed"] or row["email"] is None or row["withdrawn"]:
                await session.execute(
                    text(
                        "UPDATE notify_outbox SET status = 'cancelled', "
                        "finished_on = (now() AT TIME ZONE 'UTC')::date, "
                        "next_attempt_at = NULL, "
                        "event_published = true, last_error = :why WHERE id = :id"
                    ),
                    {"id": row["id"], "why": "campaign closed or respondent gone"},
                )
                return True
            row["attempts"] += 1
            try:
                await self._deliver(row, campaign)
            except DeliveryError as exc:
                row["last_error"] = exc.reason
                if exc.permanent or row["attempts"] >= self.config.max_attempts:
                    row["status"] = "failed"
                    await session.execute(
                        text(
                            "UPDATE notify_outbox SET status = 'failed', attempts = :a, "
                            "last_error = :e, finished_on = (now() AT TIME ZONE 'UTC')::date, "
                            "next_attempt_at = now() WHERE id = :id"
                        ),
                        {"id": row["id"], "a": row["attempts"], "e": exc.reason},
                    )
                    log.warning("a delivery failed for good: %s", _loggable(exc.reason))
                else:
                    delay = min(
                        self.config.retry_base_s * 2 ** (row["attempts"] - 1),
                        self.config.retry_max_s,
                    ) * random.uniform(0.9, 1.1)
                    await session.execute(
                        text(
                            "UPDATE notify_outbox SET attempts = :a, last_error = :e, "
                            "next_attempt_at = now() + make_interval(secs => :d) WHERE id = :id"
                        ),
                        {"id": row["id"], "a": row["attempts"], "e": exc.reason, "d": delay},
                    )
                    log.info("a delivery will retry in %.1fs: %s", delay, _loggable(exc.reason))
                    return True
            else:
                row["status"] = "sent"
                await session.execute(
                    text(
                        "UPDATE notify_outbox SET status = 'sent', attempts = :a, "
                        "last_error = NULL, finished_on = (now() AT TIME ZONE 'UTC')::date, "
                        "next_attempt_at = now() WHERE id = :id"
                    ),
                    {"id": row["id"], "a": row["attempts"]},
                )
        # Committed: now tell the log. A crash here leaves event_published false: the sweep.
        await self._publish(Outcome(row, campaign))
        return True

    async def _deliver(self, row: dict[str, Any], campaign: Campaign) -> None:
        kind = kind_of(row["purpose"])
        await self.bucket.take()
        if kind == "notice":
            await self._notice(row, campaign)
            return
        cred = await self._credential(row, credential_purpose(row["purpose"], row["invited"]))
        days = reminder_days(row["purpose"], campaign.deadline) if kind == "reminder" else ""
        # read per send: `parindex up` writes endpoints.json after the services start
        link = survey_link(self.rt, self.config)
        context: dict[str, Any] = {
            "full_name": row["full_name"] or cred.full_name,
            "username": cred.username,
            # None: the invitation's password still works, and the mail says so (decision 37)
            "password": cred.password,
            "replaces": cred.replaces,
            "link": link,
            "reset_link": reset_link(link),
            "helpline": campaign.helpline,
            "deadline": format_deadline(campaign.deadline, campaign.timezone),
            "campaign_name": campaign.name,
            "province": campaign.province,
            "year": campaign.year,
            "days": days,
        }
        rendered = render(kind, context)
        msg = build_message(
            self.rt.settings,
            context["full_name"],
            row["email"] or cred.email or "",
            rendered,
            row["message_id"],
            {"X-Parindex-Campaign": row["campaign_id"], "X-Parindex-Purpose": row["purpose"]},
        )
        del context, cred  # the secret lives only in this message object until it is sent
        await asyncio.to_thread(self.smtp.send, msg)

    async def _notice(self, row: dict[str, Any], campaign: Campaign) -> None:
        """A letter without a credential to the row's own address (decision 48)."""
        name = row["full_name"] or ""
        context: dict[str, Any] = {
            "full_name": name,
            "helpline": campaign.helpline,
            "province": campaign.province,
            "year": campaign.year,
        }
        msg = build_message(
            self.rt.settings,
            name,
            row["email"],
            render("notice", context),
            row["message_id"],
            {"X-Parindex-Campaign": row["campaign_id"], "X-Parindex-Purpose": row["purpose"]},
        )
        await asyncio.to_thread(self.smtp.send, msg)

    async def _credential(self, row: dict[str, Any], purpose: CredentialPurpose) -> CredentialReply:
        request = CredentialRequest(
            campaign_id=row["campaign_id"],
            respondent_id=row["respondent_id"],
            purpose=purpose,
            # the address this mail goes to: the credential's holder is decided for it
            email=row["email"] or None,
        )
        try:
            return await rpc.call(
                self.rt.nc, CREDENTIAL, request, timeout=self.config.rpc_timeout_s
            )
        except rpc.RpcUnavailable as exc:
            raise DeliveryError(f"identity unavailable: {exc.message}", permanent=False) from exc
        except rpc.RpcError as exc:
            raise DeliveryError(
                f"identity gave no credential: {exc.code}", permanent=False
            ) from exc

    async def _publish(self, outcome: Outcome) -> None:
        row = outcome.row
        payload = delivery_event(row, outcome.campaign)
        envelope = make(
            payload,
            campaign_id=row["campaign_id"],
            producer="notify",
            causation_id=row.get("causation_id"),
            event_id=event_id_for(row["message_id"], row["status"]),
            occurred_at=_day(row.get("finished_on")),
        )
        try:
            await publish_event(
                self.rt.js, subjects.delivery(row["campaign_id"], row["respondent_id"]), envelope
            )
        except Exception:
            log.exception("publishing %s failed; the sweep will retry", envelope.type)
            return
        async with self.rt.sessions.begin() as session:
            # Losing this flag in a crash only means a republish that JetStream deduplicates
            # (same event id), so its commit need not wait for the WAL flush.
            await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            await session.execute(
                text(
                    "UPDATE notify_outbox SET event_published = true, next_attempt_at = NULL "
                    "WHERE id = :id"
                ),
                {"id": row["id"]},
            )

    async def sweep(self, older_than_s: float = 5.0) -> int:
        """Republish events for rows finished but never announced (a crash after COMMIT)."""
        async with self.rt.sessions() as session:
            rows = (
                (
                    await session.execute(
                        text(
                            "SELECT o.*, r.unit_code, r.form_code, "
                            "c.xmin::text AS campaign_version FROM notify_outbox o "
                            "LEFT JOIN notify_respondents r USING (campaign_id, respondent_id) "
                            "LEFT JOIN notify_campaigns c USING (campaign_id) "
                            "WHERE NOT o.event_published AND o.status IN ('sent', 'failed') "
                            "AND o.next_attempt_at < now() - make_interval(secs => :s) "
                            "ORDER BY o.id LIMIT 500"
                        ),
                        {"s": older_than_s},
                    )
                )
                .mappings()
                .all()
            )
            outcomes = [Outcome(dict(r), await self._campaign(session, r)) for r in rows]
        for outcome in outcomes:
            await self._publish(outcome)
        return len(rows)

    async def _sweep_loop(self) -> None:
        await self.ready.wait()
        while not self._stop.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("sender sweep failed")
            try:
                await asyncio.wait_for(self._stop.wait(), 30)
            except TimeoutError:
                pass
