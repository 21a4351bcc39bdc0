"""parameter_rollouts, their targets (one row per unit) and their events (who changed what, when).

A rollout's targets are resolved once, when it is created, and kept: the set does not drift.
A target moves ``queued`` -> ``pending`` (its value set) -> ``confirmed`` | ``failed`` |
``superseded``, or ``queued`` -> ``out_of_scope`` | ``superseded`` when its phase comes. The
counts on the rollout row are the targets per state, refreshed whenever the rollout advances,
so they always add up to ``targets``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from solarfleet.db import Base, MetaColumns
from solarfleet.parameters.models import PartParameter, ProductParameter
from solarfleet.types import choice_column, imei_column, json_column

STATES = ("running", "paused", "cancelled", "completed")
TARGET_STATES = ("queued", "pending", "confirmed", "failed", "superseded", "out_of_scope")
EVENTS = ("created", "paused", "resumed", "cancelled", "completed")


class ParameterRollout(MetaColumns, Base):
    __tablename__ = "parameter_rollouts"

    parameter_rollout_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Whose units: GLOBAL, or the units of entity_id (the creator's scope, kept for later phases).
    scope: Mapped[str] = choice_column("scope", ("GLOBAL", "ENTITY"), nullable=False)
    entity_id: Mapped[int | None] = mapped_column(ForeignKey("entities.entity_id"), index=True)
    q: Mapped[dict[str, Any]] = json_column(nullable=False)
    parameter_type_id: Mapped[int] = mapped_column(
        ForeignKey("parameter_types.parameter_type_id"), nullable=False
    )
    part_type_id: Mapped[int | None] = mapped_column(ForeignKey("part_types.part_type_id"))
    value: Mapped[str] = mapped_column(Text, nullable=False)  # canonical text form
    phases: Mapped[list[Any] | None] = json_column()  # as asked: [{"batch": "10%"}, …]
    phase_sizes: Mapped[list[int] | None] = json_column()  # units per phase (None: by rate)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    wait_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    confirm_timeout_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    abort_failure_percent: Mapped[float] = mapped_column(Float, nullable=False)
    abort_min_units: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = choice_column("state", STATES, nullable=False, default="running")
    reason: Mapped[str | None] = mapped_column(Text)
    targets: Mapped[int] = mapped_column(Integer, nullable=False)
    phases_total: Mapped[int] = mapped_column(Integer, nullable=False)
    phase: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    phase_started_at: Mapped[datetime | None] = mapped_column(DateTime)  # None: not begun
    # The abort rule counts failures since the last resume (the operator accepted older ones).
    baseline_failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    baseline_tried: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    queued: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    pending: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    confirmed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    superseded: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    out_of_scope: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class ParameterRolloutTarget(Base):
    """One unit of a rollout: its phase, its state, and the parameter row the rollout set."""

    __tablename__ = "parameter_rollout_targets"
    __table_args__ = (
        Index(
            "ix_parameter_rollout_targets_rollout_state",  # sync: pending; launch: + phase
            "parameter_rollout_id",
            "state",
            "phase",
        ),
        Index(
            "uq_parameter_rollout_targets_unit",
            "parameter_rollout_id",
            "product_imei",
            unique=True,
        ),
    )

    parameter_rollout_target_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parameter_rollout_id: Mapped[int] = mapped_column(
        ForeignKey("parameter_rollouts.parameter_rollout_id", ondelete="CASCADE"), nullable=False
    )
    # Not a foreign key: a unit deleted after the rollout began stays a target (out of scope).
    product_imei: Mapped[str] = imei_column(String(15), nullable=False)
    phase: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = choice_column("state", TARGET_STATES, nullable=False, default="queued")
    detail: Mapped[str | None] = mapped_column(Text)  # why failed / out of scope / superseded
    part_id: Mapped[int | None] = mapped_column(Integer)
    product_parameter_id: Mapped[int | None] = mapped_column(
        ForeignKey("product_parameters.product_parameter_id", ondelete="SET NULL")
    )
    part_parameter_id: Mapped[int | None] = mapped_column(
        ForeignKey("part_parameters.part_parameter_id", ondelete="SET NULL")
    )
    set_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    product_parameter: Mapped[ProductParameter | None] = relationship(viewonly=True)
    part_parameter: Mapped[PartParameter | None] = relationship(viewonly=True)


class ParameterRolloutEvent(Base):
    """A state change of a rollout: what, why, who and when."""

    __tablename__ = "parameter_rollout_events"

    parameter_rollout_event_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parameter_rollout_id: Mapped[int] = mapped_column(
        ForeignKey("parameter_rollouts.parameter_rollout_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    event: Mapped[str] = choice_column("event", EVENTS, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
