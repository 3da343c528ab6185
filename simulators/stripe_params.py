"""Stripe's form parameters: bracket notation decoded, and the checks Stripe makes on them.

stripe-python (and the hub) encode nested parameters as `line_items[0][quantity]=1`,
`metadata[invoice_id]=inv-1` and lists as `expand[0]=...` or `expand[]=...`. A
parameter Stripe does not know is a 400 `parameter_unknown`; a missing one a 400
`parameter_missing`, naming the parameter as Stripe does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

SESSION_PARAMS = frozenset(
    {
        "cancel_url",
        "client_reference_id",
        "currency",
        "customer",
        "customer_email",
        "expand",
        "expires_at",
        "line_items",
        "locale",
        "metadata",
        "mode",
        "payment_intent_data",
        "payment_method_types",
        "submit_type",
        "success_url",
    }
)
REFUND_PARAMS = frozenset(
    {"amount", "charge", "expand", "metadata", "payment_intent", "reason", "instructions_email"}
)
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500


class ParamError(ValueError):
    """A 400 `invalid_request_error` naming the parameter, as Stripe answers."""

    def __init__(self, message: str, param: str, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code

    def response(self, error: Callable[..., Response]) -> Response:
        return error(400, self.message, "invalid_request_error", self.code, param=self.param)


def _parts(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    return [head, *rest.removesuffix("]").split("][")] if rest else [key]


def _listify(value: Any) -> Any:
    """Dicts keyed 0, 1, ... (from `a[0]` or `a[]`) become lists, recursively."""
    if not isinstance(value, dict):
        return value
    items = {k: _listify(v) for k, v in value.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def decode(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs in bracket notation as the nested parameters they stand for."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _parts(key)
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ParamError(f"Invalid object: {key}", parts[0])
            node = child
        last = parts[-1] or str(len(node))  # `a[]` appends
        if isinstance(node.get(last), dict):
            raise ParamError(f"Invalid value for {key}", parts[0])
        node[last] = value
    found = _listify(root)
    assert isinstance(found, dict)
    return found


def _unknown(params: dict[str, Any], known: frozenset[str]) -> None:
    for name in params:
        if name not in known:
            raise ParamError(f"Received unknown parameter: {name}", name, "parameter_unknown")


def _required(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value:
        raise ParamError(f"Missing required param: {param}.", param, "parameter_missing")
    return value


def _integer(value: Any, param: str, minimum: int) -> int:
    text = _required(value, param)
    if not (text.isascii() and text.isdigit()):
        raise ParamError(f"Invalid integer: {text}", param, "parameter_invalid_integer")
    if int(text) < minimum:
        raise ParamError(f"This value must be greater than or equal to {minimum}.", param)
    return int(text)


def metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ParamError(f"Invalid hash: {param}", param)
    if len(value) > MAX_METADATA_KEYS:
        raise ParamError(f"Metadata can have at most {MAX_METADATA_KEYS} keys.", param)
    for key, text in value.items():
        if len(key) > MAX_METADATA_KEY or len(text) > MAX_METADATA_VALUE:
            raise ParamError(f"Metadata key or value too long: {key}", f"{param}[{key}]")
    return dict(value)


@dataclass(frozen=True)
class SessionParams:
    currency: str
    amount_total: int
    metadata: dict[str, str]
    intent_metadata: dict[str, str]
    payment_method_types: list[str]
    success_url: str | None
    cancel_url: str | None
    client_reference_id: str | None
    customer_email: str | None


def _line_item_total(item: Any, index: int) -> tuple[str, int]:
    """The currency and amount of one `price_data` line item (stored prices: not simulated)."""
    at = f"line_items[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("price_data"), dict):
        raise ParamError(f"Missing required param: {at}[price_data].", at, "parameter_missing")
    price = item["price_data"]
    currency = _required(price.get("currency"), f"{at}[price_data][currency]").lower()
    if len(currency) != 3 or not currency.isalpha():
        raise ParamError(f"Invalid currency: {currency}", f"{at}[price_data][currency]")
    product = price.get("product_data")
    name_param = f"{at}[price_data][product_data][name]"
    _required(product.get("name") if isinstance(product, dict) else None, name_param)
    unit = _integer(price.get("unit_amount"), f"{at}[price_data][unit_amount]", 0)
    return currency, unit * _integer(item.get("quantity"), f"{at}[quantity]", 1)


def session_params(params: dict[str, Any]) -> SessionParams:
    _unknown(params, SESSION_PARAMS)
    if _required(params.get("mode"), "mode") != "payment":
        raise ParamError("Only mode=payment is simulated.", "mode")
    items = params.get("line_items")
    if not isinstance(items, list) or not items:
        raise ParamError("Missing required param: line_items.", "line_items", "parameter_missing")
    totals = [_line_item_total(item, i) for i, item in enumerate(items)]
    currencies = {c for c, _ in totals}
    if len(currencies) != 1:
        raise ParamError("All line items must share one currency.", "line_items")
    intent_data = params.get("payment_intent_data") or {}
    if not isinstance(intent_data, dict):
        raise ParamError("Invalid hash: payment_intent_data", "payment_intent_data")
    types = params.get("payment_method_types") or ["card"]
    if not isinstance(types, list):
        raise ParamError("Invalid array: payment_method_types", "payment_method_types")
    return SessionParams(
        currency=currencies.pop(),
        amount_total=sum(a for _, a in totals),
        metadata=metadata(params.get("metadata")),
        intent_metadata=metadata(intent_data.get("metadata"), "payment_intent_data[metadata]"),
        payment_method_types=[str(t) for t in types],
        success_url=params.get("success_url"),
        cancel_url=params.get("cancel_url"),
        client_reference_id=params.get("client_reference_id"),
        customer_email=params.get("customer_email"),
    )


@dataclass(frozen=True)
class RefundParams:
    payment_intent: str
    amount: int | None
    reason: str | None
    metadata: dict[str, str]


def refund_params(params: dict[str, Any]) -> RefundParams:
    _unknown(params, REFUND_PARAMS)
    intent = params.get("payment_intent")
    if not isinstance(intent, str) or not intent:
        message = (
            "One of the following params should be provided for this request: "
            "payment_intent or charge."
        )
        raise ParamError(message, "payment_intent", "parameter_missing")
    amount = params.get("amount")
    reason = params.get("reason")
    if reason is not None and reason not in REFUND_REASONS:
        raise ParamError(
            f"Invalid reason: must be one of {', '.join(sorted(REFUND_REASONS))}", "reason"
        )
    return RefundParams(
        payment_intent=intent,
        amount=None if amount is None else _integer(amount, "amount", 1),
        reason=reason,
        metadata=metadata(params.get("metadata")),
    )


def wants_intent(params: dict[str, Any]) -> bool:
    """Whether a retrieve asks for the PaymentIntent expanded (the only expansion simulated)."""
    expand = params.get("expand") or []
    if not isinstance(expand, list):
        raise ParamError("Invalid array: expand", "expand")
    for path in expand:
        if path != "payment_intent":
            raise ParamError(f"This property cannot be expanded ({path}).", "expand")
    return bool(expand)
