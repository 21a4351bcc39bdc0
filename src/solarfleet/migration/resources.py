"""The migration's resource: how far each unit's telemetry is migrated."""

from __future__ import annotations

from solarfleet.api.registry import READ
from solarfleet.api.spec import ResourceSpec
from solarfleet.fleet.scope import by_unit
from solarfleet.migration.models import ProductMigrationHistory

PRODUCT_MIGRATION_HISTORY = ResourceSpec(
    name="product_migration_history",
    model=ProductMigrationHistory,
    methods=READ,
    description="How far each unit's telemetry is migrated (written by the migration).",
    scope=by_unit(),
    relations=("product",),
)
