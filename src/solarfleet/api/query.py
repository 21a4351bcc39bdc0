"""The query language of every list endpoint (Flask-Restless search format) -> SQLAlchemy.

A ``q`` object holds ``filters``, ``order_by``, ``group_by``, ``limit``, ``offset`` and ``single``.
Field and relation names are looked up in a :class:`Catalog` (each resource's own whitelist) and
never reach SQL as text; values are coerced to the column's type. Everything malformed raises
:class:`~solarfleet.errors.BadRequest` naming the culprit.

This module knows no domain model: the catalog says what may be reached, and which extra
criterion (the caller's scope) every row of a model must meet, wherever it is reached from.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    false,
    func,
    literal,
    not_,
    or_,
    true,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select as sa_select
from sqlalchemy.orm import RelationshipProperty, aliased
from sqlalchemy.sql.elements import KeyedColumnElement

from solarfleet.db import utcnow
from solarfleet.errors import BadRequest
from solarfleet.timeparse import parse_instant


@dataclass(frozen=True)
class QueryLimits:
    """What one ``q`` may cost; each is the setting ``SOLARFLEET_QUERY_<NAME>`` (settings.py).

    Checked while ``q`` is compiled, before any SQL runs; past one, a 400 names it and its value.
    """

    max_length: int = 256 * 1024  # characters of the raw q
    max_filters: int = 256  # filter objects, boolean ones included
    max_nesting: int = 16  # levels of and / or / has / any
    max_relation_hops: int = 3  # relations followed from the listed table, has/any included
    max_relations: int = 32  # relations followed in one q: each a subquery or a join
    max_values: int = 10_000  # in / not_in values (PostgreSQL binds at most 65535 parameters)
    max_order_by: int = 16
    max_group_by: int = 16

    @classmethod
    def from_settings(cls, settings: Any) -> QueryLimits:
        return cls(**{f.name: getattr(settings, f"query_{f.name}") for f in fields(cls)})

    def exceeded(self, name: str, what: str) -> BadRequest:
        """The 400 for ``what`` (a description of the excess) past the limit ``name``."""
        setting = f"SOLARFLEET_QUERY_{name.upper()}"
        return BadRequest(f"q: {what}; the limit is {getattr(self, name)} ({setting})")


DEFAULT_LIMITS = QueryLimits()

OP_ALIASES: dict[str, str] = {
    "==": "==", "eq": "==", "equals": "==", "equals_to": "==", "equal_to": "==",
    "!=": "!=", "ne": "!=", "neq": "!=", "does_not_equal": "!=", "not_equal_to": "!=",
    ">": ">", "gt": ">",
    "<": "<", "lt": "<",
    ">=": ">=", "ge": ">=", "gte": ">=", "geq": ">=",
    "<=": "<=", "le": "<=", "lte": "<=", "leq": "<=",
    "in": "in", "not_in": "not_in",
    "is_null": "is_null", "is_not_null": "is_not_null",
    "like": "like", "ilike": "ilike",
    "has": "has", "any": "any",
}  # fmt: skip

COMPARISONS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "==": lambda col, v: col == v,
    "!=": lambda col, v: col != v,
    ">": lambda col, v: col > v,
    "<": lambda col, v: col < v,
    ">=": lambda col, v: col >= v,
    "<=": lambda col, v: col <= v,
}

SQL_NOW: dict[str, Callable[[], datetime]] = {
    "CURRENT_TIMESTAMP": utcnow,
    "LOCALTIMESTAMP": utcnow,  # the server's zone is UTC, as every stored instant
    "CURRENT_DATE": lambda: utcnow().replace(hour=0, minute=0, second=0, microsecond=0),
}

URL_PARAMETERS = {"page", "results_per_page"}  # asked for in q, they would be silently ignored
QUERY_KEYS = {"filters", "order_by", "group_by", "limit", "offset", "single"}


class Catalog(Protocol):
    """What the query language may reach, and the scope every reached row must meet."""

    def columns(self, model: type) -> Mapping[str, str]:
        """Filterable column names of ``model`` (name -> attribute name)."""

    def relations(self, model: type) -> frozenset[str]:
        """Relation names of ``model`` that filters and order_by may follow."""

    def scope(self, entity: Any) -> ColumnElement[bool] | None:
        """The criterion rows of ``entity`` (a model or an alias of one) must meet, if any."""


@dataclass
class CompiledQuery:
    """A parsed ``q``: criteria and clauses ready to apply to a select of the root model."""

    where: list[ColumnElement[bool]] = field(default_factory=list)
    joins: list[tuple[Any, Any]] = field(default_factory=list)  # (alias, onclause)
    order_by: list[Any] = field(default_factory=list)
    group_by: list[Any] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    single: bool = False


def parse_q(raw: str | None, limits: QueryLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The ``q`` parameter as a dict (empty when absent)."""
    if raw is None or raw.strip() == "":
        return {}
    if len(raw) > limits.max_length:
        raise limits.exceeded("max_length", f"{len(raw)} characters")
    try:
        q = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"q is not valid JSON: {exc}") from None
    if not isinstance(q, dict):
        raise BadRequest("q must be a JSON object")
    # Other keys are ignored, as the original did (scripts send e.g. its "functions"), except a
    # near-miss of a key we know: a misspelt "filters" would silently answer every row.
    for key in sorted(set(q) - QUERY_KEYS):
        if key in URL_PARAMETERS:
            raise BadRequest(f"{key!r} is a URL parameter (?{key}=…), not a key of q")
        near = difflib.get_close_matches(key, QUERY_KEYS, n=1, cutoff=0.75)
        if near:
            raise BadRequest(f"Unknown key in q: {key!r}; did you mean {near[0]!r}?")
    return q


