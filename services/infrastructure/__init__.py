"""Plumbing every service shares: settings, database and unit of work, outbox relay, inbox,
broker, problem+json errors, health, logs and telemetry. It knows no service."""
