"""Kafka security settings become the right client properties, for librdkafka and for
Kafka Connect's Java clients, and no client config in the hub bypasses them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from pydantic import ValidationError

from core.kafka import admin_config, consumer_config, producer_config, transactional_config
from core.kafka_preflight import failure_message
from core.kafka_security import (
    SEALED_JAAS,
    SEALED_KEY,
    client_security,
    connect_jvm_options,
    connect_secret_values,
    connect_worker_security,
    jaas_config,
)
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

SCRAM = {
    "kafka_bootstrap_servers": "b-1.msk.example:9096",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "hub",
    "kafka_sasl_password": 'pa"ss\\word',
    "kafka_ssl_ca_file": "/etc/hub/ca.pem",
}
OIDC = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "OAUTHBEARER",
    "kafka_oauth_token_url": "https://idp.example/oauth2/token",
    "kafka_oauth_client_id": "hub-client",
    "kafka_oauth_client_secret": "client-s3cret",
    "kafka_oauth_scope": "kafka",
}
MTLS = {
    "kafka_security_protocol": "SSL",
    "kafka_ssl_ca_file": "/etc/hub/ca.pem",
    "kafka_ssl_cert_file": "/etc/hub/client.pem",
    "kafka_ssl_key_file": "/etc/hub/client-key.pem",
    "kafka_ssl_key_password": "key-pw",
}


def settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def ref(name: str) -> str:
    return f"<ref:{name}>"


def test_plaintext_adds_nothing_to_client_configs() -> None:
    assert client_security(Settings()) == {}
    assert admin_config(Settings(kafka_bootstrap_servers="k:9092")) == {
        "bootstrap.servers": "k:9092",
        "reconnect.backoff.max.ms": 1000,
        "client.id": "hub-admin",
    }


def test_scram_over_tls_gives_librdkafka_its_mechanism_credentials_and_ca() -> None:
    assert client_security(settings(**SCRAM)) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "hub",
        "sasl.password": 'pa"ss\\word',
        "ssl.ca.location": "/etc/hub/ca.pem",
    }


def test_oauthbearer_uses_librdkafkas_oidc_client_credentials() -> None:
    assert client_security(settings(**OIDC)) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.token.endpoint.url": "https://idp.example/oauth2/token",
        "sasl.oauthbearer.client.id": "hub-client",
        "sasl.oauthbearer.client.secret": "client-s3cret",
        "sasl.oauthbearer.scope": "kafka",
    }


def test_mutual_tls_gives_the_client_certificate_and_key() -> None:
    got = client_security(settings(**MTLS, kafka_ssl_verify_hostname=False))
    assert got == {
        "security.protocol": "SSL",
        "ssl.ca.location": "/etc/hub/ca.pem",
        "ssl.certificate.location": "/etc/hub/client.pem",
        "ssl.key.location": "/etc/hub/client-key.pem",
        "ssl.key.password": "key-pw",
        "ssl.endpoint.identification.algorithm": "none",
    }


def test_every_builder_carries_the_security_properties() -> None:
    s = settings(**SCRAM)
    built = [
        producer_config(s, "p"),
        transactional_config(s, "t", "t-0"),
        consumer_config(s, "g", static=True),
        admin_config(s),
    ]
    for config in built:
        assert config["bootstrap.servers"] == "b-1.msk.example:9096"
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.password"] == 'pa"ss\\word'


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs HUB_KAFKA_SASL_MECHANISM"),
        ({"kafka_sasl_mechanism": "PLAIN"}, "needs HUB_KAFKA_SECURITY_PROTOCOL"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-256"},
            "SCRAM-SHA-256 needs HUB_KAFKA_SASL_USERNAME and HUB_KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER"},
            "OAUTHBEARER needs HUB_KAFKA_OAUTH_TOKEN_URL",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/c.pem"},
            "HUB_KAFKA_SSL_CERT_FILE and HUB_KAFKA_SSL_KEY_FILE go together",
        ),
        ({"kafka_ssl_ca_file": "/ca.pem"}, "PLAINTEXT uses no TLS"),
    ],
)
def test_inconsistent_security_settings_are_refused_with_the_variable_to_fix(
    values: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(complaint)):
        settings(**values)


def test_the_security_settings_come_from_the_common_unprefixed_variables_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "api-key")
    monkeypatch.setenv("HUB_KAFKA_SASL_PASSWORD", "api-secret")
    got = client_security(Settings())
    assert (got["security.protocol"], got["sasl.mechanism"]) == ("SASL_SSL", "PLAIN")
    assert (got["sasl.username"], got["sasl.password"]) == ("api-key", "api-secret")


def test_the_sasl_password_never_shows_in_the_settings_repr() -> None:
    assert 'pa"ss' not in repr(settings(**SCRAM))


def test_connect_gets_java_property_names_and_only_references_to_secrets() -> None:
    props = connect_worker_security(settings(**SCRAM), ref)
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert props[f"{prefix}security.protocol"] == "SASL_SSL"
        assert props[f"{prefix}sasl.mechanism"] == "SCRAM-SHA-512"
        assert props[f"{prefix}sasl.jaas.config"] == ref(SEALED_JAAS)
        assert props[f"{prefix}ssl.truststore.type"] == "PEM"
        assert props[f"{prefix}ssl.truststore.location"] == "/etc/hub/ca.pem"
    assert not any("pa" + '"ss' in value for value in props.values())


def test_the_jaas_line_quotes_the_credentials_for_javas_parser() -> None:
    assert jaas_config(settings(**SCRAM)) == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="hub" password="pa\\"ss\\\\word";'
    )
    assert connect_secret_values(settings(**SCRAM)) == {SEALED_JAAS: jaas_config(settings(**SCRAM))}


def test_connect_oauthbearer_names_the_login_handler_token_url_and_allowed_url() -> None:
    s = settings(**OIDC)
    props = connect_worker_security(s, ref)
    assert props["producer.sasl.login.callback.handler.class"].endswith(
        "oauthbearer.OAuthBearerLoginCallbackHandler"
    )
    assert props["admin.sasl.oauthbearer.token.endpoint.url"] == OIDC["kafka_oauth_token_url"]
    assert connect_secret_values(s)[SEALED_JAAS] == (
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
        'clientId="hub-client" clientSecret="client-s3cret" scope="kafka";'
    )
    assert connect_jvm_options(s) == [
        "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=https://idp.example/oauth2/token"
    ]
    assert connect_jvm_options(settings(**SCRAM)) == []


def test_connect_mutual_tls_inlines_the_chain_and_seals_the_key() -> None:
    s = settings(**MTLS)
    props = connect_worker_security(s, ref, cert_pem="CERT")
    assert props["consumer.ssl.keystore.type"] == "PEM"
    assert props["consumer.ssl.keystore.certificate.chain"] == "CERT"
    assert props["consumer.ssl.keystore.key"] == ref(SEALED_KEY)
    assert "sasl.jaas.config" not in props
    assert connect_secret_values(s, key_pem="KEY")[SEALED_KEY] == "KEY"


def test_preflight_names_the_user_for_a_refused_login_and_the_ca_for_a_bad_handshake() -> None:
    s = settings(**SCRAM)
    refused = failure_message(s, KafkaError(KafkaError._AUTHENTICATION, "invalid credentials"))
    assert refused is not None
    assert "SCRAM-SHA-512" in refused and "'hub'" in refused and "invalid credentials" in refused
    handshake = failure_message(s, KafkaError(KafkaError._SSL, "certificate verify failed"))
    assert handshake is not None and "/etc/hub/ca.pem" in handshake
    assert failure_message(s, KafkaError(KafkaError._TRANSPORT, "Connection refused")) is None


# Files that may name bootstrap.servers themselves, and why.
RAW_CONFIG_ALLOWED = {
    "core/kafka.py": "client_config: the one place every client config starts from",
    "hub/local_kafka.py": "talks to the broker it starts, on its own PLAINTEXT listener",
    "hub/local_cluster.py": "likewise, for the local three-node cluster",
    "hub/cdc_source.py": "Kafka Connect's Java properties (security: connect_worker_security)",
}


def test_no_module_builds_a_kafka_client_config_of_its_own() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith((".venv/", "tests/", "build/")) or relative in RAW_CONFIG_ALLOWED:
            continue
        if '"bootstrap.servers"' in path.read_text(errors="replace"):
            offenders.append(relative)
    assert offenders == [], "build client configs with core.kafka.client_config (or a builder)"
