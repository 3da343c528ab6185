"""Token buckets per tenant and per source address: one noisy sender cannot starve the rest.

`take` is the whole arithmetic, pure; `Buckets` only remembers one bucket per key, and
only so many keys (least recently used dropped first), so a flood from random source
addresses costs bounded memory. A dropped key starts again with a full bucket, which
is the generous direction: a limit may forget a sender, it never punishes a new one.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: float  # when `tokens` was counted (monotonic seconds)


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens added per second; 0: no limit
    burst: int  # the bucket's capacity

    @property
    def off(self) -> bool:
        return self.rate <= 0 or self.burst <= 0


def take(bucket: Bucket | None, now: float, limit: Limit) -> tuple[Bucket, float]:
    """The bucket after one request at `now`, and 0.0 if it was allowed, else how many
    seconds until one token is back (the request took nothing)."""
    if bucket is None:
        tokens = float(limit.burst)
    else:
        # A clock that went backwards (it should not: monotonic) refills nothing.
        tokens = min(float(limit.burst), bucket.tokens + max(0.0, now - bucket.at) * limit.rate)
    if tokens >= 1.0:
        return Bucket(tokens - 1.0, now), 0.0
    return Bucket(tokens, now), (1.0 - tokens) / limit.rate


def retry_after(seconds: float) -> int:
    """A Retry-After header's value: whole seconds, at least 1 (0 would invite a retry now)."""
    return max(1, math.ceil(seconds))


class Buckets:
    """One bucket per key under one limit, at most `capacity` keys."""

    def __init__(self, limit: Limit, capacity: int) -> None:
        self.limit = limit
        self.capacity = max(1, capacity)
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: str, now: float) -> float:
        """0.0: allowed; else seconds until `key` may send again."""
        if self.limit.off:
            return 0.0
        bucket, wait = take(self._buckets.pop(key, None), now, self.limit)
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self.capacity:
            self._buckets.popitem(last=False)
        return wait
