"""Every model, imported once so that Base.metadata knows every table."""

from solarfleet.auth.models import KnownAddress, LoginFailure, Token, User
from solarfleet.db import Base
from solarfleet.fleet.models import (
    Entity,
    ParameterType,
    Part,
    PartProductLinker,
    PartType,
    Product,
    ProductEntityLinker,
    ProductType,
)
from solarfleet.migration.models import MigrationLease, MigrationPending, ProductMigrationHistory
from solarfleet.parameters.models import PartParameter, ProductParameter, UnitReportNote
from solarfleet.rollouts.models import (
    ParameterRollout,
    ParameterRolloutEvent,
    ParameterRolloutTarget,
)
from solarfleet.telemetry.models import TelemetryDirty, TelemetrySeries

__all__ = [
    "Base",
    "Entity",
    "KnownAddress",
    "LoginFailure",
    "MigrationLease",
    "MigrationPending",
    "ParameterRollout",
    "ParameterRolloutEvent",
    "ParameterRolloutTarget",
    "ParameterType",
    "Part",
    "PartParameter",
    "PartProductLinker",
    "PartType",
    "Product",
    "ProductEntityLinker",
    "ProductMigrationHistory",
    "ProductParameter",
    "ProductType",
    "TelemetryDirty",
    "TelemetrySeries",
    "Token",
    "UnitReportNote",
    "User",
]
