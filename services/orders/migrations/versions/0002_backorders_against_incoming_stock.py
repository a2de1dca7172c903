"""backorders against incoming stock: orders may allow them and carry a promised date;
fulfillments may wait for a promise; the old retry-until-stock-arrives bookkeeping goes; a new
pickup store's fulfillment names the ones it replaces; consolidated deliveries share a shipment; order lines count cancelled units

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
    op.add_column("orders", sa.Column("address_key", sa.String(length=400), nullable=True))
    op.add_column(
        "orders",
        sa.Column(
            "consolidated_with",
            postgresql.ARRAY(sa.String(length=64)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_orders_consolidation", "orders", ["customer_id", "address_key", "created_at"]
    )
    op.add_column(
        "orders",
        sa.Column(
            "cancellations",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "order_lines",
        sa.Column("cancelled_quantity", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("fulfillments", sa.Column("shipment_id", sa.String(length=64), nullable=True))
    op.create_index("ix_fulfillments_shipment_id", "fulfillments", ["shipment_id"])
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
    op.drop_index("ix_fulfillments_shipment_id", table_name="fulfillments")
    op.drop_column("fulfillments", "shipment_id")
    op.drop_column("order_lines", "cancelled_quantity")
    op.drop_column("orders", "cancellations")
    op.drop_index("ix_orders_consolidation", table_name="orders")
    op.drop_column("orders", "consolidated_with")
    op.drop_column("orders", "address_key")
    op.drop_column("fulfillments", "replaces")
    op.drop_column("fulfillments", "backorder")
    op.add_column("orders", sa.Column("backordered_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_column("orders", "promised_at")
    op.drop_column("orders", "allow_backorder")
