"""A short-lived cache in front of any credential source."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from vulfix.tcapi.credentials import Credential, CredentialSource

_V = TypeVar("_V")


class CachedCredentialSource:
    """Remembers lookups, found or not, for `ttl` seconds.

    Keeps signature checks off the database; a key disabled or deleted elsewhere (say by the
    CLI, in another process) stops working within `ttl`. Misses have their own bound so that a
    flood of made-up SecretIds cannot push real keys out.
    """

    def __init__(
        self,
        source: CredentialSource,
        ttl: float = 1.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._found: OrderedDict[str, tuple[float, Credential]] = OrderedDict()
        self._missing: OrderedDict[str, float] = OrderedDict()

    async def lookup(self, secret_id: str) -> Credential | None:
        now = self._clock()
        hit = self._found.get(secret_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        missing_until = self._missing.get(secret_id)
        if missing_until is not None and missing_until > now:
            return None
        credential = await self._source.lookup(secret_id)
        expires = self._clock() + self._ttl
        if credential is None:
            self._found.pop(secret_id, None)
            self._remember(self._missing, secret_id, expires)
        else:
            self._missing.pop(secret_id, None)
            self._remember(self._found, secret_id, (expires, credential))
        return credential

    def invalidate(self, secret_id: str | None = None) -> None:
        """Forget one SecretId, or everything; for changes made in this process."""
        if secret_id is None:
            self._found.clear()
            self._missing.clear()
        else:
            self._found.pop(secret_id, None)
            self._missing.pop(secret_id, None)

    def _remember(self, entries: OrderedDict[str, _V], secret_id: str, value: _V) -> None:
        # Every entry lives `ttl`, so insertion order is expiry order: evict from the front.
        entries.pop(secret_id, None)
        entries[secret_id] = value
        while len(entries) > self._max_entries:
            entries.popitem(last=False)
