"""What a delivery is for, in words for the staff page, from its outbox purpose.

The outbox keys deliveries by purpose strings ("invitation:w1", "reminder:d-3",
"invitation:resend:2", ...) that make a delivery idempotent; people read a catalog key and
its values instead (docs/architecture.md, decision 40). Pure: no IO.
"""

from __future__ import annotations

import re
from datetime import date

_WAVE_NUMBER = re.compile(r"w(?:ave)?-?(\d+)", re.I)


def purpose_label(purpose: str) -> tuple[str, dict[str, str]]:
    """The catalog key (`nt.purpose.*`) and its values for one outbox purpose."""
    kind, _, rest = purpose.partition(":")
    if kind == "notice":
        return "nt.purpose.email_notice", {}
    if kind == "reminder":
        if rest.startswith("d-") and rest[2:].isdigit():
            return "nt.purpose.reminder_days", {"days": rest[2:]}
        if rest.startswith("now-"):
            try:
                day = date.fromisoformat(rest[4:])
            except ValueError:
                return "nt.purpose.reminder_now", {"day": ""}
            return "nt.purpose.reminder_now", {"day": day.strftime("%d/%m/%Y")}
        return "nt.purpose.reminder", {}
    if kind == "invitation":
        sub = rest.split(":", 1)[0]
        if sub == "email":
            return "nt.purpose.new_email", {}
        if sub == "resend":
            return "nt.purpose.resend", {}
        if sub == "reset":
            return "nt.purpose.reset", {}
        number = _WAVE_NUMBER.fullmatch(rest)
        return "nt.purpose.invitation", {"wave": number.group(1) if number else rest}
    return "nt.purpose.other", {}
