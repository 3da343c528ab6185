"""A connector's calls behind its provider accounts' circuit breakers (core.breaker).

Before a call the worker asks the fleet's breaker for the account: closed,
it calls; open, it does not, and answers a retryable `circuit_open` result
(the messenger sends the message through the backup, or a retry tier brings
the command back later); half-open, only the worker holding the probe grant
calls. After a call it appends the outcome to hub.breakers.events.v1, in the
same transaction as the command's result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

import providers
from connectors.executor import circuit_open
from core.breaker import BreakerConfig, Refuse, account_key
from core.breaker_view import BreakerView, FleetBreakers, event_record
from core.kafka import Record
from core.settings import Settings
from core.tenants import TenantDirectory
from schemas.events import ConnectorCommand, ConnectorResult, ResultStatus

log = structlog.get_logger("connectors")


class BreakerGuard:
    def __init__(
        self, provider: str, settings: Settings, tenants: TenantDirectory, worker: str
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.tenants = tenants
        self.worker = worker
        declared = providers.get(provider)
        self.enabled = declared.category in settings.breaker_categories
        messaging = declared.messaging
        self.account_errors = messaging.account_errors if messaging else frozenset()
        self.view: BreakerView | None = None
        self.breakers: FleetBreakers | None = None

    # One view per process, shared by its workers (one consumer, not one per provider).
    _shared: BreakerView | None = None
    _users = 0

    def start(self) -> None:
        if not self.enabled:
            return
        if BreakerGuard._shared is None:
            BreakerGuard._shared = BreakerView.start(self.settings)
        BreakerGuard._users += 1
        self.view = BreakerGuard._shared
        config = BreakerConfig.from_settings(self.settings)
        self.breakers = FleetBreakers(self.view, self.worker, config)

    def close(self) -> None:
        if self.view is None:
            return
        self.view = None
        BreakerGuard._users -= 1
        if BreakerGuard._users == 0 and BreakerGuard._shared is not None:
            BreakerGuard._shared.close()
            BreakerGuard._shared = None

    async def call(
        self,
        command: ConnectorCommand,
        in_doubt: bool,
        carry_out: Callable[[], Awaitable[ConnectorResult]],
    ) -> tuple[ConnectorResult, list[Record]]:
        """The call's result and the breaker events it leaves.

        A command in doubt is never refused: its ledger entry must keep the doubt,
        and asking the provider is how the doubt ends."""
        account = self.account_of(command)
        if self.breakers is None or account is None or in_doubt:
            return await carry_out(), []
        admission = self.breakers.admit(account)
        if isinstance(admission, Refuse):
            log.info("command.circuit_open", account=account, reason=admission.reason)
            asked = [event_record(admission.ask)] if admission.ask is not None else []
            return circuit_open(command, admission.reason), asked
        result = await carry_out()
        ok = self.provider_was_fine(result)
        told = self.breakers.outcome(account, ok, admission, result.error_message or "")
        return result, [told]

    def account_of(self, command: ConnectorCommand) -> str | None:
        tenant = self.tenants.get(command.header.tenant)
        if tenant is None:
            return None
        label = command.account
        if label is None:
            primary = tenant.accounts_for(self.provider)
            label = primary[0].label if primary else None
        return None if label is None else account_key(tenant.id, self.provider, label)

    def provider_was_fine(self, result: ConnectorResult) -> bool:
        """A delivery, or a refusal of this message (an invalid number): the provider
        works. Retryable failures and the account's own errors count against it."""
        if result.status is ResultStatus.DELIVERED:
            return True
        return not result.retryable and result.error_code not in self.account_errors