def compile_query(
    q: Mapping[str, Any], model: Any, catalog: Catalog, limits: QueryLimits = DEFAULT_LIMITS
) -> CompiledQuery:
    """Turn a parsed ``q`` into criteria, joins and clauses on ``model`` (or an aliased view)."""
    compiler = _Compiler(catalog, model, limits)
    out = CompiledQuery()
    filters = q.get("filters", [])
    if not isinstance(filters, list):
        raise BadRequest("filters must be a list")
    out.where = [compiler.filter(f, model, 0, ()) for f in filters]
    scope = catalog.scope(model)
    if scope is not None:
        out.where.append(scope)
    out.limit = _non_negative_int(q.get("limit"), "limit") or None  # 0: no limit, as the original
    out.offset = _non_negative_int(q.get("offset"), "offset") or 0
    single = q.get("single", False)
    if single in (0, 1):  # the original took any truthy value; 1 and 0 are what scripts send
        single = bool(single)
    if not isinstance(single, bool):
        raise BadRequest("single must be true or false")
    out.single = single
    out.order_by = compiler.order_by(q.get("order_by", []))
    out.joins = compiler.joins
    out.group_by = compiler.group_by(q.get("group_by", []))
    return out


def _non_negative_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)  # the original accepted integral strings
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{name} must be a non-negative integer, got {value!r}")
    return value


# (root model, relation path, use) -> what _Compiler._made_once made. The paths are those of the
# catalog's relations, at most max_relation_hops long: 204 paths at the default 3 hops. A limit
# raised far enough would let callers name ever more paths; past this many entries, they are
# made for their request only, as before the cache.
_MADE_ONCE: dict[tuple[type, tuple[str, ...], str], Any] = {}
_MADE_ONCE_MAX = 4096


