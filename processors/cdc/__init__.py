"""The CDC consumer: Debezium change events -> sync streams and outbound sync commands."""
