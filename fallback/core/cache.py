"""A value read at most once per time-to-live per process: how every worker sees a change within a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Cached(Generic[T]):
    """A value as this process last read it, re-read at most every `ttl` seconds.

    Every worker sees a change within `ttl`, at the cost of one read per worker per `ttl`
    instead of one per request.
    """

    def __init__(self, load: Callable[[], T], ttl: float = 0.5, monotonic: Callable[[], float] = time.monotonic):
        self._load = load
        self._ttl = ttl
        self._monotonic = monotonic
        self._value: T | None = None
        self._read_at = float("-inf")

    def get(self) -> T:
        """The value, from memory while fresh."""
        now = self._monotonic()
        if self._value is None or now - self._read_at >= self._ttl:
            self._value = self._load()
            self._read_at = now
        return self._value

    def invalidate(self) -> None:
        """Forget the cached reading, after this process changed the value itself."""
        self._value = None