class _Compiler:
    def __init__(self, catalog: Catalog, root: type, limits: QueryLimits) -> None:
        self.catalog = catalog
        self.root = root
        self.limits = limits
        self.count = 0
        self.values = 0
        self.relations = 0
        self.joins: list[tuple[Any, Any]] = []
        self._joined: dict[tuple[str, ...], Any] = {}

    # -- filters ---------------------------------------------------------------------------

    def filter(
        self, node: Any, entity: Any, depth: int, path: tuple[str, ...]
    ) -> ColumnElement[bool]:
        """``node`` on ``entity``, reached from the root through the relations in ``path``."""
        self.count += 1
        limits = self.limits
        if depth > limits.max_nesting:
            raise limits.exceeded("max_nesting", f"filters nested {depth} levels deep")
        if self.count > limits.max_filters:
            raise limits.exceeded("max_filters", f"more than {limits.max_filters} filters")
        if not isinstance(node, dict):
            raise BadRequest(f"A filter must be an object, got {_show(node)}")
        if "or" in node or "and" in node:
            if len(node) != 1:
                raise BadRequest(f"A boolean filter has one key, 'or' or 'and': {_show(node)}")
            key, parts = next(iter(node.items()))
            if not isinstance(parts, list):
                raise BadRequest(f"'{key}' needs a list of filters")
            if not parts:  # no condition, as the original
                return true()
            clauses = [self.filter(p, entity, depth + 1, path) for p in parts]
            return or_(*clauses) if key == "or" else and_(*clauses)
        return self._leaf(node, entity, depth, path)

    def _leaf(
        self, node: dict[str, Any], entity: Any, depth: int, path: tuple[str, ...]
    ) -> ColumnElement[bool]:
        name = node.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"A filter needs a 'name': {_show(node)}")
        raw_op = node.get("op")
        if not isinstance(raw_op, str) or raw_op not in OP_ALIASES:
            raise BadRequest(f"Unknown operator {raw_op!r} in the filter on {name!r}")
        op = OP_ALIASES[raw_op]
        model = _model_of(entity)
        head, sep, rest = name.partition("__")
        if sep:
            target_model = self._relation_target(model, head)
            inner = dict(node, name=rest)
            if op in ("has", "any"):
                rest_head = rest.partition("__")[0]
                if rest_head not in self.catalog.relations(target_model) or "__" in rest:
                    inner["op"] = "=="
            return self._through(
                entity, (*path, head), lambda a, p: self.filter(inner, a, depth + 1, p)
            )
        if op in ("is_null", "is_not_null") and name in self.catalog.relations(model):
            # a relation itself: no related row (in scope) at all, or some
            some = self._through(entity, (*path, name), lambda _a, _p: true())
            return not_(some) if op == "is_null" else some
        if op in ("has", "any"):
            self._relation_target(model, name)
            if "val" not in node:
                raise BadRequest(f"The filter on {name!r} is missing 'val'")
            nested = node["val"]
            items = nested if isinstance(nested, list) else [nested]
            if not items:
                raise BadRequest(f"'{op}' on {name!r} needs a filter in 'val'")
            return self._through(
                entity,
                (*path, name),
                lambda a, p: and_(*[self.filter(i, a, depth + 1, p) for i in items]),
            )
        column = self._column(entity, name)
        if "field" in node:
            return self._field_comparison(node, entity, column, op)
        if op in ("in", "not_in") and isinstance(node.get("val"), list):
            self.values += len(node["val"])
            if self.values > self.limits.max_values:
                raise self.limits.exceeded(
                    "max_values", f"more than {self.limits.max_values} values in in/not_in lists"
                )
        return _column_criterion(column, name, op, node)

    def _field_comparison(
        self, node: dict[str, Any], entity: Any, column: Any, op: str
    ) -> ColumnElement[bool]:
        other_name = node["field"]
        if not isinstance(other_name, str):
            raise BadRequest(f"'field' must name a field, got {_show(other_name)}")
        if op not in COMPARISONS:
            raise BadRequest(f"Operator {node['op']!r} cannot compare two fields")
        other = self._column(entity, other_name)
        for col, col_name in ((column, node["name"]), (other, other_name)):
            if isinstance(col.type, JSON):
                raise BadRequest(
                    f"{col_name!r} holds JSON: only is_null and is_not_null apply to it"
                )
        if _kind(column.type) != _kind(other.type):
            raise BadRequest(
                f"Cannot compare {node['name']!r} with {other_name!r}: they hold different types"
            )
        return COMPARISONS[op](column, other)

    def _through(
        self,
        entity: Any,
        path: tuple[str, ...],
        build: Callable[[Any, tuple[str, ...]], ColumnElement[bool]],
    ) -> ColumnElement[bool]:
        """Some row reached through ``path[-1]`` (and in scope) meets what ``build`` makes."""
        relname = path[-1]
        self._follow(path)
        prop = _relationship(entity, relname)

        def relation() -> tuple[Any, Any]:
            alias = aliased(prop.mapper.class_)
            attr = getattr(entity, relname).of_type(alias)
            return alias, attr.any() if prop.uselist else attr.has()

        alias, exists_ = self._made_once((path, "exists"), relation)
        criterion = build(alias, path)
        scope = self.catalog.scope(alias)
        if scope is not None:
            criterion = and_(criterion, scope)
        return exists_.where(criterion)  # type: ignore[no-any-return]

    def _follow(self, path: tuple[str, ...]) -> None:
        """Count one more relation followed, ``path`` from the root; 400 past a limit."""
        limits = self.limits
        if len(path) > limits.max_relation_hops:
            shown = _clip("__".join(path))
            raise limits.exceeded(
                "max_relation_hops", f"relation path {shown!r} has {len(path)} hops"
            )
        self.relations += 1
        if self.relations > limits.max_relations:
            raise limits.exceeded(
                "max_relations", f"more than {limits.max_relations} relations followed"
            )

    def _made_once(self, key: tuple[tuple[str, ...], str], make: Callable[[], Any]) -> Any:
        """What ``make`` makes for a relation path from the root (its alias, its EXISTS).

        From a mapped class (not an as-of view, which is made for each request), what one
        request made serves every request: making them was most of compiling a relation filter
        (an alias builds its columns on first use; a relation's EXISTS adapts its join condition
        to the alias): 2.9 -> 0.18 ms for two relation filters (issue 11). An EXISTS and a join
        never share an alias, so that no EXISTS correlates to a joined alias.
        """
        if not isinstance(self.root, type):
            return make()
        full = (self.root, *key)
        made = _MADE_ONCE.get(full)
        if made is None:
            made = make()
            if len(_MADE_ONCE) < _MADE_ONCE_MAX:
                made = _MADE_ONCE.setdefault(full, made)
        return made

    def _relation_target(self, model: type, relname: str) -> type:
        if relname not in self.catalog.relations(model):
            raise BadRequest(f"Unknown relation {relname!r} on {_table(model)}")
        return _relationship(model, relname).mapper.class_

    def _column(self, entity: Any, name: str) -> Any:
        model = _model_of(entity)
        attr = self.catalog.columns(model).get(name)
        if attr is None:
            raise BadRequest(f"Unknown field {name!r} on {_table(model)}")
        return getattr(entity, attr)

    # -- order_by and group_by ---------------------------------------------------------------

    def order_by(self, specs: Any) -> list[Any]:
        if not isinstance(specs, list):
            raise BadRequest("order_by must be a list of {field, direction} objects")
        if len(specs) > self.limits.max_order_by:
            raise self.limits.exceeded("max_order_by", f"{len(specs)} order_by items")
        clauses = []
        for spec in specs:
            if not isinstance(spec, dict) or not isinstance(spec.get("field"), str):
                raise BadRequest(f"An order_by item needs a 'field': {_show(spec)}")
            direction = spec.get("direction", "asc")
            if direction not in ("asc", "desc"):
                raise BadRequest(f"order_by direction must be 'asc' or 'desc', got {direction!r}")
            column = self._ordering_column(spec["field"])
            if isinstance(column.type, JSON):
                raise BadRequest(f"Cannot order by {spec['field']!r}: it holds JSON")
            # null sorts above every value, on SQLite as on PostgreSQL
            clauses.append(
                column.asc().nulls_last() if direction == "asc" else column.desc().nulls_first()
            )
        clauses.append(primary_key(self.root).asc())  # a stable order for pagination
        return clauses

    def _ordering_column(self, name: str) -> Any:
        *path, column_name = name.split("__")
        entity: Any = self.root
        for depth in range(len(path)):
            key = tuple(path[: depth + 1])
            if key not in self._joined:
                relname = path[depth]
                self._relation_target(_model_of(entity), relname)
                self._follow(key)
                prop = _relationship(entity, relname)
                if prop.uselist:
                    raise BadRequest(f"Cannot order by {name!r}: {relname!r} is a to-many relation")
                alias = self._made_once((key, "join"), partial(aliased, prop.mapper.class_))
                onclause = getattr(entity, relname).of_type(alias)
                scope = self.catalog.scope(alias)
                if scope is not None:
                    onclause = onclause.and_(scope)
                self.joins.append((alias, onclause))
                self._joined[key] = alias
            entity = self._joined[key]
        return self._column(entity, column_name)

    def group_by(self, specs: Any) -> list[Any]:
        if not isinstance(specs, list):
            raise BadRequest("group_by must be a list of {field} objects")
        if len(specs) > self.limits.max_group_by:
            raise self.limits.exceeded("max_group_by", f"{len(specs)} group_by items")
        columns = []
        for spec in specs:
            if not isinstance(spec, dict) or not isinstance(spec.get("field"), str):
                raise BadRequest(f"A group_by item needs a 'field': {_show(spec)}")
            column = self._column(self.root, spec["field"])
            if isinstance(column.type, JSON):
                raise BadRequest(f"Cannot group by {spec['field']!r}: it holds JSON")
            columns.append(column)
        return columns


