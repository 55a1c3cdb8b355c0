"""Settings from PARINDEX_* environment variables, one place for every service."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"PARINDEX_{name}", default)


@dataclass(frozen=True)
class Settings:
    nats_url: str = field(default_factory=lambda: _env("NATS_URL", "nats://127.0.0.1:4222"))
    nats_user: str = field(default_factory=lambda: _env("NATS_USER"))
    nats_password: str = field(default_factory=lambda: _env("NATS_PASSWORD"))
    # A server URL without a database name; each service appends its own (parindex_<service>).
    database_url: str = field(
        default_factory=lambda: _env("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/")
    )
    stream_replicas: int = field(default_factory=lambda: int(_env("STREAM_REPLICAS", "1")))
    state_dir: Path = field(default_factory=lambda: Path(_env("STATE_DIR", ".parindex")))
    public_url: str = field(default_factory=lambda: _env("PUBLIC_URL", ""))
    # Secrets: from the environment or files under state_dir/secrets; never logged, never sent.
    ballot_key: str = field(default_factory=lambda: _env("BALLOT_KEY"))
    # Signs the form tokens of every service (docs/architecture.md, decision 25); empty: the
    # state directory's secrets/csrf_key, made on first use.
    csrf_key: str = field(default_factory=lambda: _env("CSRF_KEY"))
    smtp_host: str = field(default_factory=lambda: _env("SMTP_HOST", "127.0.0.1"))
    smtp_port: int = field(default_factory=lambda: int(_env("SMTP_PORT", "1025")))
    smtp_user: str = field(default_factory=lambda: _env("SMTP_USER"))
    smtp_password: str = field(default_factory=lambda: _env("SMTP_PASSWORD"))
    smtp_tls: str = field(default_factory=lambda: _env("SMTP_TLS", "none"))  # none|starttls|tls
    mail_from: str = field(default_factory=lambda: _env("MAIL_FROM", "khaosat@parindex.local"))
    mail_rate_per_s: float = field(default_factory=lambda: float(_env("MAIL_RATE", "50")))
    # Accelerated clock: campaign seconds per wall second (1 = real time). Demo and tests only.
    clock_speed: float = field(default_factory=lambda: float(_env("CLOCK_SPEED", "1")))
    clock_start: str = field(default_factory=lambda: _env("CLOCK_START"))
    # Wall time (unix seconds) at which the accelerated clock read clock_start: every process
    # of one demo then agrees on campaign time, whenever it started.
    clock_epoch: float = field(default_factory=lambda: float(_env("CLOCK_EPOCH", "0")))
    # A file that will hold that wall time: until it exists the clock stands at clock_start
    # (the demo starts campaign time once its lists are loaded; decision 40).
    clock_epoch_file: str = field(default_factory=lambda: _env("CLOCK_EPOCH_FILE"))
    # Seconds a stopping service gives its background tasks before it leaves them behind.
    shutdown_grace: float = field(default_factory=lambda: float(_env("SHUTDOWN_GRACE", "10")))
    # Addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For is believed; empty:
    # nobody's. The embedded stack has no proxy in front, so any local process could forge it.
    trusted_proxies: str = field(default_factory=lambda: _env("TRUSTED_PROXIES", ""))
    cookie_secure: bool = field(default_factory=lambda: _env("COOKIE_SECURE", "0") == "1")
    # The HTTP edge (docs/architecture.md, decision 22): body limits, API docs, who reads /metrics.
    max_body_bytes: int = field(default_factory=lambda: int(_env("MAX_BODY_BYTES", "2000000")))
    max_import_bytes: int = field(default_factory=lambda: int(_env("MAX_IMPORT_BYTES", "20000000")))
    api_docs: bool = field(default_factory=lambda: _env("API_DOCS", "0") == "1")
    metrics_allow: str = field(default_factory=lambda: _env("METRICS_ALLOW", ""))
    # Survey's processes on its one socket (docs/architecture.md, decision 44). Only survey:
    # identity keeps import previews in its memory, so a confirm must reach the same process.
    survey_workers: int = field(default_factory=lambda: max(1, int(_env("SURVEY_WORKERS", "1"))))

    def service_database_url(self, service: str) -> str:
        """SQLAlchemy async URL of the service's own database (docs/architecture.md, decision 4)."""
        return database_url_for(self.database_url, f"parindex_{service}")


def database_url_for(server_url: str, dbname: str) -> str:
    """Put `dbname` into a postgresql:// URL, keeping host, port, user and query (unix sockets)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(server_url)
    scheme = "postgresql+asyncpg"
    return urlunsplit((scheme, parts.netloc, f"/{dbname}", parts.query, ""))


def get_settings() -> Settings:
    return Settings()
