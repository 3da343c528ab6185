"""The Kafka-bound stages: each wires pure decisions (processors/normalize.py,
fees.py, matching.py, message_flow.py, bulk.py) to its topics and state tables through the
stage runner. A stage module reads and writes Kafka; the modules it calls never do."""
