"""An HTTP refusal that also names the catalog text a person sees (docs/architecture.md, 25)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException


class Refused(HTTPException):
    """`detail` is the English API answer; `key` the page's text in the user's language."""

    def __init__(
        self, status_code: int, detail: Any, key: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code, detail, headers=headers)
        self.key = key
