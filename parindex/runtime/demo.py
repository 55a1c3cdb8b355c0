"""`parindex demo`: the Sóc Trăng 2023 campaign end to end on an accelerated clock.

Everything goes through the product's own doors: the campaign and the respondent lists are
loaded with the CLI, invitations leave through notify into the embedded SMTP catcher, the
simulated respondents read their credentials from those e-mails, log in at identity and
submit at survey over HTTP; the deadline comes from survey's scheduler, results from scoring,
and the audit replays the log.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import random
import re
import secrets
import sys
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from contracts.campaign import Campaign
from parindex.bus.credentials import ensure_secret
from parindex.clock import write_pace
from parindex.runtime.demo_data import people, weak_units, workbook
from parindex.runtime.practice import mail_text, run_cli, run_step
from parindex.runtime.up import Stack, existing_data

CAMPAIGN = "soctrang-2023"
CLOCK_START = datetime(2023, 9, 20, 7, 0, tzinfo=UTC) - timedelta(hours=7)  # 20/09 07:00 VN
CLOCK_END = datetime(2023, 10, 7, 7, 0, tzinfo=UTC) - timedelta(hours=7)
DEADLINE = datetime(2023, 10, 6, 23, 59, 59, tzinfo=UTC) - timedelta(hours=7)  # the campaign's
USER_RE = re.compile(r"Tên đăng nhập:\s*(\S+)")
PASS_RE = re.compile(r"Mật khẩu(?: mới)?:\s*(\S+)")
JSON_WRITE = {"X-Requested-With": "parindex"}  # what the survey API asks of JSON writes


@dataclass
class Respondent:
    username: str
    password: str
    unit_hint: str = ""
    decided: bool = False
    will_answer: bool = False
    answer_at: datetime | None = None
    submitted: bool = False
    refused: str = ""
    abandoned: bool = False
    persuaded: bool = False
    busy: bool = False  # a vote of theirs is queued or under way: never a second one


@dataclass
class DemoState:
    people: dict[str, Respondent] = field(default_factory=dict)
    mail_seen: set[str] = field(default_factory=set)
    invitations: int = 0
    reminders: int = 0
    submitted: int = 0
    refused: int = 0
    weak: set[str] = field(default_factory=set)  # units whose people answer less


def speed_for(minutes: float) -> float:
    return (CLOCK_END - CLOCK_START).total_seconds() / (minutes * 60)


@dataclass
class Pacer:
    """The demo's campaign time, shared with the services through the pace file (decision 40).

    It runs at `base` speed while the product keeps up, and slower while the letters of an
    opened wave are still going out or many people wait to vote: on a busy machine the demo
    takes longer than `--minutes` rather than showing a campaign nobody could answer.
    """

    path: Path
    base: float
    at: datetime = CLOCK_START
    wall: float = 0.0
    speed: float = 0.0

    def start(self) -> None:
        self.set_speed(self.base)

    def now(self) -> datetime:
        if not self.wall:
            return self.at
        return self.at + timedelta(seconds=(time.time() - self.wall) * self.speed)

    def set_speed(self, speed: float) -> None:
        if speed == self.speed:
            return
        self.at, self.speed = self.now(), speed
        self.wall = write_pace(self.path, self.at, speed)

    def follow(self, backlog: int, waiting: int) -> None:
        """Letters not yet out for opened waves, people not yet through the door."""
        if backlog < 150 and waiting < 100:
            self.set_speed(self.base)
        elif backlog < 600 and waiting < 300:
            self.set_speed(self.base / 3)
        else:
            self.set_speed(self.base / 10)


def invitation_times(camp: Campaign, seed: int) -> list[datetime]:
    """When each listed person's wave opens: the letters due by a given campaign time."""
    out = []
    for p in people(camp, seed):
        for wave in sorted(camp.waves, key=lambda w: w.opens_at):
            if any(
                m.form_code == p.form_code and (m.unit_codes is None or p.unit_code in m.unit_codes)
                for m in wave.members
            ):
                out.append(wave.opens_at)
                break
    return sorted(out)


