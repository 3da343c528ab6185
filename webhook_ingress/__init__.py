"""Thin webhook ingress: verify the provider's signature, persist to Kafka, then answer."""

from webhook_ingress.app import create_app

__all__ = ["create_app"]
