"""Major and minor units for the currencies the African gateways take (ISO 4217 exponents).

Flutterwave and Pesapal take amounts in major units (1500.50 KES) while the hub
counts minor units (150050). Most of their currencies have two decimals, but
UGX, RWF and the CFA francs have none: 5000 UGX is 5000 minor units, not 500000.
Getting that wrong would ask a Ugandan parent for a hundred times the fee.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

# ISO 4217 currencies without a minor unit (those a school's gateway may plausibly see).
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV"}
    | {"XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})


class AmountError(ValueError):
    """An amount that is no exact number of the currency's minor units."""


def exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def to_major(amount_minor: int, currency: str) -> Decimal:
    """150050 KES -> Decimal('1500.50'); 5000 UGX -> Decimal('5000')."""
    places = exponent(currency)
    divisor = Decimal(10) ** places
    return (Decimal(amount_minor) / divisor).quantize(Decimal(1).scaleb(-places))


def json_number(amount: Decimal) -> int | float:
    """A JSON number for a quantized amount: an int when whole, else the float whose
    shortest repr is exactly its decimal text (1500.5)."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def to_minor(value: Any, currency: str) -> int:
    """A gateway's major-unit amount (a number or its text) as minor units, exactly."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise AmountError(f"amount {value!r} is not a number")
    try:
        # str first: Decimal(0.1) is not 0.1, Decimal("0.1") is.
        minor = Decimal(str(value)).scaleb(exponent(currency))
    except InvalidOperation:
        raise AmountError(f"amount {value!r} is not a number") from None
    if not minor.is_finite() or minor != minor.to_integral_value():
        raise AmountError(f"amount {value!r} is not a whole number of {currency} minor units")
    return int(minor)