def admin_argv(password: str) -> list[str]:
    """`parindex users add` for the demo's admin. The password is one token with its option:
    one that begins with '-' (1 in 64 of token_urlsafe's) was read by argparse as another
    option, the account was never made, and the printed admin password did not work."""
    return ["users", "add", "admin", "--role", "admin", f"--password={password}", "--replace"]


def _bar(done: float, width: int = 30) -> str:
    n = int(width * max(0.0, min(1.0, done)))
    return "█" * n + "·" * (width - n)


async def _read_mail(folder: Path, state: DemoState, rnd: random.Random, now: datetime) -> None:
    for path in sorted(folder.glob("*.eml")):  # noqa: ASYNC240 - a small local folder
        if path.name in state.mail_seen:
            continue
        state.mail_seen.add(path.name)
        raw = path.read_bytes()
        _, text = mail_text(raw)
        user, pw = USER_RE.search(text), PASS_RE.search(text)
        if user is None:
            continue
        person = state.people.get(user.group(1))
        if pw is not None:  # a first credential, or one that replaces the old once used
            person = person or state.people.setdefault(user.group(1), Respondent(user.group(1), ""))
            person.password = pw.group(1)
        elif person is None:  # a reminder without a password: the invitation's still works
            continue
        reminder = b"X-Parindex-Purpose: reminder:" in raw  # notify's header, not the wording
        state.reminders += reminder
        state.invitations += not reminder
        if not person.decided:
            person.decided = True
            person.will_answer = rnd.random() < 0.97
            # Most answer within a day of the letter, a few take a week (the late waves' people
            # have under five days before the deadline).
            person.answer_at = now + timedelta(hours=0.5 + min(rnd.expovariate(1 / 20), 24 * 8))
        elif reminder and person.abandoned and rnd.random() < 0.35:
            person.abandoned, person.persuaded = False, True  # the reminder worked
            person.answer_at = now + timedelta(hours=rnd.uniform(1, 30))


class SharedPool(httpx.AsyncBaseTransport):
    """One connection pool under many clients: closing a person's client must not close it
    (httpx closes a client's transport with the client)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Left open: the pool outlives each person's client (simulate closes it)."""


def _answers(form: dict, units: list[dict], rnd: random.Random, bias: float) -> list[dict]:
    out = []
    for unit in units:
        for criterion in form["criteria"]:
            for q in criterion["questions"]:
                weighted = [o for o in q["options"] if o["weight"] is not None]
                unknown = [o for o in q["options"] if o["weight"] is None]
                if unknown and rnd.random() < 0.04:
                    choice = unknown[0]
                else:  # better-run units get better answers
                    choice = max(
                        weighted,
                        key=lambda o: -abs(float(o["weight"]) - bias) + rnd.uniform(0, 0.45),
                    )
                out.append(
                    {
                        "unit_code": unit["code"],
                        "question_id": q["id"],
                        "option_code": choice["code"],
                    }
                )
    return out


