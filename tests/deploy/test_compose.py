"""deploy/ is valid without a Docker engine or network.

The compose file validates against the vendored Compose schema subset, everything it names exists,
every variable it needs is in .env.example, the NATS configs pass `nats-server -t`, and the NATS
permissions hold on a real server (the auditor cannot publish events; each service publishes
only its own subjects).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SERVICES = ("identity", "survey", "scoring", "notify")
ONE_SHOT = ("nats-provision",)
NATS_CONFS = [DEPLOY / "nats" / f"nats-{i}.conf" for i in (1, 2, 3)]
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}; $$ escapes.
VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op and op.startswith(":") and not value:
            value = None
        if value is None:
            if op and op.endswith("-"):
                return arg
            if op and op.endswith("?"):
                raise KeyError(f"{name}: {arg}")
            return ""
        return arg if op and op.endswith("+") else value

    return VAR_RE.sub(sub, text).replace("$$", "$")


def nats_server() -> str | None:
    candidate = Path(sys.executable).parent / "nats-server"
    return str(candidate) if candidate.exists() else shutil.which("nats-server")


# ---------------------------------------------------------------- compose file


def test_compose_validates_against_vendored_schema() -> None:
    schema = json.loads((DEPLOY / "compose-spec.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert "subset" in schema["$comment"].lower()
    jsonschema.validate(compose(), schema)


def test_schema_rejects_a_misspelt_service_key() -> None:
    schema = json.loads((DEPLOY / "compose-spec.schema.json").read_text())
    doc = compose()
    doc["services"]["identity"]["helthcheck"] = doc["services"]["identity"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_docker_compose_config_when_available(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if not docker:
        pytest.skip("no docker client")
    try:
        version = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("docker compose version did not answer")
    if version.returncode != 0:
        pytest.skip("docker client without the compose plugin")
    result = subprocess.run(
        [docker, "compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=DEPLOY,
    )
    assert result.returncode == 0, result.stderr


def test_expected_services_images_and_policies() -> None:
    services = compose()["services"]
    for name in ("nats-1", "nats-2", "nats-3"):
        assert services[name]["image"] == "nats:2.11-alpine"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib")
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one")
    assert services["caddy"]["image"].startswith("caddy:2")
    for name, svc in services.items():
        if "tools" in svc.get("profiles", []):
            continue
        if name in ONE_SHOT:  # runs to completion; restarted only if it failed
            assert svc.get("restart") == "on-failure", name
            continue
        assert svc.get("restart") == "unless-stopped", name
    for name in SERVICES + ("nats-1", "nats-2", "nats-3", "postgres", "mailpit", "caddy"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_parindex_services_one_image_and_settings() -> None:
    services = compose()["services"]
    for name in SERVICES:
        svc = services[name]
        assert svc["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert svc["command"] == [f"services.{name}", "--host", "0.0.0.0", "--port", "8000"]
        module = ROOT / "services" / name / "__main__.py"
        assert module.is_file(), f"{module} missing"
        env = svc["environment"]
        assert env["PARINDEX_STREAM_REPLICAS"] == "3"
        assert env["PARINDEX_NATS_USER"] == name
        assert set(env["PARINDEX_NATS_URL"].split(",")) == {
            f"nats://nats-{i}:4222" for i in (1, 2, 3)
        }
        assert f"parindex_{name}:" in env["PARINDEX_DATABASE_URL"]
        assert env["PARINDEX_DATABASE_URL"].endswith("@postgres:5432/")
        assert env["PARINDEX_CSRF_KEY"].startswith("${PARINDEX_CSRF_KEY"), name  # decision 25
        deps = svc["depends_on"]
        for dep in ("nats-1", "nats-2", "nats-3", "postgres"):
            assert deps[dep]["condition"] == "service_healthy", (name, dep)
    assert "PARINDEX_BALLOT_KEY" in services["survey"]["environment"]
    for name in ("identity", "scoring", "notify"):  # the pseudonym key stays in survey
        assert "PARINDEX_BALLOT_KEY" not in services[name]["environment"]


def test_streams_are_provisioned_once_by_the_provisioner() -> None:
    """docs/architecture.md, decision 18: services only wait for the streams."""
    services = compose()["services"]
    prov = services["nats-provision"]
    assert prov["command"] == ["parindex.provision"]
    assert (ROOT / "parindex" / "provision" / "__main__.py").is_file()
    env = prov["environment"]
    assert env["PARINDEX_NATS_USER"] == "provisioner"
    assert "NATS_PROVISIONER_PASSWORD" in env["PARINDEX_NATS_PASSWORD"]
    assert env["PARINDEX_STREAM_REPLICAS"] == "3"
    for name in SERVICES:
        deps = services[name]["depends_on"]
        assert deps["nats-provision"]["condition"] == "service_completed_successfully", name
        assert "PROVISIONER" not in str(services[name]["environment"]), name


def test_every_referenced_path_exists() -> None:
    doc = compose()
    named_volumes = set(doc.get("volumes") or {})
    for name, svc in doc["services"].items():
        build = svc.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert context.is_dir(), name
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: {source} missing"
            else:
                assert source in named_volumes, f"{name}: volume {source} not declared"
        for cfg in svc.get("configs", []):
            src = cfg if isinstance(cfg, str) else cfg["source"]
            assert src in doc["configs"], f"{name}: config {src} not declared"
        for net in svc.get("networks", []):
            assert net in doc["networks"], f"{name}: network {net} not declared"
    for key in ("configs", "secrets"):
        for name, item in (doc.get(key) or {}).items():
            if "file" in item:
                assert (DEPLOY / item["file"]).is_file(), f"{key}.{name}: {item['file']}"


def test_every_variable_is_in_env_example() -> None:
    text = COMPOSE.read_text()
    names = {m.group(1) for m in VAR_RE.finditer(text)}
    assert names, "no variables found: the regex is wrong"
    missing = names - set(env_example())
    assert not missing, f"not in deploy/.env.example: {sorted(missing)}"
    # and the example is enough to interpolate the whole file (no ${VAR:?} left unset)
    yaml.safe_load(interpolate(text, env_example()))


# ---------------------------------------------------------------- Dockerfile


def dockerfile_stages() -> list[list[str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def instruction(lines: list[str], name: str) -> list[str]:
    return [ln[len(name) + 1 :].strip() for ln in lines if ln.upper().startswith(name + " ")]


def test_dockerfile_entrypoint_cmd_and_runtime_stage() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage build expected"
    final = stages[-1]
    assert json.loads(instruction(final, "ENTRYPOINT")[-1]) == ["python", "-m"]
    cmd = json.loads(instruction(final, "CMD")[-1])
    modules = [cmd[0]] + [
        svc["command"][0] for svc in compose()["services"].values() if svc.get("build")
    ]
    for module in modules:
        path = ROOT / Path(*module.split(".")) / "__main__.py"
        assert path.is_file(), f"{module}: {path} missing"
    assert cmd[0] == "services.identity"
    assert instruction(final, "EXPOSE") == ["8000"]
    user = instruction(final, "USER")
    assert user and not user[-1].startswith(("root", "0")), "runs as root"
    health = instruction(final, "HEALTHCHECK")
    assert health and "urllib" in health[-1] and "/healthz" in health[-1]
    assert any("/opt/venv" in ln for ln in instruction(final, "COPY"))
    final_text = " ".join(final).lower()
    for compiler in ("build-essential", "gcc", "g++", "clang", "apt-get install"):
        assert compiler not in final_text, f"{compiler} in the final stage"
    assert any("wheel" in ln for ln in instruction(stages[0], "RUN"))


# ---------------------------------------------------------------- NATS


def nats_env() -> dict[str, str]:
    """The environment the compose file gives nats-1, interpolated from .env.example."""
    doc = yaml.safe_load(interpolate(COMPOSE.read_text(), env_example()))
    env = {k: str(v) for k, v in doc["services"]["nats-1"]["environment"].items()}
    return {**os.environ, **env}


@pytest.mark.parametrize("conf", NATS_CONFS, ids=lambda p: p.name)
def test_nats_config_parses(conf: Path) -> None:
    binary = nats_server()
    if binary is None:
        pytest.skip("nats-server binary not found")
    result = subprocess.run(
        [binary, "-t", "-c", str(conf)], capture_output=True, text=True, env=nats_env(), timeout=30
    )
    assert result.returncode == 0, result.stderr + result.stdout
    text = conf.read_text()
    assert re.search(r"^\s*server_name:\s*nats-\d", text, re.M)
    assert re.search(r"^\s*store_dir:\s*/data/jetstream", text, re.M)
    # Three nodes on one host die together: only an fsync before the ack keeps an acknowledged
    # ballot (docs/architecture.md, decision 21).
    assert re.search(r"^\s*sync_interval:\s*always\s*$", text, re.M), "sync_interval: always"
    assert re.search(r"^\s*#\s*tls\s*\{", text, re.M), "commented TLS block expected"
    assert "include ./accounts.conf" in text


# A small parser for the NATS config format: maps, arrays, strings, comments, `include`.
TOKEN_RE = re.compile(
    r'\s+|#[^\n]*|//[^\n]*|(?P<punct>[{}\[\],])|(?P<sep>[:=])|"(?P<dq>[^"]*)"|\'(?P<sq>[^\']*)\''
    r"|(?P<word>[^\s{}\[\],:=#\"']+(?:[:=][^\s{}\[\],#\"']+)*)"
)


def tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        assert m, f"cannot tokenize at {text[pos : pos + 30]!r}"
        pos = m.end()
        for kind in ("punct", "sep", "dq", "sq", "word"):
            if m.group(kind) is not None:
                out.append((kind if kind in ("punct", "sep", "word") else "str", m.group(kind)))
    return out


def parse_nats(path: Path) -> dict:
    tokens = tokenize(path.read_text())
    pos = 0

    def value():
        nonlocal pos
        kind, tok = tokens[pos]
        pos += 1
        if tok == "{" and kind == "punct":
            return mapping("}")
        if tok == "[" and kind == "punct":
            items = []
            while tokens[pos][1] != "]":
                if tokens[pos][1] == ",":
                    pos += 1
                    continue
                items.append(value())
            pos += 1
            return items
        return tok

    def mapping(end: str | None) -> dict:
        nonlocal pos
        out: dict = {}
        while pos < len(tokens) and tokens[pos][1] != end:
            kind, key = tokens[pos]
            pos += 1
            if key == ",":
                continue
            if key == "include":
                included = parse_nats(path.parent / tokens[pos][1])
                pos += 1
                out.update(included)
                continue
            if tokens[pos][0] == "sep":
                pos += 1
            out[key] = value()
        pos += 1
        return out

    return mapping(None)


def users() -> dict[str, dict]:
    conf = parse_nats(NATS_CONFS[0])
    found = {}
    for account in conf["accounts"].values():
        for user in account.get("users", []):
            found[user["user"]] = user
    return found


def covers(pattern: str, subject: str) -> bool:
    """NATS wildcard match: does `pattern` include `subject` (itself possibly wildcarded)?"""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]) or (tok == "*" and s[i] == ">"):
            return False
    return len(p) == len(s)


def allowed(user: dict, action: str, subject: str) -> bool:
    perms = user.get("permissions")
    if perms is None:
        return True
    block = perms.get(action, {})
    allow = block.get("allow", []) if isinstance(block, dict) else block
    deny = block.get("deny", []) if isinstance(block, dict) else []
    return any(covers(a, subject) for a in allow) and not any(covers(d, subject) for d in deny)


def test_accounts_conf_is_the_rendering_of_the_one_definition() -> None:
    """`parindex up` gives its nats-server the same text: the two cannot drift."""
    from parindex.bus.permissions import render_accounts

    assert (DEPLOY / "nats" / "accounts.conf").read_text() == render_accounts(), (
        "regenerate: python -m parindex.bus.permissions > deploy/nats/accounts.conf"
    )


def test_every_password_comes_from_the_environment() -> None:
    found = users()
    assert set(SERVICES) | {"auditor", "provisioner"} <= set(found)
    for name, user in found.items():
        assert user["password"].startswith("$NATS_"), name
        assert user["password"][1:] in env_example(), name


def test_auditor_is_read_only() -> None:
    auditor = users()["auditor"]
    publish = auditor["permissions"]["publish"]
    assert not any(a.startswith("par.") for a in publish["allow"])
    assert any(covers(d, "par.evt.>") for d in publish["deny"])
    for subject in (
        "par.evt.c1.ballot.x",
        "par.evt.c1.results",
        "par.dlq.x",
        "par.rpc.identity.credential",
        "$JS.API.STREAM.CREATE.PARINDEX",
        "$JS.API.STREAM.DELETE.PARINDEX",
        "$JS.API.STREAM.PURGE.PARINDEX",
        "$JS.API.STREAM.UPDATE.PARINDEX",
    ):
        assert not allowed(auditor, "publish", subject), subject
    for subject in (
        "$JS.API.CONSUMER.CREATE.PARINDEX",
        "$JS.API.CONSUMER.CREATE.PARINDEX.a.b",
        "$JS.API.CONSUMER.INFO.PARINDEX.a",
        "$JS.API.CONSUMER.MSG.NEXT.PARINDEX.a",
        "$JS.API.STREAM.INFO.PARINDEX",
    ):
        assert allowed(auditor, "publish", subject), subject


OWN_EVENTS = {
    "identity": ["par.evt.c1.respondent.r1"],
    "survey": [
        "par.evt.c1.campaign",
        "par.evt.c1.wave.w1",
        "par.evt.c1.deadline",
        "par.evt.c1.ballot.p1",
    ],
    "scoring": ["par.evt.c1.results"],
    "notify": ["par.evt.c1.delivery.r1"],
}


def test_services_publish_only_their_own_subjects() -> None:
    found = users()
    every_event = [s for subjects in OWN_EVENTS.values() for s in subjects]
    for name in SERVICES:
        user = found[name]
        for subject in every_event:
            assert allowed(user, "publish", subject) == (subject in OWN_EVENTS[name]), (
                name,
                subject,
            )
        for subject in ("par.dlq.projection", "$JS.API.CONSUMER.CREATE.PARINDEX"):
            assert allowed(user, "publish", subject), (name, subject)
        assert allowed(user, "subscribe", f"_INBOX_{name}.x"), name
        others = [o for o in SERVICES if o != name]
        assert not any(allowed(user, "subscribe", f"_INBOX_{o}.x") for o in others), name
        assert not allowed(user, "publish", "$JS.API.STREAM.DELETE.PARINDEX"), name
        assert not allowed(user, "publish", "$JS.API.STREAM.PURGE.PARINDEX"), name
        for op in ("CREATE", "UPDATE", "MSG.DELETE"):
            assert not allowed(user, "publish", f"$JS.API.STREAM.{op}.PARINDEX"), (name, op)
        assert not allowed(user, "subscribe", "par.rpc.identity.public_key") or name == "identity"
    assert allowed(found["identity"], "subscribe", "par.rpc.identity.credential")
    assert allowed(found["survey"], "subscribe", "par.rpc.survey.nonrespondents")
    for name in ("survey", "scoring", "notify"):
        assert not allowed(found[name], "subscribe", "par.rpc.identity.credential"), name
    assert allowed(found["notify"], "publish", "par.rpc.identity.credential")
    assert allowed(found["notify"], "publish", "par.rpc.survey.nonrespondents")
    for name in ("identity", "survey", "scoring"):
        assert not allowed(found[name], "publish", "par.rpc.identity.credential"), name


# ------------------------------------------- the same permissions, enforced by a real server


@pytest.fixture
def nats_with_accounts(tmp_path: Path):
    binary = nats_server()
    if binary is None:
        pytest.skip("nats-server binary not found")
    shutil.copy(DEPLOY / "nats" / "accounts.conf", tmp_path / "accounts.conf")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "single.conf").write_text(
        f"listen: 127.0.0.1:{port}\n"
        f"jetstream {{ store_dir: {json.dumps(str(tmp_path / 'js'))} }}\n"
        "include ./accounts.conf\n"
    )
    proc = subprocess.Popen(
        [binary, "-c", str(tmp_path / "single.conf")],
        env=nats_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("nats-server exited")
                import time

                time.sleep(0.1)
        yield f"nats://127.0.0.1:{port}", env_example()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_permissions_on_a_real_server(nats_with_accounts) -> None:
    import nats
    from nats.js.errors import APIError

    from parindex.bus.connection import ensure_streams

    url, env = nats_with_accounts

    async def connect(user: str):
        errors: list[Exception] = []

        async def on_error(e: Exception) -> None:
            errors.append(e)

        nc = await nats.connect(
            url,
            user=user,
            password=env[f"NATS_{user.upper()}_PASSWORD"],
            inbox_prefix=f"_INBOX_{user}",
            error_cb=on_error,
            allow_reconnect=False,
        )
        return nc, errors

    admin, _ = await connect("admin")
    provisioner, _ = await connect("provisioner")  # the one-shot nats-provision's user
    await ensure_streams(provisioner.jetstream())
    await provisioner.close()
    identity, identity_errors = await connect("identity")
    ack = await identity.jetstream().publish("par.evt.c1.respondent.r1", b"{}")
    assert ack.seq == 1
    await identity.publish("par.evt.c1.ballot.p1", b"{}")  # not identity's subject
    await identity.flush()
    await asyncio.sleep(0.2)
    assert any("permissions violation" in str(e).lower() for e in identity_errors)

    auditor, auditor_errors = await connect("auditor")
    js = auditor.jetstream()
    sub = await js.pull_subscribe("par.evt.>", stream="PARINDEX")  # consumer create + next
    [msg] = await sub.fetch(1, timeout=5)
    assert msg.subject == "par.evt.c1.respondent.r1"
    await auditor.publish("par.evt.c1.ballot.p2", b"{}")
    await auditor.flush()
    await asyncio.sleep(0.2)
    assert any("permissions violation" in str(e).lower() for e in auditor_errors)
    with pytest.raises((APIError, asyncio.TimeoutError, nats.errors.TimeoutError)):
        await js.delete_stream("PARINDEX")
    info = await admin.jetstream().stream_info("PARINDEX")
    assert info.state.messages == 1  # the auditor's publish never reached the log

    # Request-reply across users: identity answers notify through allow_responses, and the
    # reply lands on notify's own inbox, which survey may not read.
    async def answer(msg):
        await msg.respond(b"secret-credential")

    await identity.subscribe("par.rpc.identity.credential", cb=answer)
    await identity.flush()
    notify, _ = await connect("notify")
    reply = await notify.request("par.rpc.identity.credential", b"{}", timeout=5)
    assert reply.data == b"secret-credential"
    survey, survey_errors = await connect("survey")
    await survey.subscribe("_INBOX_notify.>")
    await survey.flush()
    await asyncio.sleep(0.2)
    assert any("permissions violation" in str(e).lower() for e in survey_errors)
    for nc in (admin, identity, auditor, notify, survey):
        await nc.close()


async def test_no_service_user_can_shorten_delete_or_purge_the_log(
    nats_with_accounts,
) -> None:
    """Issue #14: with the compose config's `scoring` user, max_age had been set to 2 s."""
    import dataclasses

    import nats

    from parindex.bus.connection import ensure_streams, stream_configs

    url, env = nats_with_accounts
    with pytest.raises(Exception, match="(?i)authorization"):
        await nats.connect(url, allow_reconnect=False, connect_timeout=3)

    async def connect(user: str):
        return await nats.connect(
            url,
            user=user,
            password=env[f"NATS_{user.upper()}_PASSWORD"],
            inbox_prefix=f"_INBOX_{user}",
            allow_reconnect=False,
        )

    provisioner = await connect("provisioner")
    await ensure_streams(provisioner.jetstream())
    identity = await connect("identity")
    await identity.jetstream().publish("par.evt.c1.respondent.r1", b"{}")
    await identity.close()
    log_config = stream_configs(1)[0]
    for user in (*SERVICES, "auditor"):
        nc = await connect(user)
        js = nc.jetstream(timeout=1)
        attacks = {
            "max_age": js.update_stream(
                dataclasses.replace(log_config, max_age=2.0, duplicate_window=1.0)),
            "create": js.add_stream(dataclasses.replace(log_config, name="EVIL",
                                                        subjects=["evil.>"])),
            "delete": js.delete_stream("PARINDEX"),
            "purge": js.purge_stream("PARINDEX"),
            "message delete": js.delete_msg("PARINDEX", 1),
        }  # fmt: skip
        results = await asyncio.gather(*attacks.values(), return_exceptions=True)
        done = [n for n, r in zip(attacks, results, strict=True) if not isinstance(r, Exception)]
        assert not done, f"{user} could {done}"
        await nc.close()
    info = await provisioner.jetstream().stream_info("PARINDEX")
    assert (info.state.messages, info.config.max_age or 0) == (1, 0)
    await provisioner.close()


