"""The local broker's opt-in SASL_SSL listener: its throwaway CA and certificate, its
properties, and the Kafka Connect worker's properties for a SASL_SSL cluster."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from core.settings import Settings
from hub import cdc_source
from hub.cli.kafka_cmd import sasl_env_lines
from hub.local_kafka import BrokerConfig, server_properties
from hub.local_tls import make_ca, make_server_cert, sasl_password, write_tls_files


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_the_server_certificate_is_signed_by_the_ca_for_loopback_names() -> None:
    ca = make_ca()
    server = make_server_cert(ca)
    server.cert.verify_directly_issued_by(ca.cert)
    san = server.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises((ValueError, InvalidSignature)):
        server.cert.verify_directly_issued_by(make_ca("another CA").cert)


def test_tls_files_are_written_once_with_the_key_private(tmp_path: Path) -> None:
    files = write_tls_files(tmp_path / "tls")
    pem = files.keystore.read_bytes()
    assert b"-----BEGIN PRIVATE KEY-----" in pem  # PKCS#8, what Kafka's PEM keystore reads
    assert load_pem_private_key(pem, password=None) is not None
    assert stat.S_IMODE(files.keystore.stat().st_mode) == 0o600
    server = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE") :])
    server.verify_directly_issued_by(x509.load_pem_x509_certificate(files.ca.read_bytes()))
    ca_before = files.ca.read_bytes()
    assert write_tls_files(tmp_path / "tls").ca.read_bytes() == ca_before  # kept, not remade


def test_the_scram_password_is_made_once_and_kept_private(tmp_path: Path) -> None:
    first = sasl_password(tmp_path)
    assert len(first) >= 24
    assert sasl_password(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "sasl-password").stat().st_mode) == 0o600


def test_the_sasl_listener_is_added_beside_plaintext_only_when_asked(tmp_path: Path) -> None:
    plain = props(server_properties(BrokerConfig(home=tmp_path, port=29092, controller_port=29093)))
    assert "SASL_SSL" not in plain["listeners"]
    assert "sasl.enabled.mechanisms" not in plain
    cfg = BrokerConfig(home=tmp_path, port=29092, controller_port=29093, sasl_port=29094)
    p = props(server_properties(cfg))
    assert p["listeners"] == (
        "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093,SASL_SSL://127.0.0.1:29094"
    )
    assert p["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092,SASL_SSL://127.0.0.1:29094"
    assert p["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert p["inter.broker.listener.name"] == "PLAINTEXT"
    assert p["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert p["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert p["listener.name.sasl_ssl.ssl.keystore.location"] == str(cfg.tls_files.keystore)
    assert "ScramLoginModule" in p["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]


def test_the_local_sasl_settings_point_at_the_listener_with_the_ca(tmp_path: Path) -> None:
    cfg = BrokerConfig(home=tmp_path, port=29092, controller_port=29093, sasl_port=29094)
    s = Settings.model_validate(cfg.sasl_settings())
    assert s.bootstrap_servers == "127.0.0.1:29094"
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert s.kafka_ssl_ca_file == cfg.tls_files.ca
    assert s.kafka_sasl_password is not None
    assert s.kafka_sasl_password.get_secret_value() == sasl_password(cfg.dir)


def test_the_connect_worker_reaches_a_sasl_cluster_without_the_password_on_disk(
    tmp_path: Path,
) -> None:
    s = Settings(
        home=tmp_path,
        kafka_bootstrap_servers="b-1:9096",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="hub",
        kafka_sasl_password="w0rker-secret",
        kafka_ssl_ca_file=tmp_path / "ca.pem",
    )
    text = cdc_source.worker_properties(s, tmp_path / "offsets.dat")
    assert "w0rker-secret" not in text
    p = props(text)
    reference = f"${{hub:{cdc_source.sealed_file(s)}:kafka.sasl.jaas.config}}"
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert p[f"{prefix}sasl.jaas.config"] == reference
        assert p[f"{prefix}security.protocol"] == "SASL_SSL"
    sealed = cdc_source.connect_secrets(s)
    assert 'password="w0rker-secret"' in sealed["kafka.sasl.jaas.config"]


def test_the_connect_worker_gets_the_client_certificate_as_one_properties_line(
    tmp_path: Path,
) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client-key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n")
    s = Settings(
        home=tmp_path,
        kafka_security_protocol="SSL",
        kafka_ssl_cert_file=cert,
        kafka_ssl_key_file=key,
    )
    p = props(cdc_source.worker_properties(s, tmp_path / "offsets.dat"))
    chain = p["producer.ssl.keystore.certificate.chain"]
    assert chain == "-----BEGIN CERTIFICATE-----\\nAAA\\n-----END CERTIFICATE-----\\n"
    assert p["producer.ssl.keystore.key"].startswith("${hub:")
    assert "BBB" not in cdc_source.worker_properties(s, tmp_path / "offsets.dat")
    assert cdc_source.connect_secrets(s)["kafka.ssl.keystore.key"] == key.read_text()


def test_hub_kafka_up_prints_the_variables_for_the_listener_but_not_the_password(
    tmp_path: Path,
) -> None:
    cfg = BrokerConfig(home=tmp_path, port=29092, controller_port=29093, sasl_port=29094)
    lines = sasl_env_lines(cfg)
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29094" in lines
    assert "HUB_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in lines
    assert f"HUB_KAFKA_SSL_CA_FILE={cfg.tls_files.ca}" in lines
    assert f"HUB_KAFKA_SASL_PASSWORD_FILE={cfg.dir / 'sasl-password'}" in lines
    assert not any(sasl_password(cfg.dir) in line for line in lines)
