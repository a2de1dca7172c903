"""quotes by creation, for the command center's quote->order conversion

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CONCURRENTLY: quotes are written on the busiest path, which a plain build would hold back.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_quotes_created_at", "quotes", ["created_at"], postgresql_concurrently=True
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_quotes_created_at", table_name="quotes", postgresql_concurrently=True)
