"""telemetry series per unit: the kind of each unit's series, and a bound on their number

Revision ID: 0009_influx
Revises: 0008_auth
Create Date: 2026-11-30 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_influx"
down_revision: str | None = "0008_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telemetry_series",
        sa.Column("product_imei", sa.String(length=15), nullable=False),
        sa.Column("measurement", sa.String(length=64), nullable=False),
        sa.Column("tags_key", sa.String(length=32), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=5), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_imei"],
            ["products.product_imei"],
            name=op.f("fk_telemetry_series_product_imei_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "product_imei", "measurement", "tags_key", "field", name=op.f("pk_telemetry_series")
        ),
    )


def downgrade() -> None:
    op.drop_table("telemetry_series")
