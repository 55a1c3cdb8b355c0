"""Rendering and SMTP: Vietnamese UTF-8 messages, sent with the stdlib in a worker thread.

Failures are classified so the sender can retry what may succeed later (4xx, connection
problems) and give up at once on what will not (a 5xx refusal of the recipient).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
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
    """kind: "invitation" or "reminder"; context per the templates (see sender._context)."""
    subject = _env.get_template(f"{kind}.subject.j2").render(context).strip()
    return Rendered(
        subject=" ".join(subject.split()),
        text=_env.get_template(f"{kind}.txt.j2").render(context),
        html=_env.get_template(f"{kind}.html.j2").render(context),
    )


def build_message(
    settings: Settings,
    to_name: str,
    to_email: str,
    rendered: Rendered,
    message_id: str,
    headers: dict[str, str],
) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((SENDER_NAME, settings.mail_from))
    msg["To"] = Address(display_name=to_name, addr_spec=to_email)
    msg["Subject"] = rendered.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id  # deterministic: a resend after a crash is the same message
    msg["Auto-Submitted"] = "auto-generated"
    for k, v in headers.items():
        msg[k] = v
    msg.set_content(rendered.text, charset="utf-8")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return msg


def send_blocking(settings: Settings, msg: EmailMessage, timeout: float) -> None:
    """One SMTP session per message (simple, and a broken session cannot poison the next)."""
    try:
        if settings.smtp_tls == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with client:
            if settings.smtp_tls == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                client.login(settings.smtp_user, settings.smtp_password)
            refused = client.send_message(msg)
            if refused:  # only one recipient: send_message raises if it was refused
                raise DeliveryError(f"refused: {refused}", permanent=True)
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


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"SMTP {code} {text}"[:500]
