"""Fuzzing the webhook verifiers and the ingress (issue 11).

`fuzz.deliveries` builds a validly signed delivery of every provider with webhooks,
`fuzz.mutations` turns one into hostile variants; the hypothesis properties
(tests/fuzz/), the atheris harnesses (fuzz/verifiers.py, fuzz/decision.py, `make fuzz`)
and the load run (bench/fuzz_ingress.py) all share them.
"""
