"""Real servers for the tests: a JetStream nats-server and PostgreSQL.

Order of preference: external URLs (PARINDEX_TEST_NATS_URL / PARINDEX_TEST_DATABASE_URL), then
testcontainers when a Docker engine answers, then the embedded binaries from pip.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio

from parindex.bus.connection import ensure_streams
from parindex.runtime.embedded import NatsServer, PostgresServer


def _docker_usable() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _provisioned(url: str) -> str:
    """Services only wait for the streams (docs/architecture.md, decision 18): make them."""

    async def run() -> None:
        client = await nats.connect(url)
        try:
            await ensure_streams(client.jetstream())
        finally:
            await client.close()

    asyncio.run(run())
    return url


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An OPEN server (no accounts) for most tests; `parindex up` itself is always locked."""
    import os

    if url := os.environ.get("PARINDEX_TEST_NATS_URL"):
        yield _provisioned(url)
        return
    if _docker_usable():
        from testcontainers.nats import NatsContainer

        with NatsContainer("nats:2.11", jetstream=True) as c:  # pragma: no cover - no engine here
            yield _provisioned(c.nats_uri())
        return
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield _provisioned(server.url)
    server.stop()


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server URL without a database name."""
    import os

    if url := os.environ.get("PARINDEX_TEST_DATABASE_URL"):
        yield url
        return
    if _docker_usable():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as c:  # pragma: no cover
            yield c.get_connection_url().rsplit("/", 1)[0] + "/"
        return
    server = PostgresServer(tmp_path_factory.mktemp("pg") / "data").start()
    yield server.url
    server.stop()


@pytest_asyncio.fixture
async def nc(nats_url: str) -> AsyncIterator[nats.NATS]:
    client = await nats.connect(nats_url)
    await ensure_streams(client.jetstream())
    yield client
    await client.drain()


@pytest.fixture
def campaign_id() -> str:
    """A fresh campaign per test: tests share the stream but never each other's subjects."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db_url(pg_url: str) -> str:
    """A fresh database URL per test (created by the code under test)."""
    from parindex.settings import database_url_for

    return database_url_for(pg_url, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A timed-out test reports every asyncio task's await chain (see tests/hangs.py)."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and "Timeout" in str(call.excinfo.value):
        from tests.hangs import describe_tasks

        report.sections.append(("asyncio tasks at timeout", describe_tasks(call.excinfo.tb)))


def pytest_configure(config: pytest.Config) -> None:
    """Each test worker process (make test runs two) picks ports for its servers and stacks in a
    share of its own, so two workers never choose the same port at the same moment; children
    keep it (tests/child_env.py, docs/architecture.md, decision 50)."""
    import os

    from parindex.runtime.embedded import PORT_RANGE, port_range

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", … in a worker
    if not worker.startswith("gw") or PORT_RANGE in os.environ:
        return
    first, last = port_range()
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    share = (last - first) // count
    start = first + int(worker[2:]) * share
    os.environ[PORT_RANGE] = f"{start}-{start + share}"


SERVER_FIXTURES = {"nats_url", "pg_url"}

# The longest files, longest first. `make test` runs the suite in two worker processes, each
# taking whole files in collection order (pytest-xdist, --dist loadfile --no-loadscope-reorder):
# these start at once rather than last, when one of them would end the run alone.
HEAVY_FIRST = (
    "tests/ops/test_demo.py",
    "tests/faults/test_cluster_faults.py",
    "tests/faults/test_faults.py",
    "tests/security/test_bad_input.py",
    "tests/faults/test_power_loss.py",
    "tests/foundation/test_bus_lockdown.py",
    "tests/security/test_access_matrix.py",
    "tests/browser/test_ballot_phone.py",
    "tests/deploy/test_compose.py",
    "tests/identity/test_staff_pages.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Heaviest files first (a stable sort: the rest keep their order); a test marked `unit`
    must not reach for a server, so the inner loop stays server-free."""
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
    for item in items:
        if item.get_closest_marker("unit") is None:
            continue
        wanted = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        if wanted:
            raise pytest.UsageError(
                f"{item.nodeid} is marked unit but uses the server fixture(s) {sorted(wanted)}"
            )
