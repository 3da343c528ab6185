"""How every Kafka client the hub makes reaches a cluster that wants TLS and SASL.

One set of settings (core/settings.py, "Kafka security") and two translations of
it: `client_security` for librdkafka (confluent-kafka's producers, consumers and
admin clients: the ingress, the stages, the connectors, every helper), and
`connect_security` for the Java clients of the Kafka Connect worker that runs
Debezium. Both are pure: a Settings in, client properties out.

The Connect worker's secrets (the JAAS line holding the SASL password or client
secret, a client key) never go into its properties file: the properties hold a
reference that the worker's config provider resolves (hub/connect_secrets.py),
and `connect_secret_values` gives the values to seal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
PASSWORD_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})

# Names of the Connect worker's sealed secrets (hub/connect_secrets.py).
SEALED_JAAS = "kafka.sasl.jaas.config"
SEALED_KEY = "kafka.ssl.keystore.key"
SEALED_KEY_PW = "kafka.ssl.key.password"

# The prefixes under which a Connect worker passes client settings to the
# producers, consumers and admin clients it makes for its connectors.
CONNECT_PREFIXES = ("", "producer.", "consumer.", "admin.")

_JAAS_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "OAUTHBEARER": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
}
_OAUTH_HANDLER = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
# Kafka 4 clients fetch tokens only from URLs this JVM system property allows.
OAUTH_ALLOWED_URLS_PROPERTY = "org.apache.kafka.sasl.oauthbearer.allowed.urls"


def security_problems(s: Settings) -> list[str]:
    """What is wrong with the security settings, each as a sentence naming the variable."""
    protocol, mechanism = s.kafka_security_protocol, s.kafka_sasl_mechanism
    problems = []
    if protocol in SASL_PROTOCOLS and mechanism is None:
        problems.append(f"{protocol} needs HUB_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-*, ...)")
    if protocol not in SASL_PROTOCOLS and mechanism is not None:
        problems.append(
            f"HUB_KAFKA_SASL_MECHANISM={mechanism} needs HUB_KAFKA_SECURITY_PROTOCOL "
            f"SASL_SSL (or SASL_PLAINTEXT), not {protocol}"
        )
    if mechanism in PASSWORD_MECHANISMS and not (s.kafka_sasl_username and s.kafka_sasl_password):
        problems.append(f"{mechanism} needs HUB_KAFKA_SASL_USERNAME and HUB_KAFKA_SASL_PASSWORD")
    if mechanism == "OAUTHBEARER" and not (
        s.kafka_oauth_token_url and s.kafka_oauth_client_id and s.kafka_oauth_client_secret
    ):
        problems.append(
            "OAUTHBEARER needs HUB_KAFKA_OAUTH_TOKEN_URL, HUB_KAFKA_OAUTH_CLIENT_ID "
            "and HUB_KAFKA_OAUTH_CLIENT_SECRET"
        )
    if (s.kafka_ssl_cert_file is None) != (s.kafka_ssl_key_file is None):
        problems.append("HUB_KAFKA_SSL_CERT_FILE and HUB_KAFKA_SSL_KEY_FILE go together")
    tls_files = (s.kafka_ssl_ca_file, s.kafka_ssl_cert_file, s.kafka_ssl_key_file)
    if protocol not in TLS_PROTOCOLS and any(f is not None for f in tls_files):
        # Silently ignored files would leave an operator believing the link is encrypted.
        problems.append(f"HUB_KAFKA_SSL_* files are set but {protocol} uses no TLS")
    return problems


def _secret(value: object) -> str:
    get = getattr(value, "get_secret_value", None)
    return str(get() if get is not None else value)


def client_security(s: Settings) -> dict[str, str]:
    """librdkafka's properties for the configured protocol ({} for PLAINTEXT)."""
    protocol = s.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    out: dict[str, str] = {"security.protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        out |= _librdkafka_tls(s)
    mechanism = s.kafka_sasl_mechanism
    if protocol in SASL_PROTOCOLS and mechanism is not None:
        out["sasl.mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            out |= _librdkafka_oidc(s)
        else:
            out["sasl.username"] = s.kafka_sasl_username or ""
            out["sasl.password"] = _secret(s.kafka_sasl_password or "")
    return out


def _librdkafka_tls(s: Settings) -> dict[str, str]:
    out: dict[str, str] = {}
    if s.kafka_ssl_ca_file is not None:
        out["ssl.ca.location"] = str(s.kafka_ssl_ca_file)
    if s.kafka_ssl_cert_file is not None and s.kafka_ssl_key_file is not None:
        out["ssl.certificate.location"] = str(s.kafka_ssl_cert_file)
        out["ssl.key.location"] = str(s.kafka_ssl_key_file)
    if s.kafka_ssl_key_password is not None:
        out["ssl.key.password"] = _secret(s.kafka_ssl_key_password)
    if not s.kafka_ssl_verify_hostname:
        out["ssl.endpoint.identification.algorithm"] = "none"
    return out


def _librdkafka_oidc(s: Settings) -> dict[str, str]:
    out = {
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.token.endpoint.url": s.kafka_oauth_token_url or "",
        "sasl.oauthbearer.client.id": s.kafka_oauth_client_id or "",
        "sasl.oauthbearer.client.secret": _secret(s.kafka_oauth_client_secret or ""),
    }
    if s.kafka_oauth_scope:
        out["sasl.oauthbearer.scope"] = s.kafka_oauth_scope
    return out


def _jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def jaas_config(s: Settings) -> str | None:
    """The Java clients' sasl.jaas.config line (it holds the secret), or None without SASL."""
    mechanism = s.kafka_sasl_mechanism
    if s.kafka_security_protocol not in SASL_PROTOCOLS or mechanism is None:
        return None
    if mechanism == "OAUTHBEARER":
        options = {
            "clientId": s.kafka_oauth_client_id or "",
            "clientSecret": _secret(s.kafka_oauth_client_secret or ""),
        }
        if s.kafka_oauth_scope:
            options["scope"] = s.kafka_oauth_scope
    else:
        options = {
            "username": s.kafka_sasl_username or "",
            "password": _secret(s.kafka_sasl_password or ""),
        }
    pairs = " ".join(f"{k}={_jaas_quote(v)}" for k, v in options.items())
    return f"{_JAAS_MODULES[mechanism]} required {pairs};"


def connect_secret_values(s: Settings, key_pem: str | None = None) -> dict[str, str]:
    """The Connect worker's secrets, by the names `connect_security` refers to them.
    `key_pem`: the client key file's content (mTLS), read by the caller."""
    values: dict[str, str] = {}
    jaas = jaas_config(s)
    if jaas is not None:
        values[SEALED_JAAS] = jaas
    if s.kafka_security_protocol in TLS_PROTOCOLS and key_pem is not None:
        values[SEALED_KEY] = key_pem
        if s.kafka_ssl_key_password is not None:
            values[SEALED_KEY_PW] = _secret(s.kafka_ssl_key_password)
    return values


def connect_security(
    s: Settings, secret: Callable[[str], str], cert_pem: str | None = None
) -> dict[str, str]:
    """Java client properties (unprefixed) for the configured protocol. `secret(name)` is
    what the properties hold in place of a secret (a config provider reference);
    `cert_pem`: the client certificate file's content (mTLS), read by the caller."""
    protocol = s.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    out: dict[str, str] = {"security.protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        if s.kafka_ssl_ca_file is not None:
            out |= {
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(s.kafka_ssl_ca_file),
            }
        if cert_pem is not None:
            out |= {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.certificate.chain": cert_pem,
                "ssl.keystore.key": secret(SEALED_KEY),
            }
            if s.kafka_ssl_key_password is not None:
                out["ssl.key.password"] = secret(SEALED_KEY_PW)
        if not s.kafka_ssl_verify_hostname:
            out["ssl.endpoint.identification.algorithm"] = ""  # Java's "off"
    if jaas_config(s) is not None and s.kafka_sasl_mechanism is not None:
        out |= {"sasl.mechanism": s.kafka_sasl_mechanism, "sasl.jaas.config": secret(SEALED_JAAS)}
        if s.kafka_sasl_mechanism == "OAUTHBEARER":
            out |= {
                "sasl.login.callback.handler.class": _OAUTH_HANDLER,
                "sasl.oauthbearer.token.endpoint.url": s.kafka_oauth_token_url or "",
            }
    return out


def connect_worker_security(
    s: Settings, secret: Callable[[str], str], cert_pem: str | None = None
) -> dict[str, str]:
    """`connect_security` for the worker itself and, prefixed, for the producers,
    consumers and admin clients it makes for connectors (which do not inherit it)."""
    base = connect_security(s, secret, cert_pem)
    return {f"{prefix}{key}": value for prefix in CONNECT_PREFIXES for key, value in base.items()}


def connect_jvm_options(s: Settings) -> list[str]:
    """System properties the worker's JVM needs (Kafka 4 allows token URLs explicitly)."""
    if s.kafka_sasl_mechanism == "OAUTHBEARER" and s.kafka_oauth_token_url:
        return [f"-D{OAUTH_ALLOWED_URLS_PROPERTY}={s.kafka_oauth_token_url}"]
    return []
