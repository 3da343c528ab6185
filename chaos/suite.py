"""The scenarios of `make chaos`, in the order of the issue that asked for them."""

from __future__ import annotations

from chaos.data import cdc_and_relay_killed, poison_everywhere
from chaos.infra import broker_restarted, leader_killed, provider_outage, slow_provider
from chaos.scenarios import (
    Scenario,
    connectors_killed,
    gateway_failover,
    ingress_killed,
    processors_killed,
    retry_worker_killed,
    scaled_out_and_in,
)

SCENARIOS: dict[str, Scenario] = {
    "processors": processors_killed,
    "connectors": connectors_killed,
    "ingress": ingress_killed,
    "retries": retry_worker_killed,
    "cdc": cdc_and_relay_killed,
    "broker": broker_restarted,
    "cluster": leader_killed,
    "scale": scaled_out_and_in,
    "outage": provider_outage,
    "slow": slow_provider,
    "poison": poison_everywhere,
    "failover": gateway_failover,
}
