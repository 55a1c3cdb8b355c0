"""`parindex up --demo --minutes 1 --exit` shows a campaign like a real province's (decision 40).

The front door and the admin login are printed while the demo is still starting, before any
ballot; by the end most units reached their quota and a few fell short, every form has ballots,
the audit passed and a practice campaign stays open with a guest login per form. A second `up`
on the same state says it resumes (and that `--fresh` starts over); `--fresh` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from parindex.runtime.embedded import free_port
from tests.child_env import child_env

FORMS = {"01", "02", "03", "04", "05", "06"}


def _start(state: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "parindex.cli", "up", "--demo", "--state-dir", str(state)]
        + ["--minutes", "1", "--exit", "--port", str(free_port()), *extra],
        stdout=open(out, "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env=child_env(),
    )


def _until(check: Callable[[], bool], timeout: float) -> None:
    """Sync twin of tests/waiting.py::eventually: this test drives a subprocess."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(0.2)


def _finish(proc: subprocess.Popen, out: Path, timeout: float) -> str:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(30)
        raise
    text = out.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


# A minute of voting on an idle two-core machine (as the README's first run); the demo slows
# its campaign clock on a busy one (decision 40), so the bound is generous.
@pytest.mark.timeout(1200)
def test_one_minute_demo_looks_like_a_province(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "demo.out"
    proc = _start(state, out)
    try:

        def door_printed() -> bool:
            assert proc.poll() is None, out.read_text()[-3000:]
            return "sẵn sàng / ready" in out.read_text()

        _until(door_printed, timeout=240)
        early = out.read_text()
        # printed before the voting: no ballot counted yet, no summary
        assert "quản trị / admin: admin / " in early and "kiểm toán" not in early
        assert "phiếu    1" not in early.replace("\r", "\n")
        text = _finish(proc, out, timeout=900)
    finally:
        if proc.poll() is None:  # a failed check: the demo and its servers stop too
            proc.terminate()
            proc.wait(60)

    facts = json.loads((state / "demo" / "summary.json").read_text())
    assert facts["ran"] and facts["audit_ok"], text[-3000:]
    assert facts["units"] == 40
    short = facts["units_short"]
    assert len(short) <= 12, f"most units should reach their quota; short: {short}"
    assert short, "a few units fall short and lose points"
    assert set(facts["received_per_form_and_unit"]) == FORMS
    assert all(n > 0 for n in facts["received_per_form_and_unit"].values()), facts
    assert facts["ballots_this_run"] >= 1500, facts
    assert facts["practice_logins"] == len(FORMS), text[-2000:]
    assert "thực hành / practice" in text

    # Again on the same state: it says what it does, and shows rather than re-runs.
    again = tmp_path / "again.out"
    text = _finish(_start(state, again), again, timeout=300)
    assert "resuming the data in" in text and "--fresh" in text
    assert "already ran" in text and "thực hành / practice" in text
    assert json.loads((state / "demo" / "summary.json").read_text())["ran"] is False
