"""Alembic environment for the inventory database."""

from services.infrastructure.migrations import run_migrations
from services.inventory.db import METADATA

run_migrations(METADATA)
