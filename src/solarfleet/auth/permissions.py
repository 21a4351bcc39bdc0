"""The five-level permission ladder and the two scopes."""

from __future__ import annotations

LEVELS = ("OVERVIEW", "TECHNICAL", "ADMIN", "FACTORY", "SYSTEM")
SCOPES = ("GLOBAL", "ENTITY")
RANK = {level: i for i, level in enumerate(LEVELS)}

# A unit with no entity belongs to this one (the original's "unknown entity" rule).
UNKNOWN_ENTITY_ID = 1


def allows(held: str, needed: str) -> bool:
    """True when ``held`` is at least ``needed`` on the ladder."""
    return RANK[held] >= RANK[needed]
