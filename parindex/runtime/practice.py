"""After the demo, a practice campaign that stays open, so a visitor can fill a real ballot.

The demo's campaign is over once it has shown its results, and nobody can try a form on it
any more. The practice campaign is the Sóc Trăng forms and units again under another id, one
wave open from the start and a deadline far away (2099: even at the demo's ×12,000 clock that
is days of wall time), with one guest per form. The guests' credentials come the product's own
way, from their invitation e-mails in the mail catcher, and are kept in
`secrets/demo_practice` (mode 600) so a later `up --demo` prints them again
(docs/architecture.md, decision 40).
"""

from __future__ import annotations

import email
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from openpyxl import Workbook

from contracts.campaign import Campaign
from parindex.bus.credentials import ensure_secret
from parindex.runtime.demo_data import HEADERS
from parindex.runtime.up import Stack

PRACTICE = "thuc-hanh"
DEADLINE = "2099-12-31T23:59:59+07:00"
GUEST_DOMAIN = "thuc-hanh.example.vn"
USER_RE = re.compile(r"Tên đăng nhập:\s*(\S+)")
PASS_RE = re.compile(r"Mật khẩu(?: mới)?:\s*(\S+)")


def practice_definition(shipped: Campaign) -> dict:
    """The shipped campaign as a practice one: its forms and units, one wave open already."""
    data = json.loads(shipped.model_dump_json())
    data.update(
        id=PRACTICE,
        version=1,
        name=f"Thực hành – {shipped.name}",
        deadline=DEADLINE,
        reminder_offsets_days=[],
        # before the demo clock's start (20/09/2023): open from the moment it is loaded
        waves=[
            {
                "id": "thu",
                "opens_at": "2023-09-01T07:00:00+07:00",
                "members": [{"form_code": f.code} for f in shipped.forms],
            }
        ],
    )
    return data


def guests(camp: Campaign) -> list[tuple[str, str, str, str]]:
    """(name, e-mail, unit name, form code): one guest per form, in a unit that form asks."""
    names = {u.code: u.name for u in camp.units}
    out = []
    for form in camp.forms:
        # as the demo's lists: a form-wide quota's people (delegates) belong to no unit
        unit = next((q.unit_code for q in camp.quotas if q.form_code == form.code), None)
        out.append(
            (f"Khách thực hành {form.code}", f"khach.{form.code}@{GUEST_DOMAIN}",
             names.get(unit or "", ""), form.code)
        )  # fmt: skip
    return out


def guest_workbook(camp: Campaign) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "Thực hành"
    ws.append(HEADERS)
    for i, (name, mail, unit, form) in enumerate(guests(camp), 1):
        ws.append([i, name, mail, unit, form, ""])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def mail_text(raw: bytes) -> tuple[str, str]:
    """(To, plain text) of a caught e-mail. The legacy parser: `policy.default` costs ~20 ms a
    message on a busy 2-core machine, which for the demo's 2,400 letters is most of a core."""
    msg = email.message_from_bytes(raw)
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = part.get_content_charset() or "utf-8"
                return str(msg.get("To", "")), payload.decode(charset, "replace")
    return str(msg.get("To", "")), ""


def _credentials(mail_dir: Path, wanted: set[str]) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(mail_dir.glob("*.eml")):
        raw = path.read_bytes()
        if not any(w.encode() in raw for w in wanted):
            continue
        to, text = mail_text(raw)
        who = next((w for w in wanted if w in to), None)
        if who is None:
            continue
        user, pw = USER_RE.search(text), PASS_RE.search(text)
        if user and pw:
            found[who] = (user.group(1), pw.group(1))
    return found


class StepFailed(RuntimeError):
    """A `parindex` command the demo cannot go on without answered with an error."""


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`parindex <args>` against the stack `env` names; the caller reads its answer."""
    return subprocess.run(
        [sys.executable, "-m", "parindex.cli", *args], env=env, capture_output=True, text=True
    )


def run_step(env: dict[str, str], what: str, *args: str) -> subprocess.CompletedProcess:
    """run_cli for a step the rest depends on: StepFailed, with the command's own words, when it
    fails, rather than a demo that goes on and prints figures of nothing."""
    res = run_cli(env, *args)
    if res.returncode != 0:
        said = (res.stderr or res.stdout).strip()[-500:] or f"exit code {res.returncode}"
        raise StepFailed(f"{what}: {said}")
    return res


def ensure_practice(
    stack: Stack, env: dict[str, str], endpoints: dict, wait_s: float = 60
) -> tuple[str, int]:
    """Load the practice campaign and its guests once; the lines that tell a visitor how in,
    and how many guest logins they name."""
    from services.survey.campaign_file import load_shipped, parse_campaign

    kept = stack.state_dir / "secrets" / "demo_practice"
    if not kept.exists():
        camp = parse_campaign(practice_definition(load_shipped()))
        folder = stack.state_dir / "demo"
        folder.mkdir(exist_ok=True)
        (folder / "thuc-hanh.json").write_text(
            json.dumps(practice_definition(load_shipped()), ensure_ascii=False)
        )
        (folder / "thuc-hanh.xlsx").write_bytes(guest_workbook(camp))
        try:
            run_step(env, "campaign load", "campaign", "load", str(folder / "thuc-hanh.json"))
            run_step(
                env, "respondents import", "respondents", "import",
                str(folder / "thuc-hanh.xlsx"), "--campaign", PRACTICE,
            )  # fmt: skip
        except StepFailed as exc:  # the demo's own results stand; say why there is no practice
            return f"  thực hành / practice: không chuẩn bị được / could not be prepared: {exc}", 0
        wanted = {mail: form for _, mail, _, form in guests(camp)}
        deadline = time.monotonic() + wait_s
        found: dict[str, tuple[str, str]] = {}
        while time.monotonic() < deadline and len(found) < len(wanted):
            found = _credentials(stack.state_dir / "mail", set(wanted))
            time.sleep(0.5)
        if not found:
            return "  thực hành / practice: the guests' invitations did not arrive (see /mail/)", 0
        lines = [f"{wanted[m]}: {u} / {p}" for m, (u, p) in found.items()]
        lines.sort()
        ensure_secret(stack.state_dir, "demo_practice", lambda: "\n".join(lines))
    logins = [line for line in kept.read_text().splitlines() if line.strip()]
    text = "\n".join(
        [
            f"\nthực hành / practice: đợt khảo sát «{PRACTICE}» vẫn mở — điền thử một "
            f"phiếu tại / is open: fill a ballot at {endpoints['open']}",
            f"  phiếu / form: tên đăng nhập / username / mật khẩu / password (also in {kept})",
            *(f"  {line}" for line in logins),
        ]
    )
    return text, len(logins)