async def _vote(
    endpoints: dict,
    person: Respondent,
    rnd: random.Random,
    state: DemoState,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    # Simulated people come in through the front door, as people do (decision 30).
    identity = survey = endpoints["gateway"]
    # Each person has their own client (their own cookies) over one shared connection pool:
    # a client of its own builds a TLS context, ~0.2 s of CPU on a busy 2-core machine, which
    # for 2,000 people was the demo's bottleneck (docs/architecture.md, decision 40).
    async with httpx.AsyncClient(
        timeout=30, follow_redirects=False, transport=transport, trust_env=False
    ) as http:
        page = await http.get(f"{identity}/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        login = await http.post(
            f"{identity}/login",
            data={"username": person.username, "password": person.password,
                  "csrf": csrf.group(1) if csrf else ""},
        )  # fmt: skip
        if login.status_code >= 400:
            person.refused = f"login {login.status_code}"
            return
        form = await http.get(f"{survey}/api/form")
        if form.status_code != 200:
            person.refused = f"form {form.status_code}"
            return
        data = form.json()
        if data.get("submitted"):
            person.submitted = True
            return
        unit_code = data["rated_units"][0]["code"]
        # Units differ: most focal points chase their people, a few do not (so they fall short).
        if len(data["rated_units"]) > 1:  # a delegate rating every unit
            propensity = 0.95
        else:
            propensity = 0.6 if unit_code in state.weak else 0.97
        if not person.persuaded and rnd.random() > propensity:
            person.abandoned = True
            return
        bias = 0.5 + 0.5 * ((zlib.crc32(unit_code[::-1].encode()) % 100) / 100)
        body = {
            "answers": _answers(data["form"], data["rated_units"], rnd, bias),
            "client_submission_id": secrets.token_hex(8),
        }
        # JSON writes carry the header a cross-site form cannot send (architecture decision 25)
        r = await http.post(f"{survey}/api/ballots", json=body, headers=JSON_WRITE)
        if r.status_code == 201:
            person.submitted = True
            state.submitted += 1
        else:
            person.refused = r.json().get("error", str(r.status_code))
            state.refused += 1


async def simulate(
    stack: Stack, endpoints: dict, pacer: Pacer, seed: int, camp: Campaign
) -> DemoState:
    rnd = random.Random(seed)
    state = DemoState(weak=weak_units(camp))
    due = invitation_times(camp, seed)
    mail_dir = stack.state_dir / "mail"
    sem = asyncio.Semaphore(16)
    pending: set[asyncio.Task] = set()
    pool = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=32))
    transport = SharedPool(pool)

    async def vote(p: Respondent) -> None:
        async with sem:
            await _vote(endpoints, p, rnd, state, transport)

    scoring = endpoints["gateway"]
    total_s = (CLOCK_END - CLOCK_START).total_seconds()
    next_check = 0.0
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            now = pacer.now()
            pacer.follow(bisect.bisect_right(due, now) - state.invitations, len(pending))
            await _read_mail(mail_dir, state, rnd, now)
            for p in state.people.values():
                if (
                    p.will_answer
                    and not (p.submitted or p.refused or p.abandoned or p.busy)
                    and p.answer_at is not None
                    and p.answer_at <= now
                ):
                    # Claimed until the task ends: waiting for a free slot, a person is not
                    # queued again on every turn (which once filled the slots with duplicates).
                    p.busy = True
                    task = asyncio.create_task(_claimed(vote, p))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            done = (now - CLOCK_START).total_seconds() / total_s
            sys.stderr.write(
                f"\r{_bar(done)} {now + timedelta(hours=7):%d/%m %H:%M}  "
                f"thư mời {state.invitations:>4}  nhắc {state.reminders:>4}  "
                f"phiếu {state.submitted:>4}  ×{pacer.speed:<7,.0f}"
            )
            sys.stderr.flush()
            # Results can only change at the deadline: asking before costs scoring and stalls
            # this loop (the people's timing) behind a busy server.
            if now >= DEADLINE and time.monotonic() >= next_check:
                next_check = time.monotonic() + 1
                try:
                    r = await http.get(f"{scoring}/api/results", params={"campaign": CAMPAIGN})
                    if r.status_code == 200 and r.json().get("status", "live") != "live":
                        break
                except httpx.HTTPError:
                    pass  # a busy server: ask again on the next turn
            if now > CLOCK_END + timedelta(days=2):
                raise TimeoutError("the deadline passed but no results were published")
            await asyncio.sleep(0.5)
        for task in pending:  # the campaign is over: the stragglers never answer
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    await pool.aclose()
    sys.stderr.write("\n")
    return state


async def _claimed(vote: Callable[[Respondent], Awaitable[None]], p: Respondent) -> None:
    try:
        await vote(p)
    except httpx.HTTPError:  # a dropped connection: the person tries again a little later
        p.refused = ""
        if p.answer_at is not None:
            p.answer_at += timedelta(hours=2)
    except Exception as exc:  # a bug of the simulation: counted once, never retried in a storm
        p.refused = type(exc).__name__
    finally:
        p.busy = False


