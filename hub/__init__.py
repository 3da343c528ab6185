"""Shared core of the integration hub: settings, Kafka plumbing, topic catalog, logging."""