def _column_criterion(column: Any, name: str, op: str, node: dict[str, Any]) -> ColumnElement[bool]:
    col_type = column.type
    if op == "is_null":
        return column.is_(None)
    if op == "is_not_null":
        return column.is_not(None)
    if "val" not in node:
        raise BadRequest(f"The filter on {name!r} is missing 'val'")
    val = node["val"]
    if isinstance(col_type, JSON):
        raise BadRequest(f"{name!r} holds JSON: only is_null and is_not_null apply to it")
    if op in ("in", "not_in"):
        if not isinstance(val, list):
            raise BadRequest(f"'{op}' on {name!r} needs a list in 'val', got {_show(val)}")
        # A null in the list matches nothing, as in SQL (and the original): it drops out of
        # `in`, and makes `not_in` false for every row.
        if op == "not_in" and None in val:
            return false()
        values: Any = [coerce(column, name, v) for v in val if v is not None]
        if any(_beyond_32_bits(col_type, v) for v in values):
            values = bindparam(None, values, expanding=True, type_=BigInteger())
        return column.in_(values) if op == "in" else column.not_in(values)
    if op in ("like", "ilike"):
        if not isinstance(col_type, String):
            raise BadRequest(f"'{op}' applies to text fields only, and {name!r} is not one")
        if not isinstance(val, str):
            raise BadRequest(f"'{op}' on {name!r} needs a string pattern, got {_show(val)}")
        if "\x00" in val:
            raise BadRequest(
                f"Invalid pattern {_show(val)} for {name!r}: NUL characters are not allowed"
            )
        if "\\" in val:
            # A backslash is an ordinary character of a pattern on every database: PostgreSQL
            # would read it as an escape (SQLite has none), so it is escaped by itself.
            val = val.replace("\\", "\\\\")
            return column.like(val, escape="\\") if op == "like" else column.ilike(val, escape="\\")
        return column.like(val) if op == "like" else column.ilike(val)
    if val is None:
        raise BadRequest(
            f"Cannot compare {name!r} with null using {node['op']!r}: use is_null or is_not_null"
        )
    value = coerce(column, name, val)
    if isinstance(col_type, Boolean):  # SQLAlchemy refuses <, > and the like with a bare bool
        value = literal(value, col_type)
    elif _beyond_32_bits(col_type, value):
        value = literal(value, BigInteger())
    return COMPARISONS[op](column, value)