def campaign_status(door: str) -> str | None:
    """None if the demo campaign is not on the log yet, else live / frozen / released."""
    try:
        r = httpx.get(f"{door}/api/results", params={"campaign": CAMPAIGN}, timeout=30)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    return str(r.json().get("status", "live"))


def summary(
    endpoints: dict, state: DemoState | None, audit_out: str, audit_ok: bool, admin_pw: str
) -> tuple[str, dict]:
    """The campaign's figures from the results; this run's own counts when it ran the voting."""
    # Frozen results are for staff until an admin publishes them (docs/architecture.md, 16).
    r, login = _results_as_admin(endpoints["gateway"], admin_pw)
    totals = [x for x in r["rows"] if x["form_code"] is None]
    forms = [x for x in r["rows"] if x["form_code"] is not None]
    short = sorted({x["unit_code"] for x in forms if x["quota"] and x["received"] < x["quota"]})
    # Summed over units: a delegate's ballot (form 01) counts once per unit it rates.
    per_form: dict[str, int] = {}
    for x in forms:
        per_form[x["form_code"]] = per_form.get(x["form_code"], 0) + x["received"]
    facts = {
        "units": len(totals),
        "units_short": short,
        "received_per_form_and_unit": per_form,
        "ballots_this_run": state.submitted if state is not None else None,
    }
    ranked = sorted(totals, key=lambda x: -float(x["adjusted"]))
    lines = ["", "parindex demo — Sóc Trăng 2023"]
    if state is None:
        lines.append(
            "  (chiến dịch đã kết thúc trong lần chạy trước / the campaign ended in an earlier "
            "run: no voting this time)"
        )
    else:
        errors = Counter(p.refused for p in state.people.values() if p.refused)
        lines += [
            f"  thư mời đã gửi / invitations sent : {state.invitations}",
            f"  thư nhắc / reminders sent          : {state.reminders}",
            f"  phiếu nhận lần này / ballots this run: {state.submitted} "
            f"(refused after the deadline or otherwise: {state.refused})",
            f"  không trả lời / never answered     : "
            f"{sum(1 for p in state.people.values() if not p.submitted)}"
            + (f" (errors: {dict(errors)})" if errors else ""),
        ]
    lines += [
        f"  đơn vị thiếu phiếu / units under quota: {len(short)} ({', '.join(short[:12])}"
        f"{'…' if len(short) > 12 else ''})",
        "  cao nhất / top: " + ", ".join(f"{x['unit_code']} {x['adjusted']}" for x in ranked[:3]),
        "  thấp nhất / bottom: "
        + ", ".join(f"{x['unit_code']} {x['adjusted']}" for x in ranked[-3:]),
        (
            f"  digest: {r['published']['digest']} (log up to #{r['published']['last_sequence']})"
            + (
                " — đã công bố / published"
                if r.get("status") == "released"
                else " — chưa công bố / not published: the admin publishes on the dashboard"
            )
            if r.get("published")
            else f"  digest: không xem được / not shown (the admin's sign-in answered {login})"
        ),
        f"  kiểm toán / audit: {'ĐẠT / OK' if audit_ok else 'KHÔNG ĐẠT / FAILED'}",
    ]
    return "\n".join(lines), facts


def _results_as_admin(door: str, admin_pw: str, within_s: float = 60.0) -> tuple[dict, str]:
    """The results as the admin sees them, and how the last sign-in answered.

    Right after the voting the services are still busy (the practice campaign's credentials are
    being hashed): a sign-in that was not answered with a session once left the summary with
    the public view and the demo ended on a traceback. It is tried again for a while.
    """
    deadline = time.monotonic() + within_s
    r: dict = {"rows": []}
    login = "nothing"
    while True:
        with httpx.Client(timeout=30) as http:
            try:
                page = http.get(f"{door}/login")
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
                answer = http.post(
                    f"{door}/login",
                    data={
                        "username": "admin",
                        "password": admin_pw,
                        "csrf": csrf.group(1) if csrf else "",
                    },
                )
                login = f"HTTP {answer.status_code}"
                got = http.get(f"{door}/api/results", params={"campaign": CAMPAIGN})
                if got.status_code == 200:
                    r = got.json()
            except httpx.HTTPError as exc:
                login = type(exc).__name__
        if r.get("published") or time.monotonic() >= deadline:
            return r, login
        time.sleep(2)