# ---------------------------------------------------------------- PostgreSQL and Caddy


def test_postgres_init_creates_a_database_and_role_per_service() -> None:
    sql = (DEPLOY / "postgres" / "init.sql").read_text()
    for name in SERVICES:
        assert re.search(rf"CREATE ROLE parindex_{name} LOGIN PASSWORD :'{name}_password';", sql)
        assert f"CREATE DATABASE parindex_{name} OWNER parindex_{name};" in sql
        assert f"REVOKE ALL ON DATABASE parindex_{name} FROM PUBLIC;" in sql
        assert f"\\getenv {name}_password PARINDEX_{name.upper()}_DB_PASSWORD" in sql
        assert (
            f"PARINDEX_{name.upper()}_DB_PASSWORD"
            in compose()["services"]["postgres"]["environment"]
        )


def test_caddyfile_routes_are_the_gateways_table() -> None:
    """One route table for the compose edge and `parindex up`'s gateway (decision 30)."""
    from parindex.gateway.routes import INTERNAL, ROUTES, caddy_block, caddy_routes_of

    text = (DEPLOY / "caddy" / "Caddyfile").read_text()
    assert caddy_routes_of(text) == caddy_block(), (
        "deploy/caddy/Caddyfile differs from parindex/gateway/routes.py: "
        "run `python -m parindex.gateway --write-caddyfile`"
    )
    matchers = dict(re.findall(r"^\s*@(\w+)\s+path\s+(.+)$", text, re.M))
    for route in ROUTES:
        assert matchers[route.service].split() == list(route.paths), route.service
        assert re.search(rf"handle @{route.service} \{{\s*reverse_proxy {route.service}:8000", text)
    assert matchers["internal"].split() == list(INTERNAL)
    assert re.search(r"@internal path [^\n]+\n\s*respond @internal 404", text)
    # Internal endpoints are refused before any route is tried.
    assert text.index("respond @internal 404") < text.index("handle @")
    assert re.search(r"handle /mail/\* \{\s*reverse_proxy mailpit:8025", text)
    assert compose()["services"]["mailpit"]["environment"]["MP_WEBROOT"] == "/mail/"
    all_paths = [p for r in ROUTES for p in r.paths]
    assert len(all_paths) == len(set(all_paths)), "a path is routed twice"