def coerce(column: Any, name: str, value: Any) -> Any:
    """``value`` as the column's Python type; BadRequest naming the field when impossible."""
    col_type = column.type
    try:
        if isinstance(col_type, Boolean):
            return _to_bool(value)
        if isinstance(col_type, Integer):
            return _to_int(value)
        if isinstance(col_type, Float):
            return _to_float(value)
        if isinstance(col_type, DateTime):
            if isinstance(value, str) and value in SQL_NOW:  # the original: SQL functions
                return SQL_NOW[value]()
            return parse_instant(value)
        if isinstance(col_type, String):
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError("expected a string")
            if isinstance(value, str) and "\x00" in value:
                raise ValueError("NUL characters are not allowed")
            return str(value)
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"Invalid value {_show(value)} for {name!r}: {exc}") from None
    raise BadRequest(f"{name!r} cannot be compared")  # pragma: no cover - every type is above


_INT64 = 2**63
_INT32 = 2**31


def _beyond_32_bits(col_type: Any, value: Any) -> bool:
    """An integer a 32-bit column cannot hold: bound as a BIGINT, so compared as it is.

    PostgreSQL would cast it to the column's INTEGER and fail; SQLite compares it as it is. As a
    BIGINT, ``== 3000000000`` matches nothing and ``< 3000000000`` every value, on both.
    """
    return (
        isinstance(col_type, Integer)
        and not isinstance(col_type, BigInteger)
        and isinstance(value, int)
        and not -_INT32 <= value < _INT32
    )


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError("expected an integer") from None
    if not isinstance(value, int):
        raise ValueError("expected an integer")
    if not -_INT64 <= value < _INT64:
        raise ValueError("integer out of range")
    return value


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("expected a number") from None
    if not isinstance(value, int | float):
        raise ValueError("expected a number")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError("expected a finite number")
    return result


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


