"""Kill -9 and restart under load: nothing acknowledged is lost, nothing is counted twice.

A whole stack runs as real processes on loopback (Stack: nats-server, PostgreSQL, the four
services). A small campaign is loaded and its respondents imported with the CLI. For each
fault a fresh group of respondents submits over HTTP while the fault is injected:

  (a) survey killed with SIGKILL and restarted    (b) scoring killed with SIGKILL and restarted
  (c) nats-server stopped and started again on the same port and store directory
  (d) PostgreSQL fast-stopped and started again on the same port and data directory

Clients behave like a browser whose user presses "submit" again: on a connection error, a
timeout or a 5xx they retry with the same client_submission_id. After each fault, every
ballot answered 201 is on the stream exactly once, and the scoring live projection's digest
converges to the digest of a clean replay of the log (the audit, compare_live=True, OK).
Respondents authenticate with a session token signed by identity's own key (the token a login
at identity issues), so the load exercises survey, the log and scoring, not password hashing.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from contracts.events import BallotSubmitted, RespondentRegistered, decode
from parindex.bus.connection import connect
from parindex.runtime.embedded import free_port
from parindex.runtime.up import Stack
from parindex.settings import Settings
from parindex.web.auth import COOKIE, Principal, issue_token, load_or_create_private_key
from services.identity.service import key_path
from services.scoring.audit import audit
from services.survey.secrecy import pseudonym
from tests.survey.test_service import full_answers, read_all, small_campaign

pytestmark = pytest.mark.faults

PER_FAULT = 40  # respondents submitting during each fault
SPREAD_S = 8.0  # their submissions start spread over this many seconds
FAULT_AT_S = 3.0  # the fault is injected this long after the load starts
CLIENT_GIVES_UP_S = 60.0
CONVERGE_S = 45.0
FAULTS = ["kill -9 survey", "kill -9 scoring", "restart nats-server", "restart PostgreSQL"]
UNITS = {"H-A": "Huyện A", "H-B": "Huyện B"}


@dataclass
class Person:
    respondent_id: str
    unit_code: str | None
    form_code: str


@dataclass
class Outcome:
    receipt: str | None = None
    status: int | None = None
    attempts: int = 0
    errors: Counter = field(default_factory=Counter)


@dataclass
class Row:
    fault: str
    acknowledged: int
    acked_total: int
    in_log: int
    duplicates: int
    lost: int
    retries: int
    recover_s: float
    converge_s: float


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [sys.executable, "-m", "parindex.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def _respondent_list(path: Path, n: int) -> None:
    """n respondents: a third on the many-unit form 01, the rest on 02 in their district."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["STT", "Họ và tên", "Email", "Đơn vị", "Phiếu"])
        for i in range(1, n + 1):
            form = "01" if i % 3 == 0 else "02"
            unit = "" if form == "01" else UNITS["H-A" if i % 2 else "H-B"]
            w.writerow([i, f"Người Thử {i:03d}", f"nguoi{i:03d}@example.vn", unit, form])


async def _registered(js, campaign_id: str) -> list[Person]:
    people = []
    for m in await read_all(js, f"par.evt.{campaign_id}.respondent.>"):
        _, p = decode(m.data)
        if isinstance(p, RespondentRegistered):
            people.append(Person(p.respondent_id, p.unit_code, p.form_code))
    return people


async def _ballots_in_log(js, campaign_id: str) -> Counter:
    """Ballots per pseudonym: a receipt names no ballot (docs/architecture.md, decision 15), so
    acknowledged ballots are matched to the log through the person's pseudonym."""
    counts: Counter = Counter()
    for m in await read_all(js, f"par.evt.{campaign_id}.ballot.>"):
        _, p = decode(m.data)
        if isinstance(p, BallotSubmitted):
            counts[m.subject.rsplit(".", 1)[-1]] += 1
    return counts


async def _all_ready(http: httpx.AsyncClient, stack: Stack) -> bool:
    for port in stack.ports.values():
        try:
            r = await http.get(f"http://{stack.host}:{port}/readyz", timeout=1)
        except httpx.HTTPError:
            return False
        if r.status_code != 200:
            return False
    return True


