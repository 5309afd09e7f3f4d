"""Kafka consumers: projections, alerts and webhooks fed from the relay's topic."""
