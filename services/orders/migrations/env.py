"""Alembic environment for the orders database."""

from services.infrastructure.migrations import run_migrations
from services.orders.db import METADATA

run_migrations(METADATA)
