"""Benchmark harness: Temporal floor, our service and PySpur 0.1.18."""
