"""Alembic environment for the pricing database."""

from services.infrastructure.migrations import run_migrations
from services.pricing.db import METADATA

run_migrations(METADATA)
