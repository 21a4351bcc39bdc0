"""parameter rollouts

Revision ID: 0010_rollout
Revises: 0009_influx
Create Date: 2026-11-30 04:40:00.134707
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_rollout"
down_revision: str | None = "0009_influx"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "parameter_rollouts",
        sa.Column("parameter_rollout_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=6), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=True),
        sa.Column("q", sa.JSON(), nullable=False),
        sa.Column("parameter_type_id", sa.Integer(), nullable=False),
        sa.Column("part_type_id", sa.Integer(), nullable=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("phases", sa.JSON(), nullable=True),
        sa.Column("phase_sizes", sa.JSON(), nullable=True),
        sa.Column("rate_per_minute", sa.Integer(), nullable=True),
        sa.Column("wait_seconds", sa.Integer(), nullable=False),
        sa.Column("confirm_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("abort_failure_percent", sa.Float(), nullable=False),
        sa.Column("abort_min_units", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=9), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("targets", sa.Integer(), nullable=False),
        sa.Column("phases_total", sa.Integer(), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("phase_started_at", sa.DateTime(), nullable=True),
        sa.Column("baseline_failed", sa.Integer(), nullable=False),
        sa.Column("baseline_tried", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("confirmed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("superseded", sa.Integer(), nullable=False),
        sa.Column("out_of_scope", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("modified_at", sa.DateTime(), nullable=True),
        sa.Column("modified_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["entities.entity_id"],
            name=op.f("fk_parameter_rollouts_entity_id_entities"),
        ),
        sa.ForeignKeyConstraint(
            ["parameter_type_id"],
            ["parameter_types.parameter_type_id"],
            name=op.f("fk_parameter_rollouts_parameter_type_id_parameter_types"),
        ),
        sa.ForeignKeyConstraint(
            ["part_type_id"],
            ["part_types.part_type_id"],
            name=op.f("fk_parameter_rollouts_part_type_id_part_types"),
        ),
        sa.CheckConstraint(
            "scope IN ('GLOBAL', 'ENTITY')", name=op.f("ck_parameter_rollouts_scope_choice")
        ),
        sa.CheckConstraint(
            "state IN ('running', 'paused', 'cancelled', 'completed')",
            name=op.f("ck_parameter_rollouts_state_choice"),
        ),
        sa.PrimaryKeyConstraint("parameter_rollout_id", name=op.f("pk_parameter_rollouts")),
    )
    with op.batch_alter_table("parameter_rollouts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_parameter_rollouts_entity_id"), ["entity_id"], unique=False
        )

    op.create_table(
        "parameter_rollout_events",
        sa.Column("parameter_rollout_event_id", sa.Integer(), nullable=False),
        sa.Column("parameter_rollout_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=9), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["parameter_rollout_id"],
            ["parameter_rollouts.parameter_rollout_id"],
            name=op.f("fk_parameter_rollout_events_parameter_rollout_id_parameter_rollouts"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "event IN ('created', 'paused', 'resumed', 'cancelled', 'completed')",
            name=op.f("ck_parameter_rollout_events_event_choice"),
        ),
        sa.PrimaryKeyConstraint(
            "parameter_rollout_event_id", name=op.f("pk_parameter_rollout_events")
        ),
    )
    with op.batch_alter_table("parameter_rollout_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_parameter_rollout_events_parameter_rollout_id"),
            ["parameter_rollout_id"],
            unique=False,
        )

    op.create_table(
        "parameter_rollout_targets",
        sa.Column("parameter_rollout_target_id", sa.Integer(), nullable=False),
        sa.Column("parameter_rollout_id", sa.Integer(), nullable=False),
        sa.Column("product_imei", sa.String(length=15), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("part_id", sa.Integer(), nullable=True),
        sa.Column("product_parameter_id", sa.Integer(), nullable=True),
        sa.Column("part_parameter_id", sa.Integer(), nullable=True),
        sa.Column("set_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parameter_rollout_id"],
            ["parameter_rollouts.parameter_rollout_id"],
            name=op.f("fk_parameter_rollout_targets_parameter_rollout_id_parameter_rollouts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["part_parameter_id"],
            ["part_parameters.part_parameter_id"],
            name=op.f("fk_parameter_rollout_targets_part_parameter_id_part_parameters"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["product_parameter_id"],
            ["product_parameters.product_parameter_id"],
            name=op.f("fk_parameter_rollout_targets_product_parameter_id_product_parameters"),
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(
            "state IN ('queued', 'pending', 'confirmed', 'failed', 'superseded', 'out_of_scope')",
            name=op.f("ck_parameter_rollout_targets_state_choice"),
        ),
        sa.PrimaryKeyConstraint(
            "parameter_rollout_target_id", name=op.f("pk_parameter_rollout_targets")
        ),
    )
    with op.batch_alter_table("parameter_rollout_targets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_parameter_rollout_targets_rollout_state",
            ["parameter_rollout_id", "state", "phase"],
            unique=False,
        )
        batch_op.create_index(
            "uq_parameter_rollout_targets_unit",
            ["parameter_rollout_id", "product_imei"],
            unique=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("parameter_rollout_targets", schema=None) as batch_op:
        batch_op.drop_index("uq_parameter_rollout_targets_unit")
        batch_op.drop_index("ix_parameter_rollout_targets_rollout_state")

    op.drop_table("parameter_rollout_targets")
    with op.batch_alter_table("parameter_rollout_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parameter_rollout_events_parameter_rollout_id"))

    op.drop_table("parameter_rollout_events")
    with op.batch_alter_table("parameter_rollouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parameter_rollouts_entity_id"))

    op.drop_table("parameter_rollouts")
