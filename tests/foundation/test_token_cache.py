"""Session tokens are verified once per token and remembered only until they expire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest

from parindex.web import auth
from parindex.web.auth import Principal, PublicKeyCache, issue_token, load_or_create_private_key

pytestmark = pytest.mark.unit


def _cache(tmp_path: Path) -> tuple[Any, PublicKeyCache]:
    key = load_or_create_private_key(tmp_path / "k.pem")
    cache = PublicKeyCache(nc=None)  # type: ignore[arg-type]  # the key is set, never fetched
    cache.pem = auth.public_pem(key)
    return key, cache


async def test_a_token_is_verified_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, cache = _cache(tmp_path)
    token = issue_token(key, Principal("r1", "respondent", "c1"))
    calls = []
    real = auth._verify
    monkeypatch.setattr(auth, "_verify", lambda pem, t: calls.append(t) or real(pem, t))
    assert (await cache.verify(token)).subject == "r1"
    assert (await cache.verify(token)).subject == "r1"
    assert len(calls) == 1


async def test_forged_and_expired_tokens_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, cache = _cache(tmp_path)
    good = issue_token(key, Principal("r1", "respondent", "c1"), ttl_s=60)
    await cache.verify(good)
    other = load_or_create_private_key(tmp_path / "other.pem")
    with pytest.raises(jwt.InvalidTokenError):
        await cache.verify(issue_token(other, Principal("r1", "respondent", "c1")))
    with pytest.raises(jwt.InvalidTokenError):
        await cache.verify(good[:-2] + ("AA" if not good.endswith("AA") else "BB"))
    # Past its expiry the remembered token is verified again (and PyJWT refuses it then).
    calls = []
    real = auth._verify
    monkeypatch.setattr(auth, "_verify", lambda pem, t: calls.append(t) or real(pem, t))
    await cache.verify(good)
    assert calls == []
    later = auth.time.time() + 61
    monkeypatch.setattr(auth.time, "time", lambda: later)
    await cache.verify(good)
    assert calls == [good]
