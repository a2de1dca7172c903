"""backorders against incoming stock: orders may allow them and carry a promised date;
fulfillments may wait for a promise; the old retry-until-stock-arrives bookkeeping goes; a new
pickup store's fulfillment names the ones it replaces

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("allow_backorder", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("orders", sa.Column("promised_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_column("orders", "backordered_at")
    op.add_column(
        "fulfillments",
        sa.Column("backorder", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "fulfillments",
        sa.Column(
            "replaces",
            postgresql.ARRAY(sa.String(length=64)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("fulfillments", "replaces")
    op.drop_column("fulfillments", "backorder")
    op.add_column("orders", sa.Column("backordered_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_column("orders", "promised_at")
    op.drop_column("orders", "allow_backorder")
