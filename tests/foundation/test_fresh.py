"""`parindex up --fresh` deletes the data and keeps ports, secrets and logs (decision 40)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parindex.runtime.up import DATA, FreshRefused, Stack, existing_data

pytestmark = pytest.mark.unit


def _state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    for d in ("nats/jetstream", "postgres/data", "mail", "demo", "secrets", "logs"):
        (state / d).mkdir(parents=True)
    for f in ("ports.json", "secrets/demo_admin", "logs/identity.log", "endpoints.json",
              "mail/1.eml", "demo/summary.json"):  # fmt: skip
        (state / f).write_text("x")
    return state


def test_fresh_wipes_the_data_and_keeps_ports_secrets_and_logs(tmp_path: Path) -> None:
    state = _state(tmp_path)
    assert existing_data(state)
    Stack(state_dir=state, fresh=True)._wipe()
    assert not existing_data(state)
    assert not any((state / name).exists() for name in DATA)
    for kept in ("ports.json", "secrets/demo_admin", "logs/identity.log"):
        assert (state / kept).read_text() == "x", kept


def test_fresh_refuses_external_servers(tmp_path: Path) -> None:
    state = _state(tmp_path)
    with pytest.raises(FreshRefused):
        Stack(state_dir=state, nats_url="nats://elsewhere:4222", fresh=True)._wipe()
    assert (state / "nats" / "jetstream").is_dir()


def test_cli_offers_fresh_on_up_and_demo() -> None:
    from parindex.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["up", "--demo", "--fresh"]).fresh is True
    assert parser.parse_args(["demo", "--fresh"]).fresh is True
    assert parser.parse_args(["up"]).fresh is False
