"""Every resource of the API, assembled from the domains' declarations in a fixed order.

The top of the package: it imports every domain's ``resources.py`` and installs the list in
:data:`solarfleet.api.registry.REGISTRY`, which the API layer and the domains read at request
time. The app, the CLI, the tests and the benchmarks import :data:`REGISTRY` from here, so that
it is assembled before it is used.
"""

from __future__ import annotations

from solarfleet.api import users
from solarfleet.api.registry import REGISTRY
from solarfleet.fleet import resources as fleet
from solarfleet.migration import resources as migration
from solarfleet.parameters import resources as parameters
from solarfleet.rollouts import resources as rollouts

REGISTRY.install(
    [
        fleet.ENTITIES,
        fleet.PRODUCT_TYPES,
        fleet.PRODUCTS,
        fleet.PRODUCT_ENTITY_LINKER,
        fleet.PART_TYPES,
        fleet.PARTS,
        fleet.PART_PRODUCT_LINKER,
        parameters.PARAMETER_TYPES,
        parameters.PRODUCT_PARAMETERS,
        parameters.PART_PARAMETERS,
        migration.PRODUCT_MIGRATION_HISTORY,
        users.USERS,
        rollouts.PARAMETER_ROLLOUTS,
    ]
)

__all__ = ["REGISTRY"]
