"""The registry of resources the app assembled, and the permission tables resources share.

Each domain declares its resources next to its models (``<domain>/resources.py``); the top of the
package (``solarfleet/resources.py``) assembles them, in a fixed order, and installs them in
:data:`REGISTRY` here. The API layer and the domains read that one registry at request time (its
scope rules reach every model a query touches) without importing any domain: ``api/`` sits below
them all. A registry read before it was assembled refuses (no scope rule silently missing).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

from solarfleet.api.schemas import storable_json
from solarfleet.api.spec import Registry

READ = {"GET": "OVERVIEW"}
SYSTEM_WRITES = {**READ, "POST": "SYSTEM", "PUT": "SYSTEM", "DELETE": "SYSTEM"}
FACTORY_WRITES = {**READ, "POST": "FACTORY", "PUT": "ADMIN", "DELETE": "SYSTEM"}

JSONObject = Annotated[dict[str, Any], AfterValidator(storable_json)]

REGISTRY = Registry([])  # filled by solarfleet.resources
