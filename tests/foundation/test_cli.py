"""The CLI finds the stack of its --state-dir, or says in two lines that nothing runs there.

Issue #15 item 6: a new user's `parindex users add` ended in a 57-line traceback against port
5432 and `parindex audit` talked to another NATS on 4222, until they copied the addresses from
endpoints.json by hand (docs/architecture.md, decision 35).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from parindex.bus import permissions
from parindex.bus.connection import ensure_streams
from parindex.bus.credentials import new_nats_password
from parindex.cli import build_parser, leaf_parsers, main
from parindex.runtime.embedded import NatsServer
from tests.child_env import child_env

# Every command that talks to a stack, with the arguments it needs besides --state-dir.
STACK_COMMANDS = [
    ["audit", "--campaign", "c1"],
    ["users", "add", "bob", "--role", "admin", "--password", "a-long-password-1"],
    ["respondents", "import", "list.xlsx", "--campaign", "c1"],
    ["campaign", "load", "campaign.yaml"],
    ["backup", "--to", "bak"],
    ["restore", "--from", "bak"],
    ["rebuild", "scoring"],
    ["deadletters", "list"],
    ["deadletters", "show", "1"],
    ["health", "stream"],
]
ENV = ("NATS_URL", "DATABASE_URL", "NATS_MONITOR_URLS", "NATS_USER", "NATS_PASSWORD", "STATE_DIR")


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(f"PARINDEX_{name}", raising=False)


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on leaving: nothing listens there now


def _parsers(parser: argparse.ArgumentParser, path: str = "parindex") -> Iterator[tuple]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


@pytest.mark.unit
def test_every_command_and_option_explains_itself() -> None:
    missing = []
    for path, parser in _parsers(build_parser()):
        if not (parser.description or "").strip():
            missing.append(f"{path}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                choices = action._choices_actions
                missing += [f"{path} {c.dest}: no help" for c in choices if not c.help]
                continue
            if not (action.help or "").strip():
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}: no help")
    assert missing == []


@pytest.mark.unit
def test_every_command_but_contracts_takes_a_state_dir_and_debug() -> None:
    for leaf in leaf_parsers(build_parser()):
        options = {o for a in leaf._actions for o in a.option_strings}
        assert "--debug" in options, leaf.prog
        if leaf.prog != "parindex contracts":
            assert "--state-dir" in options, leaf.prog


@pytest.mark.unit
@pytest.mark.parametrize("argv", STACK_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_an_empty_state_dir_is_said_in_two_lines_and_exit_2(
    argv: list[str], tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"nothing runs in {tmp_path}" in err
    assert "parindex up --state-dir" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


@pytest.mark.unit
@pytest.mark.parametrize("argv", STACK_COMMANDS[:-1], ids=lambda a: " ".join(a[:2]))
def test_a_stopped_stack_is_said_in_two_lines_and_exit_2(
    argv: list[str], tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """endpoints.json left behind by a stack that has stopped: its ports refuse."""
    stale = {
        "nats_url": f"nats://127.0.0.1:{_refused_port()}",
        "database_url": f"postgresql://postgres@127.0.0.1:{_refused_port()}/",
    }
    (tmp_path / "endpoints.json").write_text(json.dumps(stale))
    assert main([*argv, "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "answers at 127.0.0.1:" in err and "Connection refused" in err
    assert "parindex up --state-dir" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


@pytest.mark.unit
def test_the_installed_command_prints_no_traceback_and_debug_does(tmp_path: Path) -> None:
    env = child_env()
    cmd = [sys.executable, "-m", "parindex.cli", "audit", "--campaign", "c1"]
    plain = subprocess.run(
        [*cmd, "--state-dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=60
    )
    assert plain.returncode == 2
    assert "Traceback" not in plain.stderr and "parindex up" in plain.stderr
    debug = subprocess.run(
        [*cmd, "--state-dir", str(tmp_path), "--debug"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" in debug.stderr and "NoStack" in debug.stderr


@pytest.mark.unit
def test_an_explicit_url_overrides_the_state_dir(
    tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "endpoints.json").write_text(json.dumps({"database_url": "postgresql://x@h/"}))
    port = _refused_port()
    refused = f"postgresql://postgres@127.0.0.1:{port}/"
    argv = ["users", "add", "bob", "--role", "admin", "--password", "a-long-password-1"]
    assert main([*argv, "--state-dir", str(tmp_path), "--database-url", refused]) == 2
    assert f"answers at 127.0.0.1:{port} " in capsys.readouterr().err


@pytest.fixture
def locked_stack(tmp_path: Path, pg_url: str) -> Iterator[Path]:
    """A state dir as `parindex up` leaves it: a locked NATS, its passwords, endpoints.json."""
    users = ["sys", *(u.name for u in permissions.USERS)]
    passwords = {u: new_nats_password() for u in users}
    server = NatsServer(
        tmp_path / "nats",
        accounts=permissions.render_accounts(),
        passwords={f"NATS_{u.upper()}_PASSWORD": p for u, p in passwords.items()},
    ).start()
    try:

        async def provision() -> None:
            nc = await nats.connect(
                server.url,
                user="provisioner",
                password=passwords["provisioner"],
                inbox_prefix="_INBOX_provisioner",
            )
            await ensure_streams(nc.jetstream())
            await nc.close()

        asyncio.run(provision())
        state = tmp_path / "state"
        (state / "secrets").mkdir(parents=True)
        for user, password in passwords.items():
            (state / "secrets" / f"nats_{user}").write_text(password)
        endpoints = {"nats_url": server.url, "database_url": pg_url}
        (state / "endpoints.json").write_text(json.dumps(endpoints))
        yield state
    finally:
        server.stop()


def test_users_add_and_audit_find_the_stack_without_environment(
    locked_stack: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(locked_stack)]
    add = ["users", "add", "cli-test-admin", "--role", "admin", "--password", "a-long-password-1"]
    assert main([*add, *state]) == 0, capsys.readouterr().err
    assert main([*add, *state]) == 1  # the same database: the user is there now
    assert "exists" in capsys.readouterr().err
    # Anonymous connections are refused by this server: the audit runs as the auditor.
    assert main(["audit", "--campaign", "c-cli", "--json", "--no-live", *state]) in (0, 1)
    out, err = capsys.readouterr()
    assert "parindex:" not in err
    assert "c-cli" in out
    json.loads(out)


@pytest.mark.unit
@pytest.mark.parametrize("password", ["-pY3DDwa3AwDSRcE", "--replace", "Ab_cd-ef12gh"])
def test_the_demo_admin_s_password_reaches_the_command_whole(password: str) -> None:
    """token_urlsafe begins with '-' once in 64 times; argparse then took the password for an
    option and the demo printed an admin password for an account it never made."""
    from parindex.runtime.demo import admin_argv

    args = build_parser().parse_args(admin_argv(password))
    assert (args.username, args.role, args.password, args.replace) == (
        "admin",
        "admin",
        password,
        True,
    )


def test_a_failed_demo_step_stops_with_the_command_s_own_words(tmp_path: Path) -> None:
    """The demo went on after a failed `campaign load` or `respondents import` and printed the
    figures of a campaign that was never loaded; now the command's error ends it."""
    from parindex.runtime.practice import StepFailed, run_step

    env = child_env()
    with pytest.raises(StepFailed) as failed:  # no stack in this state dir
        run_step(env, "campaign load", "campaign", "load", "c.yaml", "--state-dir", str(tmp_path))
    said = str(failed.value)
    assert said.startswith("campaign load: parindex: nothing runs in "), said
    assert str(tmp_path) in said and "Traceback" not in said


