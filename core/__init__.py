"""The hub's ground floor: settings, Kafka plumbing, the topic catalog, logging,
tenants' in-memory model, encryption. It imports nothing above it (checked by
the import-linter contracts in pyproject.toml)."""
