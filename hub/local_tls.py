"""Throwaway TLS material for the local broker's SASL_SSL listener (development, tests).

A CA made for this one broker directory and a server certificate it signs for
127.0.0.1 and localhost, as PEM files that both the broker (ssl.keystore.type=PEM)
and the hub's clients (HUB_KAFKA_SSL_CA_FILE) read. Nothing here is for production:
a real cluster's certificates come from its operator.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("localhost",)
LOOPBACK_ADDRESSES = ("127.0.0.1",)
VALID_FOR = datetime.timedelta(days=825)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate: what clients trust
    keystore: Path  # the server's PKCS#8 key and certificate, as Kafka's PEM keystore


@dataclass(frozen=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # An hour back: a clock a little behind still accepts a fresh certificate.
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALID_FOR)
    )


def make_ca(common_name: str = "integration-hub local CA") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(common_name, _name(common_name), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def make_server_cert(
    ca: Issued,
    names: tuple[str, ...] = LOOPBACK_NAMES,
    addresses: tuple[str, ...] = LOOPBACK_ADDRESSES,
) -> Issued:
    """A server certificate signed by `ca` whose SAN holds `names` and `addresses`
    (clients check the host they dialled against it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    san += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        _builder(names[0] if names else addresses[0], ca.cert.subject, key)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8: the one key format Kafka's PEM keystore reads.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    path.chmod(0o600)  # an existing file keeps its mode through os.open


def write_tls_files(directory: Path) -> TlsFiles:
    """ca.pem and server-keystore.pem under `directory`, made once and kept: a restarted
    broker keeps its certificate, so clients configured with ca.pem keep working."""
    files = TlsFiles(directory / "ca.pem", directory / "server-keystore.pem")
    if files.ca.exists() and files.keystore.exists():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca()
    server = make_server_cert(ca)
    _write_private(files.keystore, key_pem(server.key) + cert_pem(server.cert))
    files.ca.write_bytes(cert_pem(ca.cert))
    return files


# --- The local broker's SASL_SSL listener -----------------------------------------
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_USER = "hub"
SCRAM_ITERATIONS = 8192


def sasl_password(directory: Path) -> str:
    """The SCRAM user's password, made once per broker directory (0600) and kept."""
    path = directory / "sasl-password"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        _write_private(path, secrets.token_urlsafe(24).encode())
    return path.read_text().strip()


def sasl_listener_lines(lines: list[str], sasl_port: int, tls: TlsFiles) -> list[str]:
    """A broker's properties with a SASL_SSL listener added beside its PLAINTEXT one.
    Brokers and controllers keep talking PLAINTEXT on loopback; only clients that
    dial `sasl_port` authenticate (SCRAM) over TLS."""
    listener = f"SASL_SSL://127.0.0.1:{sasl_port}"
    added = {
        "listeners": listener,
        "advertised.listeners": listener,
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL",
    }
    out = []
    for line in lines:
        key = line.split("=", 1)[0]
        out.append(f"{line},{added[key]}" if key in added else line)
    prefix = "listener.name.sasl_ssl."
    return [
        *out,
        f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        f"{prefix}{SCRAM_MECHANISM.lower()}.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        f"{prefix}ssl.keystore.type=PEM",
        f"{prefix}ssl.keystore.location={tls.keystore}",
    ]


def client_settings(sasl_port: int, directory: Path, tls: TlsFiles) -> dict[str, object]:
    """Settings fields (core/settings.py) that point the hub at the SASL_SSL listener."""
    return {
        "kafka_bootstrap_servers": f"127.0.0.1:{sasl_port}",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": SCRAM_MECHANISM,
        "kafka_sasl_username": SCRAM_USER,
        "kafka_sasl_password": sasl_password(directory),
        "kafka_ssl_ca_file": tls.ca,
    }


def create_scram_user(admin: AdminClient, password: str, timeout: float = 15.0) -> None:
    """The SCRAM user, created (or its password reset) through the PLAINTEXT listener."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upsert = UserScramCredentialUpsertion(SCRAM_USER, info, password.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=timeout)