def test_every_page_and_api_route_of_the_services_is_routed() -> None:
    """A new route in a service that the door does not route would be a dead link behind it."""
    from parindex.gateway.routes import service_for
    from parindex.runtime.serve import SERVICES, build

    for name in SERVICES:
        app = build(name)
        for route in app.routes:
            path = getattr(route, "path", "")
            if (
                not path
                or path in ("/healthz", "/readyz", "/metrics")
                or path.startswith(("/docs", "/redoc", "/openapi.json"))
            ):
                continue
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            if name == "survey" and concrete == "/":  # identity owns "/": survey's is a redirect
                continue
            routed = service_for(concrete)
            assert routed == name, f"{name} serves {path}; the door sends it to {routed}"


def test_readme_covers_operations() -> None:
    text = (DEPLOY / "README.md").read_text().lower()
    for topic in (
        "docker compose up",
        "docker compose down",
        "advisory lock",
        "nats stream backup",
        "nats stream restore",
        "pg_dump",
        "parindex rebuild survey",
        "health stream",
        "parindex_ballot_key",
        "signing key",
    ):
        assert topic in text, topic


def test_nats_health_checks_the_streams_not_only_that_jetstream_is_on() -> None:
    """The full /healthz: meta leader contact and every stream replica current (decision 26)."""
    doc = yaml.safe_load(COMPOSE.read_text())
    for name in ("nats-1", "nats-2", "nats-3"):
        test = doc["services"][name]["healthcheck"]["test"]
        url = test[-1]
        assert url.endswith(":8222/healthz"), test
        assert "js-enabled-only" not in url and "js-server-only" not in url
