"""The per-process memory of valid key checks: how long it trusts one, what it never keeps, and its bound.
(The end-to-end guarantee, a revoked key refused by every server process within a second, is
tests/serving/test_workers.py; the same-process revocation is tests/api/test_auth.py.)"""

from __future__ import annotations

import pytest

from app.auth.key_cache import KeyCache
from app.auth.roles import Role
from app.auth.service import Principal
from app.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def principal(key_id: str = "key_a") -> Principal:
    return Principal(organisation_id="org", key_id=key_id, role=Role("predictor"))


def test_a_check_is_reused_only_within_the_ttl() -> None:
    clock = Clock()
    cache = KeyCache(0.5, clock=clock)
    assert cache.get("fa_x_secret") is None
    cache.put("fa_x_secret", principal())
    clock.now += 0.49
    assert cache.get("fa_x_secret") == principal()
    assert cache.get("fa_x_other") is None, "another secret with the same prefix is not the same key"
    clock.now += 0.01
    assert cache.get("fa_x_secret") is None


def test_forget_drops_every_check_of_a_key_and_zero_ttl_disables() -> None:
    cache = KeyCache(1.0, clock=Clock())
    cache.put("fa_x_one", principal("key_a"))
    cache.put("fa_y_two", principal("key_b"))
    cache.forget("key_a")
    assert cache.get("fa_x_one") is None and cache.get("fa_y_two") == principal("key_b")
    off = KeyCache(0.0)
    off.put("fa_x_one", principal())
    assert off.get("fa_x_one") is None


def test_the_memory_is_bounded_and_keeps_no_plaintext() -> None:
    clock = Clock()
    cache = KeyCache(1.0, max_entries=3, clock=clock)
    for i in range(10):
        cache.put(f"fa_{i}_secret", principal(f"key_{i}"))
        assert len(cache._entries) <= 3
    assert all(isinstance(k, bytes) and b"secret" not in k for k in cache._entries)


@pytest.mark.parametrize("seconds", [-0.1, 1.5])
def test_the_setting_cannot_exceed_one_second(seconds: float) -> None:
    with pytest.raises(ValueError, match="key_cache_seconds"):
        Settings(key_cache_seconds=seconds)
