"""incoming stock (supplies) and the promises of it to backorders

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(
            name,
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        )
        for name in ("created_at", "updated_at")
    ]


def upgrade() -> None:
    op.create_table(
        "supplies",
        sa.Column("supply_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("promised", sa.Integer(), nullable=False),
        sa.Column("expected_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("quantity > 0", name="ck_supplies_quantity"),
        sa.CheckConstraint("received >= 0", name="ck_supplies_received"),
        sa.CheckConstraint("promised >= 0", name="ck_supplies_promised"),
        sa.CheckConstraint("received + promised <= quantity", name="ck_supplies_within_quantity"),
        sa.ForeignKeyConstraint(["location_id"], ["locations.location_id"]),
        sa.PrimaryKeyConstraint("supply_id"),
    )
    op.create_index("ix_supplies_sku_location", "supplies", ["sku", "location_id"], unique=False)
    op.create_table(
        "promises",
        sa.Column("promise_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("fulfillment_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("promised_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('promised', 'reserved', 'released')", name="ck_promises_status"
        ),
        sa.ForeignKeyConstraint(["location_id"], ["locations.location_id"]),
        sa.PrimaryKeyConstraint("promise_id"),
    )
    op.create_index(op.f("ix_promises_order_id"), "promises", ["order_id"], unique=False)
    op.create_table(
        "promise_lines",
        sa.Column("promise_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["promise_id"], ["promises.promise_id"]),
        sa.PrimaryKeyConstraint("promise_id", "sku"),
    )
    op.create_table(
        "promise_draws",
        sa.Column("promise_id", sa.String(length=64), nullable=False),
        sa.Column("supply_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("arrived", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_promise_draws_quantity"),
        sa.CheckConstraint("arrived >= 0 AND arrived <= quantity", name="ck_promise_draws_arrived"),
        sa.ForeignKeyConstraint(["promise_id"], ["promises.promise_id"]),
        sa.ForeignKeyConstraint(["supply_id"], ["supplies.supply_id"]),
        sa.PrimaryKeyConstraint("promise_id", "supply_id"),
    )
    op.create_index("ix_promise_draws_supply", "promise_draws", ["supply_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_promise_draws_supply", table_name="promise_draws")
    op.drop_table("promise_draws")
    op.drop_table("promise_lines")
    op.drop_index(op.f("ix_promises_order_id"), table_name="promises")
    op.drop_table("promises")
    op.drop_index("ix_supplies_sku_location", table_name="supplies")
    op.drop_table("supplies")
