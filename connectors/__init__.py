"""Connector workers: one per provider, calling its API with retries and idempotency."""
