"""Observability: traces (OpenTelemetry), Prometheus metrics, structured logs and the Temporal UI texts.

Nothing here does work at import time; each process turns on what its settings ask for.
"""