async def _submit(
    http: httpx.AsyncClient, survey: str, cookie: str, person: Person, csid: str, delay: float
) -> Outcome:
    """One respondent pressing submit, and again after any failure, with the same csid."""
    await asyncio.sleep(delay)
    if person.form_code == "01":
        answers = full_answers("H-A") + full_answers("H-B")
    else:
        answers = full_answers(person.unit_code or "")
    out = Outcome()
    give_up = time.monotonic() + CLIENT_GIVES_UP_S
    while time.monotonic() < give_up:
        out.attempts += 1
        try:
            r = await http.post(
                f"{survey}/api/ballots",
                json={"answers": answers, "client_submission_id": csid},
                headers={"Cookie": f"{COOKIE}={cookie}", "X-Requested-With": "parindex"},
                timeout=10,
            )
        except httpx.TransportError as exc:
            out.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.25)
            continue
        out.status = r.status_code
        if r.status_code == 201:
            out.receipt = r.json()["receipt"]
            return out
        if r.status_code >= 500:
            out.errors[f"http {r.status_code}"] += 1
            await asyncio.sleep(0.25)
            continue
        out.errors[f"http {r.status_code} {r.text[:80]}"] += 1
        return out  # a 4xx is an answer, not a fault: the browser shows it
    return out


async def _inject(stack: Stack, fault: str) -> None:
    if fault == "kill -9 survey":
        await asyncio.to_thread(stack.restart_service, "survey")
    elif fault == "kill -9 scoring":
        await asyncio.to_thread(stack.restart_service, "scoring")
    elif fault == "restart nats-server":
        assert stack.nats is not None
        await asyncio.to_thread(stack.nats.stop)
        await asyncio.to_thread(stack.nats.start)
    elif fault == "restart PostgreSQL":
        assert stack.postgres is not None
        await asyncio.to_thread(stack.postgres.stop)
        await asyncio.to_thread(stack.postgres.start)
    else:  # pragma: no cover
        raise ValueError(fault)


def _table(rows: list[Row]) -> str:
    head = (
        "| fault | ballots acknowledged (201) | acknowledged so far | BallotSubmitted in the log "
        "| duplicates | lost | client retries | time to recover (s) | digest converged (s) |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.fault} | {r.acknowledged} | {r.acked_total} | {r.in_log} | {r.duplicates} "
            f"| {r.lost} | {r.retries} | {r.recover_s:.1f} | {r.converge_s:.1f} |"
        )
    return "\n".join(lines)


@pytest.fixture
def stack(tmp_path: Path):
    s = Stack(
        state_dir=tmp_path / "state",
        port=free_port(),
        extra_env={
            # Campaign time inside wave w1, before the deadline, running at wall speed.
            "PARINDEX_CLOCK_START": "2023-09-25T03:00:00+00:00",
            "PARINDEX_CLOCK_SPEED": "1",
            "PARINDEX_CLOCK_EPOCH": f"{time.time():.3f}",
            "PARINDEX_MAIL_RATE": "200",
        },
    )
    try:
        s.start(timeout=90)
        yield s
    finally:
        s.stop()


