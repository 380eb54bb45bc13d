"""Collector: OTLP on the wire → normalised span records (Arrow) ready for storage."""
