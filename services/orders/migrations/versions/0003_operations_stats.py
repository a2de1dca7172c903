"""the command center's figures: when a fulfillment became ready for pickup, and indexes for
orders by creation (and those still pending) and fulfillments by location and creation, readiness
and rejection

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Built CONCURRENTLY: orders and fulfillments take writes all the time, and a plain CREATE INDEX
# would hold them back for as long as it reads the table.
_INDEXES = (
    ("ix_orders_created_at", "orders", ["created_at"], None),
    ("ix_orders_pending", "orders", ["created_at"], "status = 'pending'"),
    ("ix_fulfillments_location_created", "fulfillments", ["location_id", "created_at"], None),
    (
        "ix_fulfillments_location_ready",
        "fulfillments",
        ["location_id", "ready_at"],
        "ready_at IS NOT NULL",
    ),
    (
        "ix_fulfillments_location_rejected",
        "fulfillments",
        ["location_id", "updated_at"],
        "status = 'rejected'",
    ),
)


def upgrade() -> None:
    op.add_column("fulfillments", sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True))
    with op.get_context().autocommit_block():
        for name, table, columns, where in _INDEXES:
            op.create_index(
                name,
                table,
                columns,
                postgresql_concurrently=True,
                postgresql_where=sa.text(where) if where else None,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _, _ in reversed(_INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
    op.drop_column("fulfillments", "ready_at")
