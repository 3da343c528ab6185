"""`hub dlq stats`: counts and ages of dead letters. Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.dlq.model import DlqRecord


@dataclass(frozen=True)
class DlqStats:
    total: int
    by_error: Counter[str]
    by_provider: Counter[str]
    by_tenant: Counter[str]
    by_stage: Counter[str]
    by_status: Counter[str]
    oldest: datetime | None
    newest: datetime | None
    last_hour: int
    previous_hour: int

    @property
    def growth(self) -> str:
        if self.previous_hour == 0:
            return f"+{self.last_hour} (none the hour before)"
        change = (self.last_hour - self.previous_hour) / self.previous_hour * 100
        return f"+{self.last_hour} ({change:+.0f}% on the hour before)"


def compute(records: list[DlqRecord], now: datetime) -> DlqStats:
    hour = timedelta(hours=1)
    written = [r.written_at for r in records]
    return DlqStats(
        total=len(records),
        by_error=Counter(r.letter.error_class for r in records),
        by_provider=Counter(r.letter.provider or "-" for r in records),
        by_tenant=Counter(r.letter.header.tenant for r in records),
        by_stage=Counter(r.stage for r in records),
        by_status=Counter(str(r.status) for r in records),
        oldest=min(written, default=None),
        newest=max(written, default=None),
        last_hour=sum(now - w <= hour for w in written),
        previous_hour=sum(hour < now - w <= 2 * hour for w in written),
    )
