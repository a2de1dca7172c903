"""initial inventory schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 07:55:08.139959
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("consumer", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("message_key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("event_type", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "locations",
        sa.Column("location_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("capabilities", sa.ARRAY(sa.String(length=16)), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("ship_capacity", sa.Integer(), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("feed_sequence", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("type IN ('warehouse', 'store', 'dropship')", name="ck_locations_type"),
        sa.PrimaryKeyConstraint("location_id"),
    )
    op.create_index(op.f("ix_locations_partner_id"), "locations", ["partner_id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("message_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("event_type", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "reservations",
        sa.Column("reservation_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("fulfillment_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("location_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("hold_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('held', 'committed', 'released', 'expired')", name="ck_reservations_status"
        ),
        sa.PrimaryKeyConstraint("reservation_id"),
    )
    op.create_index(
        "ix_reservations_expiring",
        "reservations",
        ["hold_until"],
        unique=False,
        postgresql_where=sa.text("status = 'held'"),
    )
    op.create_index(op.f("ix_reservations_order_id"), "reservations", ["order_id"], unique=False)
    op.create_table(
        "reservation_lines",
        sa.Column("reservation_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reservation_id"],
            ["reservations.reservation_id"],
        ),
        sa.PrimaryKeyConstraint("reservation_id", "sku"),
    )
    op.create_table(
        "stock_levels",
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("safety_stock", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("on_hand >= 0", name="ck_stock_levels_on_hand"),
        sa.CheckConstraint("reserved <= on_hand", name="ck_stock_levels_reserved_le_on_hand"),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_levels_reserved"),
        sa.CheckConstraint("safety_stock >= 0", name="ck_stock_levels_safety_stock"),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.location_id"],
        ),
        sa.PrimaryKeyConstraint("location_id", "sku"),
    )
    op.create_index("ix_stock_levels_sku", "stock_levels", ["sku"], unique=False)
    op.create_table(
        "movements",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("location_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sku", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("on_hand_delta", sa.Integer(), nullable=False),
        sa.Column("reserved_delta", sa.Integer(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["location_id", "sku"],
            ["stock_levels.location_id", "stock_levels.sku"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_movements_level", "movements", ["location_id", "sku"], unique=False)
    op.create_index("ix_movements_reference", "movements", ["reference"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_movements_reference", table_name="movements")
    op.drop_index("ix_movements_level", table_name="movements")
    op.drop_table("movements")
    op.drop_index("ix_stock_levels_sku", table_name="stock_levels")
    op.drop_table("stock_levels")
    op.drop_table("reservation_lines")
    op.drop_index(op.f("ix_reservations_order_id"), table_name="reservations")
    op.drop_index(
        "ix_reservations_expiring",
        table_name="reservations",
        postgresql_where=sa.text("status = 'held'"),
    )
    op.drop_table("reservations")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox")
    op.drop_index(op.f("ix_locations_partner_id"), table_name="locations")
    op.drop_table("locations")
    op.drop_table("inbox")
    op.drop_table("dead_letters")
