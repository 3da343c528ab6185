"""Dead-letter operations: list, inspect, replay, purge, monitor."""