@pytest.mark.unit
def test_the_demo_says_which_step_failed_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from parindex.runtime import demo
    from parindex.runtime.practice import StepFailed

    def failing(*args: object, **kwargs: object) -> int:
        raise StepFailed("respondents import: parindex: unknown campaign demo-2023")

    monkeypatch.setattr(demo, "run_demo", failing)
    monkeypatch.setattr("parindex.runtime.supervise.install_stop_signals", lambda: None)
    code = main(["up", "--demo", "--exit", "--state-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "respondents import: parindex: unknown campaign demo-2023" in err
    assert "--fresh" in err and "Traceback" not in err


@pytest.mark.unit
def test_free_port_keeps_to_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two test workers picked ports from the same range at once and could hand one port to
    two children; each now has its own share, and a malformed one is ignored."""
    from parindex.runtime.embedded import PORT_RANGE, free_port, port_range

    monkeypatch.setenv(PORT_RANGE, "20000-20400")
    assert port_range() == (20000, 20400)
    assert all(20000 <= free_port() < 20400 for _ in range(50))
    for bad in ("", "20000", "x-y", "20000-20050", "80-1000", "30000-20000", "60000-70000"):
        monkeypatch.setenv(PORT_RANGE, bad)
        assert port_range()[0] == 10000, bad
