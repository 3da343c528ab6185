"""Stateful stream processors (faust-streaming): normalize, deduplicate, reconcile, route."""
