"""Column helpers shared by the models: enumerated strings, JSON, IMEIs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, CheckConstraint, String
from sqlalchemy.orm import mapped_column

IMEI_LENGTH = 15


def choice_column(name: str, choices: tuple[str, ...], **kwargs: Any) -> Any:
    """A string column restricted to ``choices`` (a CHECK in the database, a Literal in the API)."""
    quoted = ", ".join(f"'{c}'" for c in choices)  # literals from our own code, never a request
    return mapped_column(
        String(max(len(c) for c in choices)),
        CheckConstraint(f"{name} IN ({quoted})", name=f"{name}_choice"),
        info={"choices": choices},
        **kwargs,
    )


def json_column(**kwargs: Any) -> Any:
    return mapped_column(JSON, **kwargs)


def imei_column(*args: Any, **kwargs: Any) -> Any:
    return mapped_column(*args, info={"imei": True}, **kwargs)
