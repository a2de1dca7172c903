"""Alembic environment for the gateway database."""

from services.gateway.db import METADATA
from services.infrastructure.migrations import run_migrations

run_migrations(METADATA)
