"""Ingress throughput: signed webhooks/s acknowledged by Kafka.

Baselines, same run, same machine:
- a trivial ASGI app on the same server (uvicorn, uvloop, httptools, one process)
  and the same load generator: the cost of verification + Avro + Kafka's ack;
- raw confluent-kafka produce of records of the same size: what the broker takes.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import post_load
from catalog.tenant_file import read_tenant_file
from core.kafka import admin_config, producer_config
from core.ports import free_port
from core.settings import Settings
from hub.stack import child_env
from providers.razorpay import RazorpayAccount, RazorpayVerifier

ROOT = Path(__file__).resolve().parents[1]


def signed_webhooks(secret: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
    verifier = RazorpayVerifier()
    out = []
    for _ in range(count):
        event_id = f"evt_{secrets.token_hex(7)}"
        body = json.dumps(
            {
                "entity": "event",
                "account_id": "acc_bench",
                "event": "payment.captured",
                "contains": ["payment"],
                "created_at": int(time.time()),
                "payload": {
                    "payment": {
                        "entity": {
                            "id": f"pay_{secrets.token_hex(7)}",
                            "entity": "payment",
                            "amount": 5_000_000,
                            "currency": "INR",
                            "status": "captured",
                            "order_id": f"order_{secrets.token_hex(7)}",
                            "method": "upi",
                            "captured": True,
                            "email": "parent@example.com",
                            "contact": "+919876543210",
                            "notes": {"invoice_id": "INV-1"},
                            "fee": 118000,
                            "tax": 18000,
                            "error_code": None,
                            "error_description": None,
                            "created_at": int(time.time()),
                        }
                    }
                },
            }
        ).encode()
        out.append(
            (
                body,
                {
                    "Content-Type": "application/json",
                    "X-Razorpay-Event-Id": event_id,
                    "X-Razorpay-Signature": verifier.sign(body, secret),
                },
            )
        )
    return out


def _serve(argv: list[str], env: dict[str, str], ready_url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{argv} did not become ready")


def _measure(url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int) -> float:
    post_load(url, requests[:500], concurrency)  # warm up connections, JIT-free but caches hot
    seconds, failures = post_load(url, requests, concurrency)
    if failures:
        raise RuntimeError(f"{failures} requests to {url} were not answered 200")
    return len(requests) / seconds


BASELINE_TOPIC = "bench.kafka-baseline"


def kafka_baseline(settings: Settings, size: int, count: int) -> float:
    """Raw confluent-kafka produce, same producer settings as the hub, same record size."""
    admin = AdminClient(admin_config(settings))
    topic = NewTopic(BASELINE_TOPIC, settings.topic_partitions, 1)
    for future in admin.create_topics([topic]).values():
        future.result(30)
    producer = Producer(producer_config(settings, "bench-baseline"))
    value = os.urandom(size)
    started = time.perf_counter()
    for i in range(count):
        while True:
            try:
                producer.produce(BASELINE_TOPIC, value=value, key=f"bench:{i}".encode())
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush()
    return count / (time.perf_counter() - started)


def run(settings: Settings, count: int = 20_000, concurrency: int = 64) -> dict[str, Any]:
    tenant = read_tenant_file(settings.home / "tenants.toml")[0]
    account = tenant.account("razorpay", RazorpayAccount)
    requests = signed_webhooks(account.webhook_secret.get_secret_value(), count)
    env = child_env(settings)
    trivial_port = free_port()
    trivial = _serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.trivial_app:app",
            "--port",
            str(trivial_port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env,
        f"http://127.0.0.1:{trivial_port}/",
    )
    try:
        trivial_rate = _measure(f"http://127.0.0.1:{trivial_port}/", requests, concurrency)
    finally:
        trivial.terminate()
        trivial.wait(10)
    ingress = _serve(
        [sys.executable, "-m", "hub", "ingress", "serve"], env, f"{settings.ingress_url}/readyz"
    )
    try:
        ingress_rate = _measure(
            f"{settings.ingress_url}/webhooks/razorpay/greenwood", requests, concurrency
        )
    finally:
        ingress.terminate()
        ingress.wait(10)
    record_size = len(requests[0][0]) + 600  # body + header, headers map, Avro framing
    kafka_rate = kafka_baseline(settings, record_size, count * 5)
    return {
        "webhooks": count,
        "concurrency": concurrency,
        "ingress_per_s": round(ingress_rate),
        "trivial_asgi_per_s": round(trivial_rate),
        "ingress_vs_trivial": round(ingress_rate / trivial_rate, 3),
        "raw_kafka_produce_per_s": round(kafka_rate),
        "ingress_vs_raw_kafka": round(ingress_rate / kafka_rate, 4),
    }
