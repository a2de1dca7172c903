"""idempotency keys are scoped to the operation (method and path) they were sent with

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


def upgrade() -> None:
    # Records made before this revision do not say which operation they answered. They keep an
    # empty operation, answer no replay any more, and are purged with the rest after the
    # retention (24 h): a client retrying across the upgrade gets its request run again, which
    # the services behind dedupe only where their own keys match. Upgrade while no client is
    # retrying, as deploy/OPERATIONS.md says.
    op.add_column(
        "idempotency_records",
        sa.Column(
            "operation",
            sqlmodel.sql.sqltypes.AutoString(length=600),
            nullable=False,
            server_default="",
        ),
    )
    op.alter_column("idempotency_records", "operation", server_default=None)
    op.drop_constraint("idempotency_records_pkey", "idempotency_records", type_="primary")
    op.create_primary_key(
        "idempotency_records_pkey",
        "idempotency_records",
        ["key_id", "operation", "idempotency_key"],
    )


def downgrade() -> None:
    op.execute("DELETE FROM idempotency_records")
    op.drop_constraint("idempotency_records_pkey", "idempotency_records", type_="primary")
    op.drop_column("idempotency_records", "operation")
    op.create_primary_key(
        "idempotency_records_pkey", "idempotency_records", ["key_id", "idempotency_key"]
    )
