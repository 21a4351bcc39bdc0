"""Telemetry: ingest, the hot stores (embedded, InfluxDB 1.x), the long-term archive, reads."""
