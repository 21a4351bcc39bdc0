"""migration pending appends

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 08:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "migration_pending",
        sa.Column("product_imei", sa.String(length=15), nullable=False),
        sa.Column("since_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_imei"],
            ["products.product_imei"],
            name=op.f("fk_migration_pending_product_imei_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("product_imei", name=op.f("pk_migration_pending")),
    )


def downgrade() -> None:
    op.drop_table("migration_pending")
