"""Who may do what on the bus: the one definition of the NATS accounts and users.

Both deploy/nats/accounts.conf (the compose cluster) and the config `parindex up` writes for its
embedded nats-server are rendered from USERS by `render_accounts`, so the two cannot drift
(docs/architecture.md, decision 18); tests/deploy checks the committed file is the rendering.
Regenerate with  python -m parindex.bus.permissions > deploy/nats/accounts.conf
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, field

from contracts import subjects

EVENTS = subjects.EVENTS_STREAM
DLQ = subjects.DLQ_STREAM
SERVICES = ("identity", "survey", "scoring", "notify")

# What every service may ask JetStream: read stream info and single messages, make and pull
# ephemeral consumers on the log. No stream create/update/delete/purge, no message delete.
_JS_READ = [
    "$JS.API.INFO",
    f"$JS.API.STREAM.INFO.{EVENTS}",
    f"$JS.API.STREAM.INFO.{DLQ}",
    f"$JS.API.STREAM.MSG.GET.{EVENTS}",
    f"$JS.API.DIRECT.GET.{EVENTS}",
    f"$JS.API.DIRECT.GET.{EVENTS}.>",
    f"$JS.API.CONSUMER.CREATE.{EVENTS}",
    f"$JS.API.CONSUMER.CREATE.{EVENTS}.>",
    f"$JS.API.CONSUMER.INFO.{EVENTS}.>",
    f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS}.>",
    f"$JS.ACK.{EVENTS}.>",
    f"$JS.FC.{EVENTS}.>",
]
# Belt and braces: even a later, wider allow cannot reach these.
_JS_NEVER = [
    "$JS.API.STREAM.CREATE.>",
    "$JS.API.STREAM.UPDATE.>",
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
]


@dataclass(frozen=True)
class User:
    name: str
    comment: str
    publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)
    publish_deny: list[str] = field(default_factory=list)
    subscribe_deny: list[str] = field(default_factory=list)
    unrestricted: bool = False  # operators only: no permissions block at all

    @property
    def password_variable(self) -> str:
        return f"NATS_{self.name.upper()}_PASSWORD"


def _service(name: str, comment: str, events: list[str], requests: list[str]) -> User:
    serves = {"identity": ["par.rpc.identity.>"], "survey": ["par.rpc.survey.>"],
              "notify": ["par.rpc.notify.>"]}.get(name, [])  # fmt: skip
    if serves:  # nats.micro discovery: PING/INFO/STATS for all, by name, by instance (decision 28)
        serves = [
            *serves,
            "$SRV.PING",
            "$SRV.INFO",
            "$SRV.STATS",
            f"$SRV.*.{name}",
            f"$SRV.*.{name}.*",
        ]
    return User(
        name=name,
        comment=comment,
        publish=[*events, "par.dlq.>", *requests, *_JS_READ],
        subscribe=[*serves, f"_INBOX_{name}.>"],
        publish_deny=list(_JS_NEVER),
    )


USERS: list[User] = [
    User(
        "admin",
        "Operators: backup/restore, stream edits. Not used by any service.",
        unrestricted=True,
    ),  # fmt: skip
    User(
        "provisioner",
        "Creates the streams and updates them to the code's config (`parindex up` before the "
        "services start; the one-shot nats-provision in compose). It cannot delete or purge a "
        "stream, delete a message, publish events or read replies of others.",
        publish=[
            "$JS.API.INFO",
            *(
                f"$JS.API.STREAM.{op}.{s}"
                for s in (EVENTS, DLQ)
                for op in ("INFO", "CREATE", "UPDATE")
            ),
        ],  # fmt: skip
        subscribe=["_INBOX_provisioner.>"],
        publish_deny=_JS_NEVER[2:],
    ),
    _service(
        "identity",
        "Respondent registry; serves credentials and the token verification key.",
        ["par.evt.*.respondent.>", "par.evt.*.account.>"],
        [
            "par.rpc.identity.public_key",
            "par.rpc.notify.reset",
            "par.rpc.survey.nonrespondents",
            "par.rpc.survey.progress",  # the focal point's page (decision 37)
        ],
    ),
    _service(
        "survey",
        "Campaigns, waves, deadline, ballots.",
        [
            "par.evt.*.campaign",
            "par.evt.*.campaign.>",
            "par.evt.*.wave.>",
            "par.evt.*.deadline",
            "par.evt.*.deadline.>",
            "par.evt.*.ballot.>",
        ],
        ["par.rpc.identity.public_key"],
    ),  # fmt: skip
    _service(
        "scoring",
        "Frozen results and their publication by an admin (decision 16).",
        ["par.evt.*.results", "par.evt.*.release"],
        ["par.rpc.identity.public_key"],
    ),
    _service(
        "notify",
        "Deliveries; asks identity for credentials, survey for non-respondents.",
        ["par.evt.*.delivery.>"],
        [
            "par.rpc.identity.credential",
            "par.rpc.identity.public_key",
            "par.rpc.survey.nonrespondents",
        ],
    ),  # fmt: skip
    User(
        "auditor",
        "Read-only: replays the log (`parindex audit`, `nats stream view`). It may create, "
        "inspect and pull from consumers on PARINDEX, read single messages, and nothing else.",
        publish=["$JS.API.STREAM.NAMES", *_JS_READ],
        subscribe=["_INBOX_auditor.>"],
        publish_deny=["par.>", *_JS_NEVER],
        subscribe_deny=["par.>"],
    ),
]

HEADER = """\
# GENERATED from parindex/bus/permissions.py — do not edit; regenerate with
#   python -m parindex.bus.permissions > deploy/nats/accounts.conf
# The same text is what `parindex up` gives its embedded nats-server (docs/architecture.md,
# decision 18). Passwords come from the environment ($NATS_*_PASSWORD: deploy/.env.example for
# compose, <state-dir>/secrets/nats_<user> for `parindex up`).
#
# Streams PARINDEX (par.evt.>) and PARINDEX_DLQ (par.dlq.>) live in account PARINDEX. Only the
# provisioner creates or updates them; nobody but an operator (admin) deletes or purges. Each
# service publishes only its own event subjects, dead letters and the requests it makes, and
# receives replies only on its own inbox prefix _INBOX_<user>.> (parindex/bus/connection.py
# connects with inbox_prefix="_INBOX_<user>"); it answers requests through allow_responses.
# Only identity may serve par.rpc.identity.> (credentials, the token verification key).
# A service that serves requests also answers nats.micro's $SRV.PING|INFO|STATS (discovery by
# operators: `nats micro ls`); only the unrestricted admin may ask.
"""


def _list(items: list[str], indent: str) -> str:
    inner = "".join(f'{indent}  "{s}"\n' for s in items)
    return f"[\n{inner}{indent}]"


def _block(allow: list[str], deny: list[str], indent: str) -> str:
    out = f"{{\n{indent}  allow: {_list(allow, indent + '  ')}\n"
    if deny:
        out += f"{indent}  deny: {_list(deny, indent + '  ')}\n"
    return out + f"{indent}}}"


def _render_user(user: User) -> str:
    ind = " " * 6
    comment = textwrap.wrap(f"{user.name}: {user.comment}", 90)
    lines = [f"{ind}# {c}" for c in comment]
    lines += [f"{ind}{{", f"{ind}  user: {user.name}"]
    lines += [f"{ind}  password: ${user.password_variable}"]
    if not user.unrestricted:
        p = ind + "    "
        lines += [
            f"{ind}  permissions: {{",
            f"{p}allow_responses: true",
            f"{p}publish: {_block(user.publish, user.publish_deny, p)}",
            f"{p}subscribe: {_block(user.subscribe, user.subscribe_deny, p)}",
            f"{ind}  }}",
        ]
    lines.append(f"{ind}}}")
    return "\n".join(lines)


def render_accounts() -> str:
    """The accounts block, with $NATS_<USER>_PASSWORD variables for nats-server to fill in."""
    users = "\n\n".join(_render_user(u) for u in USERS)
    return (
        f"{HEADER}\nsystem_account: SYS\n\naccounts {{\n  SYS {{\n    users: [\n"
        "      # `nats server report jetstream`, `nats server list` (operators only)\n"
        "      { user: sys, password: $NATS_SYS_PASSWORD }\n    ]\n  }\n\n"
        f"  PARINDEX {{\n    jetstream: enabled\n    users: [\n{users}\n    ]\n  }}\n}}\n"
    )


def password_variables() -> list[str]:
    """Every $NATS_*_PASSWORD the rendered accounts need."""
    return ["NATS_SYS_PASSWORD", *(u.password_variable for u in USERS)]


if __name__ == "__main__":
    sys.stdout.write(render_accounts())
