"""Rendering and SMTP: Vietnamese UTF-8 messages, sent with the stdlib in worker threads over a
few persistent SMTP sessions (SmtpPool).

Failures are classified so the sender can retry what may succeed later (4xx, connection
problems) and give up at once on what will not (a 5xx refusal of the recipient).
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from parindex.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"
SENDER_NAME = "Khảo sát Chỉ số CCHC (PAR Index)"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,  # a missing field must fail loudly, not mail a blank password
    keep_trailing_newline=True,
)


class DeliveryError(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def format_deadline(deadline: datetime, tz: str = "Asia/Ho_Chi_Minh") -> str:
    return deadline.astimezone(ZoneInfo(tz)).strftime("%d/%m/%Y %H:%M")


def render(kind: str, context: dict) -> Rendered:
    """kind: "invitation", "reminder" or "notice"; context per the templates (sender.py)."""
    subject = _env.get_template(f"{kind}.subject.j2").render(context).strip()
    return Rendered(
        subject=" ".join(subject.split()),
        text=_env.get_template(f"{kind}.txt.j2").render(context),
        html=_env.get_template(f"{kind}.html.j2").render(context),
    )


def _one_line(value: str) -> str:
    """Header values never carry a line break (no header injection, whatever the source)."""
    return " ".join(value.splitlines())


def build_message(
    settings: Settings,
    to_name: str,
    to_email: str,
    rendered: Rendered,
    message_id: str,
    headers: dict[str, str],
) -> Message:
    """A multipart/alternative UTF-8 message, built with the compat32 MIME classes.

    The modern Message API (policy SMTP, header registry) cost ~7 ms of CPU per message
    to build and flatten, half of notify's work per invitation; these classes produce the same
    MIME structure and RFC 2047 headers in ~0.5 ms (docs/architecture.md, decision 29).
    """
    msg = MIMEMultipart("alternative")
    msg["From"] = formataddr((SENDER_NAME, _one_line(settings.mail_from)), charset="utf-8")
    msg["To"] = formataddr((_one_line(to_name), _one_line(to_email)), charset="utf-8")
    subject = Header(_one_line(rendered.subject), "utf-8")
    msg["Subject"] = subject  # type: ignore[assignment]  # compat32 folds a Header itself
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    # deterministic: a resend after a crash is the same message
    msg["Message-ID"] = _one_line(message_id)
    msg["Auto-Submitted"] = "auto-generated"
    for k, v in headers.items():
        msg[k] = _one_line(v)
    msg.attach(MIMEText(rendered.text, "plain", "utf-8"))
    msg.attach(MIMEText(rendered.html, "html", "utf-8"))
    return msg


def _connect(settings: Settings, timeout: float) -> smtplib.SMTP:
    if settings.smtp_tls == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.smtp_host,
            settings.smtp_port,
            timeout=timeout,
            context=ssl.create_default_context(),
        )
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    try:
        if settings.smtp_tls == "starttls":
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password)
    except BaseException:
        _close(client)
        raise
    return client


def _close(client: smtplib.SMTP) -> None:
    """QUIT politely; a session that cannot even do that is simply dropped."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _transmit(client: smtplib.SMTP, msg: Message) -> None:
    refused = client.send_message(msg)
    if refused:  # only one recipient: send_message raises if it was refused
        raise DeliveryError(f"refused: {refused}", permanent=True)


@contextmanager
def _classified() -> Iterator[None]:
    """SMTP and socket errors as DeliveryError: retry what may succeed later, not the rest."""
    try:
        yield
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        raise DeliveryError(_reply(code, text), permanent=500 <= code < 600) from exc
    except smtplib.SMTPAuthenticationError as exc:
        # A configuration problem: every message would fail alike, so keep retrying them.
        raise DeliveryError(_reply(exc.smtp_code, exc.smtp_error), permanent=False) from exc
    except smtplib.SMTPResponseException as exc:
        permanent = 500 <= exc.smtp_code < 600
        raise DeliveryError(_reply(exc.smtp_code, exc.smtp_error), permanent=permanent) from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS
        raise DeliveryError(f"{type(exc).__name__}: {exc}"[:500], permanent=False) from exc


def send_blocking(settings: Settings, msg: Message, timeout: float) -> None:
    """One SMTP session for one message."""
    with _classified():
        client = _connect(settings, timeout)
        try:
            _transmit(client, msg)
        finally:
            _close(client)


@dataclass
class _Session:
    client: smtplib.SMTP
    sent: int = 0
    idle_since: float = field(default_factory=time.monotonic)


class SmtpPool:
    """Open SMTP sessions kept between messages, at most `size`, one message at a time each.

    A new session costs a TCP (and TLS, and AUTH) handshake per message; a wave of invitations
    reuses a few (docs/architecture.md, decision 29). Safety over reuse: a session that has
    been idle longer than `check_after_s` is asked NOOP first (the server may have closed it),
    a session is closed after any error (a broken one cannot poison the next message) and after
    `max_messages` (servers limit messages per session). `send` blocks: call it in a thread.
    """

    def __init__(
        self,
        settings: Settings,
        timeout: float,
        size: int,
        *,
        max_messages: int = 100,
        check_after_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self.size = max(1, size)
        self.max_messages = max_messages
        self.check_after_s = check_after_s
        self.opened = 0  # sessions opened so far (observable by tests and the benchmark)
        self._idle: list[_Session] = []
        self._lock = threading.Lock()
        self._closed = False

    def _take(self) -> _Session | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                session = self._idle.pop()
            if time.monotonic() - session.idle_since < self.check_after_s:
                return session
            try:
                if session.client.noop()[0] == 250:
                    return session
            except (smtplib.SMTPException, OSError):
                pass
            _close(session.client)

    def _give_back(self, session: _Session) -> None:
        session.idle_since = time.monotonic()
        with self._lock:
            keep = not self._closed and len(self._idle) < self.size
            if keep and session.sent < self.max_messages:
                self._idle.append(session)
                return
        _close(session.client)

    def send(self, msg: Message) -> None:
        with _classified():
            session = self._take()
            if session is None:
                session = _Session(_connect(self.settings, self.timeout))
                with self._lock:
                    self.opened += 1
            try:
                _transmit(session.client, msg)
            except BaseException:
                _close(session.client)
                raise
        session.sent += 1
        self._give_back(session)

    def close(self) -> None:
        """Close the idle sessions; sessions in use are closed when their message is done."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for session in idle:
            _close(session.client)


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"SMTP {code} {text}"[:500]
