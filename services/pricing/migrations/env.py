"""Alembic environment for the pricing database."""

from sqlmodel import SQLModel

import services.infrastructure.tables
import services.pricing.db  # noqa: F401  (registers the tables on SQLModel.metadata)
from services.infrastructure.migrations import run_migrations
from services.pricing.db import TABLES

run_migrations(SQLModel.metadata, TABLES)
