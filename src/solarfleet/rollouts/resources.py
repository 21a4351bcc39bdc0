"""The rollouts' resource (its routes are its own: ``rollouts/routes.py``)."""

from __future__ import annotations

from solarfleet.api.spec import ResourceSpec
from solarfleet.rollouts.models import ParameterRollout

PARAMETER_ROLLOUTS = ResourceSpec(
    name="parameter_rollouts",
    model=ParameterRollout,
    methods={"GET": "OVERVIEW", "POST": "ADMIN"},  # and PUT …/pause|resume|cancel: ADMIN
    description="A value set across many units in phases (solarfleet.rollouts).",
    scope=lambda rollout, p: None if p.is_global else rollout.entity_id == p.entity_id,
    hidden=("baseline_failed", "baseline_tried"),
    own_routes=True,
)
