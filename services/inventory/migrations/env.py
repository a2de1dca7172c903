"""Alembic environment for the inventory database."""

from sqlmodel import SQLModel

import services.infrastructure.tables
import services.inventory.db  # noqa: F401  (registers the tables on SQLModel.metadata)
from services.infrastructure.migrations import run_migrations
from services.inventory.db import TABLES

run_migrations(SQLModel.metadata, TABLES)