def _kind(col_type: Any) -> type:
    """The family of a column type; two columns compare only within one family."""
    for family in (Boolean, Integer, Float, DateTime, String, JSON):
        if isinstance(col_type, family):
            return Float if family is Integer else family  # integers and floats compare
    return type(col_type)  # pragma: no cover - every column type is above


def _model_of(entity: Any) -> type:
    return sa_inspect(entity).mapper.class_  # type: ignore[no-any-return]


def _relationship(entity: Any, relname: str) -> RelationshipProperty[Any]:
    return sa_inspect(entity).mapper.relationships[relname]  # type: ignore[no-any-return]


def _table(model: type) -> str:
    return str(getattr(model, "__tablename__", model.__name__))


def _show(value: Any) -> str:
    """``value`` as JSON for a message, at most 80 characters; never raises."""
    try:
        text = orjson.dumps(value, default=str).decode()
    except TypeError:  # orjson refuses more than 254 levels of nesting
        return f"{'an object' if isinstance(value, dict) else 'a list'} nested too deep to show"
    return _clip(text)


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def primary_key(model: Any) -> KeyedColumnElement[Any]:
    """The single primary-key column of ``model`` (or of an aliased view of it)."""
    mapper = sa_inspect(model).mapper
    (pk,) = mapper.primary_key
    return getattr(model, mapper.get_property_by_column(pk).key)  # type: ignore[no-any-return]


def first_of_each_group(model: type, compiled: CompiledQuery) -> ColumnElement[bool]:
    """``group_by``: one row per group, the one with the smallest primary key."""
    pk = primary_key(model)
    firsts = (
        sa_select(func.min(pk)).where(*compiled.where).group_by(*compiled.group_by).correlate(None)
    )
    return pk.in_(firsts)
