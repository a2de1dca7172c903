"""Alembic environment for the webhooks database."""

from services.infrastructure.migrations import run_migrations
from services.webhooks.db import METADATA

run_migrations(METADATA)
