"""Who is calling: the user behind a token, as every service sees it."""

from __future__ import annotations

from dataclasses import dataclass

from solarfleet.auth.permissions import allows


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    permissions: str
    scope: str  # GLOBAL or ENTITY
    entity_id: int | None
    token_id: int | None = None  # the token this request came with (None: not a token)

    def can(self, level: str) -> bool:
        return allows(self.permissions, level)

    @property
    def is_global(self) -> bool:
        return self.scope == "GLOBAL"


# The migration and other jobs act as this user (created_by / modified_by of their rows).
SYSTEM_PRINCIPAL = Principal(
    user_id=0, username="system.migration", permissions="SYSTEM", scope="GLOBAL", entity_id=None
)
