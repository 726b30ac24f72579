"""Observability: structured logs with a request id, Prometheus metrics.

Infrastructure like ``app.core``: it imports no domain. Domains that own a series (the jobs table's
counts and throughput) give ``Telemetry`` a collector; ``app.main`` wires them together.
"""
