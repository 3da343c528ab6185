"""structlog JSON logging with tenant and correlation id, and secrets masked.

Context (tenant, correlation_id, provider) is bound with
`structlog.contextvars.bind_contextvars` at the edge that learns it, so every
line logged while handling that record carries it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from core import masking

MASK = "***"
SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "api_key",
        "apikey",
        "secret",
        "key_secret",
        "webhook_secret",
        "auth_token",
        "token",
        "password",
        "signature",
        "x-razorpay-signature",
        "x-twilio-signature",
        "stripe-signature",
    }
)


def _is_sensitive(key: str) -> bool:
    lowered = key.lower()
    return lowered in SENSITIVE_KEYS or lowered.endswith(("_secret", "_token", "_password"))


def mask_value(key: str, value: Any) -> Any:
    if _is_sensitive(key):
        return MASK
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    return value


def mask_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace the value of any sensitive key, at any depth."""
    for key in list(event_dict):
        event_dict[key] = mask_value(key, event_dict[key])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "json", component: str = "hub") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )

    def add_component(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        # Static, not a context variable: library threads (aiokafka's) log too.
        event_dict.setdefault("component", component)
        return event_dict

    shared: list[Any] = [
        add_component,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_secrets,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            # Last before rendering: by value too, so a loaded secret inside any
            # message or exception text never reaches a log line.
            masking.mask_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, httpx) log through the standard library; render
    # their lines as the same JSON so one parser reads every component's log.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                masking.mask_secrets,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
