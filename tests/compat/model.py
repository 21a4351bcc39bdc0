"""Our tables as the original's stack needs them: columns, primary key, and each relation's join
written as a string that SQLAlchemy 1.3 evaluates against automap's classes (named as tables)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BooleanClauseList, ColumnElement, Null

from solarfleet.resources import REGISTRY


def _side(element: Any) -> str:
    if isinstance(element, Null):
        return "None"
    return f"{element.table.name}.{element.name}"


def join_text(clause: ColumnElement[Any] | None) -> str | None:
    """``clause`` (an AND of equalities and IS NULLs) as SQLAlchemy 1.3's string form."""
    if clause is None:
        return None
    if isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        return "and_(" + ", ".join(join_text(c) or "" for c in clause.clauses) + ")"
    if isinstance(clause, BinaryExpression):
        symbol = {operators.eq: "==", operators.is_: "==", operators.ne: "!="}[clause.operator]
        return f"{_side(clause.left)} {symbol} {_side(clause.right)}"
    raise TypeError(f"cannot write join {clause!r}")


def original_model(exclude: frozenset[str] = frozenset({"users"})) -> dict[str, Any]:
    model: dict[str, Any] = {}
    for spec in REGISTRY.specs:
        if spec.name in exclude:
            continue
        mapper = inspect(spec.model)
        relations = {
            rel.key: {
                "target": rel.mapper.local_table.name,
                "primaryjoin": join_text(rel.primaryjoin),
                "secondary": None if rel.secondary is None else rel.secondary.name,
                "secondaryjoin": join_text(rel.secondaryjoin),
                "uselist": rel.uselist,
            }
            for rel in mapper.relationships
        }
        model[mapper.local_table.name] = {
            "columns": [c.key for c in mapper.column_attrs],
            "primary_key": mapper.primary_key[0].name,
            "relations": relations,
        }
    return model