def front_door(endpoints: dict, admin_pw: str, admin_file: Path) -> dict[str, str | None]:
    """The links a visitor needs, all at the front door (docs/architecture.md, decision 30)."""
    public = endpoints["public"]
    return {
        "đăng nhập / login": endpoints["open"],
        "kết quả / results": f"{public}/dashboard?campaign={CAMPAIGN}",
        "tiến độ / progress": f"{public}/progress?campaign={CAMPAIGN}",
        "hộp thư / mail": f"{endpoints['mail']}/" if endpoints.get("mail") else None,
        "quản trị / admin": f"admin / {admin_pw}  (also in {admin_file})",
    }


def wait_for_stock(endpoints: dict, wanted: int, limit_s: float = 120.0) -> int:
    """Let identity hash the credentials ahead while campaign time stands still (decision 29),
    so the first waves' letters leave at mail speed; stop when the stock stops growing."""
    url = f"{endpoints['internal']['identity']}/metrics"
    deadline, best, still_since = time.monotonic() + limit_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            text = httpx.get(url, timeout=5).text
            found = re.search(r"^parindex_credential_stock\s+([0-9.e+]+)", text, re.M)
            stock = int(float(found.group(1))) if found else 0
        except httpx.HTTPError:
            stock = best
        if stock >= wanted:
            return stock
        if stock > best:
            best, still_since = stock, time.monotonic()
        elif time.monotonic() - still_since > 15:  # it re-reads its demand every 10 s
            return best  # the pool is busy with something else: go on, it hashes on demand
        time.sleep(0.5)
    return best


