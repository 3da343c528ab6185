"""A component's first word with Kafka: wrong credentials or an untrusted certificate
are an error at start, naming what to check, instead of a client that retries forever.

librdkafka treats a refused login or a failed TLS handshake like a broker that is
away: it reconnects with backoff and every call just times out. Its error callback
does hear the reason, so `check_connection` asks for metadata while listening to it.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from core.kafka import admin_config
from core.settings import Settings


class KafkaConnectionError(RuntimeError):
    """Kafka cannot be used with these settings; the message says what to check."""


def failure_message(settings: Settings, error: KafkaError) -> str | None:
    """What an error from librdkafka means for these settings, or None if it is one
    that can pass (a broker not up yet, a leader election)."""
    where = f"Kafka at {settings.bootstrap_servers}"
    code, reason = error.code(), error.str()
    if code == KafkaError._AUTHENTICATION:
        mechanism = settings.kafka_sasl_mechanism
        who = (
            f"client id {settings.kafka_oauth_client_id!r} at {settings.kafka_oauth_token_url}"
            if mechanism == "OAUTHBEARER"
            else f"user {settings.kafka_sasl_username!r}"
        )
        return (
            f"{where} refused SASL {mechanism} authentication as {who} ({reason}). Check "
            "HUB_KAFKA_SASL_USERNAME / HUB_KAFKA_SASL_PASSWORD (or the OAuth client), and "
            "that HUB_KAFKA_SASL_MECHANISM is one the cluster enables."
        )
    if code == KafkaError._SSL or "SSL handshake failed" in reason:
        ca = settings.kafka_ssl_ca_file or "the system's CA bundle"
        return (
            f"TLS with {where} failed ({reason}). Check that {ca} (HUB_KAFKA_SSL_CA_FILE) "
            "holds the CA that signed the brokers' certificates, that the address is a name "
            "in them, and that the port is the cluster's TLS listener."
        )
    return None


def check_connection(
    settings: Settings, timeout: float = 10.0, *, require_reachable: bool = False
) -> None:
    """Raise KafkaConnectionError if the cluster refuses these settings' credentials or
    TLS within `timeout` seconds. A cluster that does not answer at all is only an error
    with `require_reachable`: a component started before its broker waits for it (and
    without it, PLAINTEXT settings are not checked at all)."""
    if settings.kafka_security_protocol == "PLAINTEXT" and not require_reachable:
        return  # no credentials or certificates that could be wrong: nothing to wait for
    seen: list[KafkaError] = []
    try:
        # log_level 0: the reason is in the exception; librdkafka would print each retry.
        admin = AdminClient(admin_config(settings, error_cb=seen.append, log_level=0))
    except KafkaException as exc:
        raise KafkaConnectionError(
            f"cannot configure a Kafka client: {exc}. Check the HUB_KAFKA_SSL_* files "
            "exist, are readable PEM, and that the key password is right."
        ) from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except KafkaException:
            admin.poll(0.1)  # serves error_cb
        else:
            return
        for error in seen:
            message = failure_message(settings, error)
            if message is not None:
                raise KafkaConnectionError(message)
        if time.monotonic() >= deadline:
            break
    if require_reachable:
        last = f" (last: {seen[-1].str()})" if seen else ""
        raise KafkaConnectionError(
            f"Kafka at {settings.bootstrap_servers} did not answer in {timeout:.0f}s{last}: "
            "is it up, and is HUB_KAFKA_SECURITY_PROTOCOL the listener's protocol?"
        )
