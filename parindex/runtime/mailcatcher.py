"""An embedded SMTP catcher for the demo: aiosmtpd stores each message, a page lists them.

`python -m parindex.runtime.mailcatcher --smtp-port 1025 --http-port 8025 --dir DIR`.
Messages are kept as .eml files so the demo's simulated respondents can read their
credentials the way a person would: from the invitation e-mail.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import html
import itertools
import os
import time
from pathlib import Path

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse


class _Store:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Mail holds credentials: only the owner reads the spool
        # (docs/architecture.md, decision 22).
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
        self._n = itertools.count(len(list(folder.glob("*.eml"))) + 1)

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        n = next(self._n)
        path = self.folder / f"{int(time.time() * 1000):013d}-{n:06d}.eml"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(envelope.original_content or b"")  # aiosmtpd sets it before DATA
        tmp.rename(path)  # readers never see half a message
        return "250 Message accepted for delivery"


def read_messages(folder: Path) -> list[dict]:
    out = []
    for path in sorted(folder.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain", "html"))
        out.append(
            {
                "id": path.stem,
                "to": str(msg["To"]),
                "subject": str(msg["Subject"]),
                "date": str(msg["Date"]),
                "text": body.get_content() if body is not None else "",
            }
        )
    return out


def viewer(folder: Path) -> FastAPI:
    # Links are relative: the pages work on their own port and under the gateway's /mail/.
    app = FastAPI(title="parindex mail catcher")

    @app.get("/api/messages")
    async def messages() -> JSONResponse:
        return JSONResponse(read_messages(folder))

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        rows = "".join(
            f"<tr><td>{html.escape(m['date'])}</td><td>{html.escape(m['to'])}</td>"
            f"<td><a href='m/{m['id']}'>{html.escape(m['subject'])}</a></td></tr>"
            for m in reversed(read_messages(folder))
        )
        return (
            "<!doctype html><meta charset=utf-8><meta name=viewport "
            "content='width=device-width,initial-scale=1'><title>Hộp thư demo</title>"
            "<h1>Hộp thư demo (SMTP catcher)</h1><table border=1 cellpadding=4>"
            f"<tr><th>Ngày</th><th>Đến</th><th>Tiêu đề</th></tr>{rows}</table>"
        )

    @app.get("/m/{mid}", response_class=HTMLResponse)
    async def one(mid: str) -> str:
        for m in read_messages(folder):
            if m["id"] == mid:
                return (
                    "<!doctype html><meta charset=utf-8><a href='../'>←</a>"
                    f"<h1>{html.escape(m['subject'])}</h1><p>{html.escape(m['to'])}</p>"
                    f"<pre style='white-space:pre-wrap'>{html.escape(m['text'])}</pre>"
                )
        raise HTTPException(404, "no such message")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="parindex-mailcatcher")
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    controller = Controller(_Store(args.dir), hostname="127.0.0.1", port=args.smtp_port)
    controller.start()
    try:
        uvicorn.run(viewer(args.dir), host="127.0.0.1", port=args.http_port, log_level="warning")
    finally:
        controller.stop()


if __name__ == "__main__":
    asyncio.set_event_loop(asyncio.new_event_loop())
    main()