def run_demo(
    state_dir: Path,
    minutes: float,
    seed: int = 2023,
    keep_running: bool = True,
    port: int | None = None,
    fresh: bool = False,
) -> int:
    from parindex.runtime.practice import ensure_practice
    from parindex.runtime.up import run_forever

    speed = speed_for(minutes)
    # Campaign time stands still until the lists are in; a file of this run's own, so no
    # service can read an earlier run's start (docs/architecture.md, decision 40).
    epoch_file = state_dir.resolve() / "demo" / f"clock-epoch-{secrets.token_hex(4)}"
    stack = Stack(
        state_dir=state_dir,
        port=port,
        fresh=fresh,
        extra_env={
            "PARINDEX_CLOCK_START": CLOCK_START.isoformat(),
            "PARINDEX_CLOCK_SPEED": f"{speed:.3f}",
            "PARINDEX_CLOCK_EPOCH_FILE": str(epoch_file),
            "PARINDEX_MAIL_RATE": "200",
            # Demo only, below OWASP's minimum: 2,085 credentials and logins in a few minutes
            # on two cores. Production keeps identity's default (m=19 MiB, t=2).
            "PARINDEX_ARGON2_MEMORY_KIB": "4096",
            "PARINDEX_ARGON2_TIME": "1",
            "PARINDEX_CREDENTIAL_STOCK": "3000",
            "PARINDEX_NOTIFY_REMINDER_S": "1",
            "PARINDEX_NOTIFY_POLL_S": "0.2",
            # A wall second is hours of campaign time: a busy identity is asked again soon.
            "PARINDEX_NOTIFY_RETRY_BASE_S": "1",
            "PARINDEX_NOTIFY_RETRY_MAX_S": "4",
            "PARINDEX_NOTIFY_MAX_ATTEMPTS": "30",
        },
    )
    resumed = existing_data(stack.state_dir.resolve()) and not fresh
    endpoints = stack.start(timeout=120)
    for old in epoch_file.parent.glob("clock-epoch-*"):  # earlier runs' (we hold the lock)
        if old != epoch_file:
            old.unlink(missing_ok=True)
    if resumed:
        print(
            f"parindex: dùng tiếp dữ liệu trong / resuming the data in {stack.state_dir} "
            "(`--fresh` xoá và bắt đầu lại / deletes it and starts over)",
            flush=True,
        )
    env = dict(os.environ)
    env.update(stack.envs["identity"])
    try:
        from services.survey.campaign_file import load_shipped, shipped_campaign_path

        # One admin password per state dir, kept with the other secrets (mode 600).
        admin_file = stack.state_dir / "secrets" / "demo_admin"
        admin_pw = ensure_secret(stack.state_dir, "demo_admin", lambda: secrets.token_urlsafe(12))
        run_step(env, "the demo's admin account", *admin_argv(admin_pw))
        urls = front_door(endpoints, admin_pw, admin_file)
        # The door is open before the voting starts: print it now, not minutes later.
        print(f"\nparindex: sẵn sàng / ready — mở / open {endpoints['open']}")
        print("\n".join(f"  {k}: {v}" for k, v in urls.items()), flush=True)
        status = campaign_status(endpoints["gateway"])
        state: DemoState | None = None
        if status in ("frozen", "released"):
            print(
                f"\nparindex demo: {CAMPAIGN} đã kết thúc trong một lần chạy trước / already ran "
                f"to its deadline on {stack.state_dir}: its results are shown below, nobody votes "
                "again. `parindex up --demo --fresh` xoá dữ liệu và chạy lại / deletes this data "
                "and runs the demo again.",
                flush=True,
            )
        else:
            if status == "live":
                print(
                    f"\nparindex demo: {CAMPAIGN} đã có, chưa kết thúc / exists and is still "
                    "open (an earlier run was stopped): resuming it; ballots already counted stay"
                    " (`--fresh` starts over).",
                    flush=True,
                )
            print(f"parindex demo: {minutes:g} minutes for 20/09–07/10/2023 (×{speed:,.0f})")
            res = run_step(env, "campaign load", "campaign", "load", str(shipped_campaign_path()))
            print("  campaign:", (res.stdout or res.stderr).strip().splitlines()[-1:])
            lists = stack.state_dir / "demo" / "danh-sach-khao-sat-2023.xlsx"
            lists.parent.mkdir(exist_ok=True)
            shipped = load_shipped()
            lists.write_bytes(workbook(shipped, seed))
            res = run_step(
                env, "respondents import", "respondents", "import", str(lists),
                "--campaign", CAMPAIGN,
            )  # fmt: skip
            print("  respondents:", " ".join(res.stdout.split())[:300] or res.stderr[-300:])
            ready = wait_for_stock(endpoints, len(people(shipped, seed)))
            print(f"  mật khẩu đã tạo sẵn / credentials hashed ahead: {ready}", flush=True)
            # Campaign time starts now, for every service at once (docs/architecture.md, 40).
            pacer = Pacer(epoch_file, speed)
            pacer.start()
            state = asyncio.run(simulate(stack, endpoints, pacer, seed, shipped))
        audit = run_cli(env, "audit", "--campaign", CAMPAIGN)
        print(audit.stdout)
        text, facts = summary(endpoints, state, audit.stdout, audit.returncode == 0, admin_pw)
        print(text)
        practice, guests = ensure_practice(stack, env, endpoints)
        print("\n".join(f"  {k}: {v}" for k, v in urls.items()))
        print(practice, flush=True)
        (stack.state_dir / "demo").mkdir(exist_ok=True)
        (stack.state_dir / "demo" / "summary.json").write_text(
            json.dumps(
                {
                    "audit_ok": audit.returncode == 0,
                    "ran": state is not None,
                    **facts,
                    "practice_logins": guests,
                    # the admin's password stays in secrets/ (mode 600), not in this file
                    "urls": {k: v for k, v in urls.items() if not k.startswith("quản trị")},
                },
                ensure_ascii=False,
            )
        )
    except BaseException:
        stack.stop()
        raise
    if not keep_running:
        stack.stop()
        return 0
    print("\nparindex is running. Ctrl-C stops.", flush=True)
    return run_forever(stack)