@pytest.mark.timeout(300)  # four faults: ~2 min 15 s on 2 cores (docs/reliability.md)
async def test_nothing_acknowledged_is_lost_or_doubled_under_faults(
    stack: Stack, tmp_path: Path, artifacts_dir: Path
) -> None:
    started = time.monotonic()
    campaign = small_campaign("faults-2023")
    env = dict(os.environ) | stack.envs["identity"]
    ballot_key = stack.envs["survey"]["PARINDEX_BALLOT_KEY"]
    camp_file = tmp_path / "campaign.json"
    camp_file.write_text(json.dumps(campaign.model_dump(mode="json"), ensure_ascii=False))
    await asyncio.to_thread(_cli, env, "campaign", "load", str(camp_file))
    lst = tmp_path / "respondents.csv"
    _respondent_list(lst, PER_FAULT * len(FAULTS))
    await asyncio.to_thread(_cli, env, "respondents", "import", str(lst), "--campaign", campaign.id)

    settings = Settings(  # read-only: `parindex up`'s bus has no anonymous access
        nats_url=stack.nats_url or "",
        database_url=stack.database_url or "",
        nats_user="auditor",
        nats_password=stack.nats_users["auditor"],
    )
    nc = await connect(settings, "fault-test")
    js = nc.jetstream()
    key = load_or_create_private_key(key_path(stack.state_dir))
    survey = f"http://{stack.host}:{stack.ports['survey']}"
    scoring = f"http://{stack.host}:{stack.ports['scoring']}"
    rows: list[Row] = []
    acked: set[str] = set()
    try:
        people: list[Person] = []
        deadline = time.monotonic() + 30
        while len(people) < PER_FAULT * len(FAULTS):
            assert time.monotonic() < deadline, f"only {len(people)} respondents registered"
            await asyncio.sleep(0.3)
            people = await _registered(js, campaign.id)
        cookies = {
            p.respondent_id: issue_token(
                key,
                Principal(
                    subject=p.respondent_id,
                    role="respondent",
                    campaign_id=campaign.id,
                    unit_code=p.unit_code,
                    form_code=p.form_code,
                ),
            )
            for p in people
        }
        limits = httpx.Limits(max_connections=PER_FAULT + 10, max_keepalive_connections=PER_FAULT)
        async with httpx.AsyncClient(limits=limits) as http:
            # Survey has seen every respondent and opened the wave.
            last = people[-1]
            deadline = time.monotonic() + 30
            while True:
                r = await http.get(
                    f"{survey}/api/form",
                    headers={"Cookie": f"{COOKIE}={cookies[last.respondent_id]}"},
                )
                if r.status_code == 200 and r.json()["open"]:
                    break
                assert time.monotonic() < deadline, r.text
                await asyncio.sleep(0.2)

            for i, fault in enumerate(FAULTS):
                group = people[i * PER_FAULT : (i + 1) * PER_FAULT]
                t0 = time.monotonic()
                load = [
                    asyncio.create_task(
                        _submit(
                            http,
                            survey,
                            cookies[p.respondent_id],
                            p,
                            f"tab-{p.respondent_id}",
                            SPREAD_S * k / len(group),
                        )
                    )
                    for k, p in enumerate(group)
                ]
                await asyncio.sleep(max(0.0, FAULT_AT_S - (time.monotonic() - t0)))
                injected = time.monotonic()
                await _inject(stack, fault)
                while not await _all_ready(http, stack):
                    assert time.monotonic() - injected < 60, f"{fault}: not ready after 60 s"
                    await asyncio.sleep(0.1)
                recover_s = time.monotonic() - injected
                outcomes = await asyncio.gather(*load)
                load_done = time.monotonic()

                failed = [o for o in outcomes if o.receipt is None]
                assert not failed, f"{fault}: {len(failed)} clients never got 201: {failed[:3]}"
                receipts = [o.receipt for o in outcomes if o.receipt]
                assert len(set(receipts)) == len(group), f"{fault}: receipts not one per person"
                acked |= {
                    pseudonym(ballot_key, campaign.id, p.respondent_id)
                    for p, o in zip(group, outcomes, strict=True)
                    if o.receipt
                }

                log = await _ballots_in_log(js, campaign.id)
                duplicates = sum(n - 1 for n in log.values())
                lost = acked - set(log)
                orphans = set(log) - acked
                assert duplicates == 0, f"{fault}: {duplicates} ballots twice in the log"
                assert not lost, f"{fault}: {len(lost)} acknowledged ballots not in the log"
                assert not orphans, f"{fault}: {len(orphans)} ballots in the log nobody got 201 for"

                # Live scores are hidden until publication (decision 16): the audit compares
                # scoring's live rows with a scratch replay of the log instead.
                report = None
                while True:
                    r = await http.get(f"{scoring}/api/results", params={"campaign": campaign.id})
                    if r.status_code == 200:
                        report = await audit(nc, settings, campaign.id, compare_live=True)
                        if report.ok:
                            break
                    assert time.monotonic() - load_done < CONVERGE_S, (
                        f"{fault}: scoring never converged to the replay "
                        f"{report.render() if report else r.text}"
                    )
                    await asyncio.sleep(0.5)
                rows.append(
                    Row(
                        fault,
                        len(receipts),
                        len(acked),
                        sum(log.values()),
                        duplicates,
                        len(lost),
                        sum(o.attempts - 1 for o in outcomes),
                        recover_s,
                        time.monotonic() - load_done,
                    )
                )
    finally:
        await nc.close()
        table = _table(rows)
        print(f"\n{table}\n(total {time.monotonic() - started:.0f} s)")
        (artifacts_dir / "faults.md").write_text(table + "\n")
    assert len(rows) == len(FAULTS)
