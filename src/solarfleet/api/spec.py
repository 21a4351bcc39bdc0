"""ResourceSpec: the declarative description of one table as a REST resource, and the Registry
that holds them all and answers the query language's questions (a :class:`~.query.Catalog`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Column, ColumnElement
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from solarfleet.auth.principal import Principal
from solarfleet.db import META_FIELDS

ScopeRule = Callable[[Any, Principal], ColumnElement[bool] | None]
# Called with the session, the validated values (to be changed in place), the principal and the
# row being updated (None on create), before anything is written.
BeforeWrite = Callable[[Session, dict[str, Any], Principal, Any], None]
AfterCreate = Callable[[Session, Any, Principal], None]
BeforeDelete = Callable[[Session, Any, Principal], None]  # the row, before it is deleted
# History tables: the table as it was at an instant (the rows in force then, each as it was then),
# an entity (an aliased view of the model) that lists query exactly as they query the model.
AsOf = Callable[[Any, datetime], Any]

METHODS = ("GET", "POST", "PUT", "DELETE")


@dataclass(frozen=True)
class ExtraField:
    """A body field that is not a column (``password``), handled by ``before_write``."""

    annotation: Any
    required_on_create: bool = False
    description: str = ""


@dataclass(frozen=True, eq=False)  # hashed by identity: generated models are cached per spec
class ResourceSpec:
    name: str
    model: type
    methods: Mapping[str, str]  # HTTP method -> permission level it needs
    description: str = ""
    scope: ScopeRule | None = None
    relations: tuple[str, ...] = ()
    read_only: tuple[str, ...] = ()  # columns set by the system; ignored in bodies
    hidden: tuple[str, ...] = ()  # columns never shown, never filtered, never written directly
    visible_from: Mapping[str, str] = field(default_factory=dict)  # column -> level to see it
    extra_fields: Mapping[str, ExtraField] = field(default_factory=dict)  # write-only
    field_types: Mapping[str, Any] = field(default_factory=dict)  # body type overrides
    before_write: BeforeWrite | None = None
    after_create: AfterCreate | None = None
    before_delete: BeforeDelete | None = None
    as_of: AsOf | None = None  # lists take ?as_of=T: the rows in force at T, as they were then
    # Served by its own module's router (parameter_rollouts), not the generic one; the registry
    # still gives the query language its columns and scope, and says who may do what.
    own_routes: bool = False

    @cached_property
    def table_columns(self) -> dict[str, Column[Any]]:
        return {c.key: c for c in sa_inspect(self.model).columns}

    @cached_property
    def primary_key(self) -> Column[Any]:
        (pk,) = sa_inspect(self.model).primary_key
        return pk  # type: ignore[no-any-return]

    @cached_property
    def natural_key(self) -> bool:
        """True when the client chooses the primary key (products: the IMEI)."""
        return self.primary_key.type.python_type is not int

    @cached_property
    def output_fields(self) -> tuple[str, ...]:
        return tuple(k for k in self.table_columns if k not in self.hidden)

    @cached_property
    def filter_fields(self) -> dict[str, str]:
        return {k: k for k in self.output_fields if k not in self.visible_from}

    @cached_property
    def writable_columns(self) -> tuple[str, ...]:
        skip = set(META_FIELDS) | set(self.read_only) | set(self.hidden)
        if not self.natural_key:
            skip.add(self.primary_key.key)
        return tuple(k for k in self.table_columns if k not in skip)

    def fields_for(self, principal: Principal) -> tuple[str, ...]:
        """The columns ``principal`` may see."""
        if not self.visible_from:
            return self.output_fields
        return tuple(
            k
            for k in self.output_fields
            if k not in self.visible_from or principal.can(self.visible_from[k])
        )


class Registry:
    """Every resource, by name and by model."""

    def __init__(self, specs: list[ResourceSpec]) -> None:
        self.install(specs)

    def install(self, specs: list[ResourceSpec]) -> None:
        """Hold ``specs`` (the app's registry is made empty below the domains, then filled)."""
        self.specs = specs
        self.by_name = {s.name: s for s in specs}
        self.by_model = {s.model: s for s in specs}
        self.by_table = {s.model.__tablename__: s for s in specs}  # type: ignore[attr-defined]

    def _assembled(self) -> None:
        if not self.specs:  # a scope rule must never be missed because nothing was installed
            raise RuntimeError("the registry is empty: import solarfleet.resources first")

    def catalog(self, principal: Principal) -> RequestCatalog:
        self._assembled()
        return RequestCatalog(self, principal)

    def scope(self, entity: Any, principal: Principal) -> ColumnElement[bool] | None:
        self._assembled()
        spec = self.by_model.get(sa_inspect(entity).mapper.class_)
        if spec is None or spec.scope is None:
            return None
        return spec.scope(entity, principal)


@dataclass(frozen=True)
class RequestCatalog:
    """The registry as one principal's query sees it (a :class:`~.query.Catalog`)."""

    registry: Registry
    principal: Principal

    def columns(self, model: type) -> Mapping[str, str]:
        spec = self.registry.by_model.get(model)
        return spec.filter_fields if spec else {}

    def relations(self, model: type) -> frozenset[str]:
        spec = self.registry.by_model.get(model)
        return frozenset(spec.relations) if spec else frozenset()

    def scope(self, entity: Any) -> ColumnElement[bool] | None:
        return self.registry.scope(entity, self.principal)
