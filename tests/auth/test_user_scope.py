"""Who may give which rights to a user (SPEC §2), checked against a plain model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from solarfleet.auth.permissions import LEVELS, RANK, SCOPES
from solarfleet.auth.principal import Principal
from solarfleet.auth.user_scope import check_grant
from solarfleet.errors import Forbidden

entities = st.sampled_from([1, 2, 3])


@given(
    held=st.sampled_from(LEVELS),
    scope=st.sampled_from(SCOPES),
    own=entities,
    given_level=st.sampled_from(LEVELS),
    given_scope=st.sampled_from(SCOPES),
    given_entity=st.one_of(st.none(), entities),
)
def test_check_grant_matches_the_rule(
    held: str, scope: str, own: int, given_level: str, given_scope: str, given_entity: int | None
) -> None:
    principal = Principal(1, "p", held, scope, own if scope == "ENTITY" else None)
    allowed = RANK[given_level] <= RANK[held] and (
        scope == "GLOBAL" or (given_scope == "ENTITY" and given_entity == own)
    )
    try:
        check_grant(principal, permissions=given_level, scope=given_scope, entity_id=given_entity)
    except Forbidden:
        assert not allowed
    else:
        assert allowed
