"""What this connector has already delivered, by idempotency key.

Providers without an idempotency key of their own (Twilio, SendGrid) are
protected by this ledger: a command whose key was delivered before is
answered from the ledger and not sent again. The ledger is the compacted
results topic; results share their command's key, so a worker rebuilds it
for exactly the partitions it is assigned, before it takes any command.

The one window it cannot close: a crash after the provider accepted a call
and before its result reached Kafka. There, a provider-side key (Razorpay's
unique receipt) is the only true guard; the README says so.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.events import ConnectorResult, ResultStatus


class Ledger:
    def __init__(self) -> None:
        self._delivered: dict[str, ConnectorResult] = {}

    def remember(self, result: ConnectorResult) -> None:
        # Only deliveries block a resend: a failed command must stay retryable
        # (by retry tiers or an operator's replay) under the same key.
        if result.status is ResultStatus.DELIVERED:
            self._delivered.setdefault(result.idempotency_key, result)

    def remember_all(self, results: Iterable[ConnectorResult]) -> int:
        count = 0
        for result in results:
            self.remember(result)
            count += 1
        return count

    def delivered(self, idempotency_key: str) -> ConnectorResult | None:
        return self._delivered.get(idempotency_key)

    def __len__(self) -> int:
        return len(self._delivered)
