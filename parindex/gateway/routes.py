"""Which service answers which path: the one table the gateway and the Caddyfile share.

`deploy/caddy/Caddyfile` holds a block generated from ROUTES (`python -m parindex.gateway
--write-caddyfile`) and tests/deploy fails if it differs, so the embedded front door and the
compose edge route exactly the same paths (docs/architecture.md, decision 30).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Served by every service for probes and Prometheus; never routed from outside.
INTERNAL = ("/healthz", "/readyz", "/metrics")
# The mail catcher's pages (Mailpit in compose, parindex.runtime.mailcatcher under `up`).
MAIL_PREFIX = "/mail"


@dataclass(frozen=True)
class Route:
    service: str
    what: str
    # Caddy `path` matcher syntax: exact, or a prefix when it ends in `*`.
    paths: tuple[str, ...]


ROUTES: tuple[Route, ...] = (
    Route(
        "survey",
        "respondent pages, ballot intake and campaign setup",
        (
            "/survey*",
            "/api/ballots",
            "/api/draft",
            "/api/progress*",
            "/progress*",
            "/api/campaigns",
            "/api/form",
            "/api/receipts/verify",
            "/admin/campaigns*",
        ),
    ),
    Route(
        "scoring",
        "dashboards, reports, exports, publication, results API",
        ("/dashboard*", "/report*", "/export*", "/publish", "/api/results*"),
    ),
    Route("notify", "delivery log and resends", ("/api/deliveries*", "/deliveries*")),
    Route(
        "identity",
        "home, sign-in and out, password reset, respondent import and registry",
        (
            "/",
            "/login",
            "/logout",
            "/reset",
            "/admin/import*",
            "/admin/registry*",
            "/admin/staff*",
            "/focal*",
            "/api/respondents*",
        ),
    ),
)


def matches(pattern: str, path: str) -> bool:
    """Caddy's path matcher: case-insensitive, exact unless the pattern ends in `*`."""
    path, pattern = path.lower(), pattern.lower()
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


def service_for(path: str) -> str | None:
    """The service that answers `path`, or None (a 404 at the door)."""
    if path in INTERNAL or not path.startswith("/"):
        return None
    for route in ROUTES:
        if any(matches(p, path) for p in route.paths):
            return route.service
    return None


BEGIN = "\t# BEGIN routes: generated from parindex/gateway/routes.py"
END = "\t# END routes"


def caddy_block() -> str:
    """The Caddyfile's matchers and handles, rendered from ROUTES."""
    lines = [BEGIN, "\t# (python -m parindex.gateway --write-caddyfile); do not edit by hand."]
    for route in ROUTES:
        lines += [
            "",
            f"\t# {route.service}: {route.what}",
            f"\t@{route.service} path {' '.join(route.paths)}",
            f"\thandle @{route.service} {{",
            f"\t\treverse_proxy {route.service}:8000",
            "\t}",
        ]
    return "\n".join([*lines, END])


def caddy_routes_of(text: str) -> str:
    """The generated block as it stands in a Caddyfile's text ('' if it has none)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return ""
    return text[start : end + len(END)]


def write_caddyfile(path: Path) -> bool:
    """Replace the generated block in `path`; True if the file changed."""
    text = path.read_text()
    old = caddy_routes_of(text)
    if not old:
        raise ValueError(f"{path}: no '{BEGIN.strip()}' … '{END.strip()}' block")
    new = text.replace(old, caddy_block())
    if new != text:
        path.write_text(new)
    return new != text
