"""Bugs the fuzzers found that are reported and not fixed yet: each with its predicate.

The fuzzers pass over inputs these match (so that they keep looking for new bugs)
and count them apart; tests/fuzz/ pins each with a strict xfail, so a fix shows up
as a failure there and its entry here must go. FUZZ_KNOWN_BUGS=1 makes the atheris
harnesses treat them as crashes again.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from fuzz.mutations import Request
from providers.spec import Delivery

# None open. Fixed, each now a regression test (tests/fuzz/): Razorpay's verifier on a
# non-ASCII signature (TypeError), PayPal's on an unparseable PAYPAL-CERT-URL and
# Twilio's on an unparseable Host (ValueError from urlsplit): all three were 500s.
RAISING: dict[str, Callable[[str, Delivery], bool]] = {}


def raising(provider: str, delivery: Delivery) -> str | None:
    """The known bug that makes `provider`'s verifier raise on `delivery`, if any."""
    if os.environ.get("FUZZ_KNOWN_BUGS") == "1":
        return None
    return next((name for name, hit in RAISING.items() if hit(provider, delivery)), None)


def answered_500(request: Request) -> str | None:
    """The known bug that makes the ingress answer this request 500, if any (none open:
    a predicate over `request` goes here when one is found and not yet fixed).

    (An excuse for a 500, never a verdict: a request it names may well be refused first.)
    """
    del request
    return None


# Verifiers that check a signed timestamp but not its age (a captured delivery
# verifies for ever); tests/fuzz/test_verifiers_fuzz.py pins them.
# None open (SendGrid's verifier had no window; it has five minutes now).
UNBOUNDED_TIMESTAMPS: dict[str, str] = {}


def unbounded_timestamp(provider: str) -> bool:
    return provider in UNBOUNDED_TIMESTAMPS and os.environ.get("FUZZ_KNOWN_BUGS") != "1"
