"""A small synchronous client for the simulators' `/_sim` control routes."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Self, cast

import httpx

POLL_INTERVAL = 0.05


class SimulatorClient:
    """Read recorded requests, queue faults, pay orders and resend webhooks.

    `transport` (or a ready `http_client`) replaces the network, for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_client = http_client is None
        self._http = http_client or httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_client:
            self._http.close()

    def _url(self, path: str) -> str:
        return f"{self.base_url}/_sim{path}"

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        return cast(dict[str, Any], response.json())

    # --- health and recorded requests --------------------------------------

    def health(self) -> bool:
        try:
            response = self._http.get(self._url("/health"), timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json().get("status") == "ok"

    def requests(self, provider: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Recorded requests, oldest first.

        Filters: `since_id=N`, `path=<substring of the path>`, `method=POST` (lookups are
        GETs on a send's path), body `key=value`.
        """
        params = {k: str(v) for k, v in match.items()}
        if provider is not None:
            params["provider"] = provider
        found = self._json(self._http.get(self._url("/requests"), params=params))["requests"]
        return cast(list[dict[str, Any]], found)

    def wait_for_requests(
        self, provider: str, count: int, *, timeout: float = 10.0, **match: Any
    ) -> list[dict[str, Any]]:
        """Poll until at least `count` matching requests were recorded; all of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests(provider, **match)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{provider}: saw {len(found)} of {count} requests matching {match} "
                    f"within {timeout}s"
                )
            time.sleep(POLL_INTERVAL)

    def clear(self) -> None:
        self._json(self._http.delete(self._url("/requests")))

    def reset(self) -> None:
        """Forget requests, faults, orders, payments and webhooks."""
        self._json(self._http.post(self._url("/reset")))

    # --- faults -------------------------------------------------------------

    def add_fault(
        self,
        provider: str,
        *,
        status: int = 503,
        times: int = 1,
        retry_after: float | None = None,
        mode: str = "status",
        delay_seconds: float = 0.0,
        match: dict[str, Any] | None = None,
        tenant: str | None = None,
        method: str | None = None,
    ) -> None:
        """Queue a fault. `mode="hold"` lets the provider act, then holds its answer until
        `release` (or `delay_seconds`, 30 s when 0); `method` limits it to e.g. POSTs,
        `tenant` to requests with that tenant's credentials."""
        body: dict[str, Any] = {
            "provider": provider,
            "mode": mode,
            "status": status,
            "times": times,
            "delay_seconds": delay_seconds,
        }
        if retry_after is not None:
            body["retry_after"] = retry_after
        if match:
            body["match"] = match
        if method is not None:
            body["method"] = method
        if tenant is not None:
            body["tenant"] = tenant
        self._json(self._http.post(self._url("/faults"), json=body))

    def effects(self) -> dict[str, list[dict[str, Any]]]:
        """Every SMS created, mail accepted and order made at the simulators."""
        return cast(
            dict[str, list[dict[str, Any]]], self._json(self._http.get(self._url("/effects")))
        )

    def faults(self) -> list[dict[str, Any]]:
        return cast(
            list[dict[str, Any]], self._json(self._http.get(self._url("/faults")))["faults"]
        )

    def clear_faults(self) -> None:
        self._json(self._http.delete(self._url("/faults")))

    def held(self, provider: str | None = None, wait: float = 0.0) -> list[dict[str, Any]]:
        """Answers held by "hold" faults (recorder id, provider, method, path, body, status...).

        With `wait`, the simulator waits up to that many seconds for a first one to be held.
        """
        params: dict[str, str] = {"wait": str(wait)}
        if provider is not None:
            params["provider"] = provider
        response = self._http.get(self._url("/held"), params=params, timeout=wait + 10.0)
        return cast(list[dict[str, Any]], self._json(response)["held"])

    def release(self, request_id: int) -> bool:
        """Send a held answer now; False when it is no longer held (sent, timed out, or its
        client went away)."""
        response = self._http.post(self._url(f"/held/{request_id}/release"))
        if response.status_code == 404:
            return False
        self._json(response)
        return True

    # --- Razorpay payments and webhooks -------------------------------------

    def pay_order(
        self,
        order_id: str,
        outcome: str = "captured",
        *,
        method: str = "card",
        error_code: str | None = None,
        error_description: str | None = None,
        webhook_url: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"outcome": outcome, "method": method}
        for key, value in (
            ("error_code", error_code),
            ("error_description", error_description),
            ("webhook_url", webhook_url),
        ):
            if value is not None:
                body[key] = value
        return self._json(self._http.post(self._url(f"/razorpay/orders/{order_id}/pay"), json=body))

    # --- every payment gateway (simulators/payments.py) --------------------

    def pay(
        self,
        provider: str,
        order_id: str,
        outcome: str = "success",
        *,
        amount_minor: int | None = None,
        currency: str | None = None,
        method: str | None = None,
        send_callback: bool = True,
        callback_url: str | None = None,
    ) -> dict[str, Any]:
        """The payer pays (or fails, cancels, lets time out) `provider`'s order."""
        body: dict[str, Any] = {"outcome": outcome, "send_callback": send_callback}
        for key, value in (
            ("amount_minor", amount_minor),
            ("currency", currency),
            ("method", method),
            ("callback_url", callback_url),
        ):
            if value is not None:
                body[key] = value
        return self._json(
            self._http.post(self._url(f"/payments/{provider}/orders/{order_id}/pay"), json=body)
        )

    def gateway_order(self, provider: str, order_id: str) -> dict[str, Any]:
        return self._json(self._http.get(self._url(f"/payments/{provider}/orders/{order_id}")))

    def callbacks(self, provider: str | None = None) -> list[dict[str, Any]]:
        params = {"provider": provider} if provider else {}
        found = self._json(self._http.get(self._url("/payments/callbacks"), params=params))
        return cast(list[dict[str, Any]], found["callbacks"])

    def resend_callback(self, callback_id: str, url: str | None = None) -> dict[str, Any]:
        body = {"url": url} if url else {}
        return self._json(
            self._http.post(self._url(f"/payments/callbacks/{callback_id}/resend"), json=body)
        )

    def resend_webhook(self, event_id: str, webhook_url: str | None = None) -> dict[str, Any]:
        body = {"webhook_url": webhook_url} if webhook_url else {}
        return self._json(
            self._http.post(self._url(f"/razorpay/webhooks/{event_id}/resend"), json=body)
        )

    def order(self, order_id: str) -> dict[str, Any]:
        return self._json(self._http.get(self._url(f"/razorpay/orders/{order_id}")))

    def webhooks(self) -> list[dict[str, Any]]:
        found = self._json(self._http.get(self._url("/razorpay/webhooks")))["webhooks"]
        return cast(list[dict[str, Any]], found)

    # --- messaging: which messages arrive, and their receipts ----------------

    def undeliverable(self, addresses: list[str], provider: str | None = None) -> None:
        """These recipients' messages are accepted but never arrive (an undelivered receipt)."""
        body = {"addresses": addresses, **({"provider": provider} if provider else {})}
        self._json(self._http.post(self._url("/messages/undeliverable"), json=body))

    def silent(self, addresses: list[str], provider: str | None = None) -> None:
        """These recipients' messages get no receipt at all."""
        body = {"addresses": addresses, **({"provider": provider} if provider else {})}
        self._json(self._http.post(self._url("/messages/silent"), json=body))

    def clear_receipt_rules(self) -> None:
        self._http.delete(self._url("/messages/rules")).raise_for_status()

    def receipts(self, provider: str | None = None) -> list[dict[str, Any]]:
        params = {"provider": provider} if provider else {}
        found = self._json(self._http.get(self._url("/messages/receipts"), params=params))
        return cast(list[dict[str, Any]], found["receipts"])

    # --- Google tokens and outbound-sync state ----------------------------

    def expire_google_tokens(self) -> int:
        """Expire every issued Google access token; how many were still live."""
        return int(self._json(self._http.post(self._url("/google/expire-tokens")))["expired"])

    def google_tokens(self) -> list[dict[str, Any]]:
        """Issued access tokens (tenant, service, scopes, subject, expiry; not the token)."""
        found = self._json(self._http.get(self._url("/google/tokens")))["tokens"]
        return cast(list[dict[str, Any]], found)

    def directory_users(self) -> list[dict[str, Any]]:
        """Workspace users the Directory API simulator knows, each with its tenant."""
        found = self._json(self._http.get(self._url("/gworkspace/users")))["users"]
        return cast(list[dict[str, Any]], found)

    def app_profiles(self) -> list[dict[str, Any]]:
        """Student profiles held by the mobile app backend simulator, each with its tenant."""
        found = self._json(self._http.get(self._url("/mobileapp/profiles")))["profiles"]
        return cast(list[dict[str, Any]], found)

    def sms_contacts(self) -> list[dict[str, Any]]:
        """The SMS gateway simulator's contact book, each contact with its tenant."""
        found = self._json(self._http.get(self._url("/smsgateway/contacts")))["contacts"]
        return cast(list[dict[str, Any]], found)
