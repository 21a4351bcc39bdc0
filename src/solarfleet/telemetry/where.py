"""The ``where`` parameter of telemetry reads: a small comparison grammar, parsed here into a
Python predicate over one row (the fields of one measurement, tag set and time). It never
becomes text in any query language.

::

    expr       := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison
    comparison := name op literal
    name       := [A-Za-z_][A-Za-z0-9_.-]*  |  "any field name"   (double quotes)
    op         := = | == | != | <> | < | <= | > | >=
    literal    := number | 'string' (\\' and \\\\ escape) | true | false

Keywords are case-insensitive. A name is looked up among the row's fields, then its tags. A
comparison is false when the row lacks the name or its value is of another kind than the
literal (as in InfluxQL); booleans compare with ``=`` and ``!=`` only.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from solarfleet.errors import BadRequest
from solarfleet.telemetry.points import Value

MAX_LENGTH = 1000
MAX_DEPTH = 32
MAX_COMPARISONS = 64
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

Row = Callable[[str], Value | None]  # name -> the row's value, None when it has none
Predicate = Callable[[Row], bool]

OPS: dict[str, Callable[[object, object], bool]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
KEYWORDS = {"and", "or", "not", "true", "false"}

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<paren>[()])
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![A-Za-z0-9_.])
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<quoted>"(?:[^"\\]|\\.)*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_.-]*)
    """,
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class Token:
    kind: str  # paren, op, number, string, name, keyword, end
    text: str
    value: object
    pos: int


def _unquote(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text[1:-1])


def tokenize(text: str) -> list[Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if match is None:
            raise _error(pos, f"unexpected {text[pos]!r}")
        kind, raw = match.lastgroup or "", match.group()
        if kind == "number":
            value: object = float(raw)
            tokens.append(Token("number", raw, value, pos))
        elif kind == "string":
            tokens.append(Token("string", raw, _unquote(raw), pos))
        elif kind == "quoted":
            name = _unquote(raw)
            if not NAME.fullmatch(name):
                raise _error(pos, f"invalid name {name!r}")
            tokens.append(Token("name", raw, name, pos))
        elif kind == "word":
            lowered = raw.lower()
            if lowered in KEYWORDS:
                tokens.append(Token("keyword", raw, lowered, pos))
            elif not NAME.fullmatch(raw):
                raise _error(pos, f"invalid name {raw!r}")
            else:
                tokens.append(Token("name", raw, raw, pos))
        elif kind != "space":
            tokens.append(Token(kind, raw, raw, pos))
        pos = match.end()
    tokens.append(Token("end", "", None, len(text)))
    return tokens


def _error(pos: int, reason: str) -> BadRequest:
    return BadRequest(f"Invalid where at position {pos}: {reason}")


def compare(op: str, left: Value | None, right: object) -> bool:
    """``left op right`` with InfluxQL's leniency: other kinds never match."""
    if left is None:
        return False
    if isinstance(right, bool):
        if not isinstance(left, bool):
            return False
    elif isinstance(right, float):
        if isinstance(left, bool) or not isinstance(left, int | float):
            return False
    elif not isinstance(left, str):
        return False
    return OPS[op](left, right)


class Where:
    """A parsed ``where``: call it on a row; ``names`` are the names it reads."""

    def __init__(self, text: str) -> None:
        if len(text) > MAX_LENGTH:
            raise BadRequest(f"Invalid where: longer than {MAX_LENGTH} characters")
        self.text = text
        self.names: set[str] = set()
        self._tokens = tokenize(text)
        self._i = 0
        self._comparisons = 0
        self._predicate = self._expr(0)
        if self._peek().kind != "end":
            raise self._unexpected()

    def __call__(self, row: Row) -> bool:
        return self._predicate(row)

    def _peek(self) -> Token:
        return self._tokens[self._i]

    def _next(self) -> Token:
        token = self._tokens[self._i]
        self._i += 1
        return token

    def _unexpected(self, expected: str = "") -> BadRequest:
        token = self._peek()
        found = "the end" if token.kind == "end" else repr(token.text)
        return _error(
            token.pos, f"expected {expected}, found {found}" if expected else f"unexpected {found}"
        )

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token.kind == "keyword" and token.value == word:
            self._i += 1
            return True
        return False

    def _expr(self, depth: int) -> Predicate:
        if depth > MAX_DEPTH:
            raise _error(self._peek().pos, f"nested deeper than {MAX_DEPTH}")
        terms = [self._and(depth)]
        while self._keyword("or"):
            terms.append(self._and(depth))
        if len(terms) == 1:
            return terms[0]
        return lambda row: any(t(row) for t in terms)

    def _and(self, depth: int) -> Predicate:
        terms = [self._unary(depth)]
        while self._keyword("and"):
            terms.append(self._unary(depth))
        if len(terms) == 1:
            return terms[0]
        return lambda row: all(t(row) for t in terms)

    def _unary(self, depth: int) -> Predicate:
        if depth > MAX_DEPTH:
            raise _error(self._peek().pos, f"nested deeper than {MAX_DEPTH}")
        if self._keyword("not"):
            inner = self._unary(depth + 1)
            return lambda row: not inner(row)
        token = self._peek()
        if token.kind == "paren" and token.text == "(":
            self._i += 1
            inner = self._expr(depth + 1)
            closing = self._peek()
            if closing.kind != "paren" or closing.text != ")":
                raise self._unexpected("')'")
            self._i += 1
            return inner
        return self._comparison()

    def _comparison(self) -> Predicate:
        token = self._peek()
        if token.kind != "name":
            raise self._unexpected("a field name")
        name = str(self._next().value)
        if name == "time":
            raise _error(token.pos, "filter on time with start and end")
        if self._peek().kind != "op":
            raise self._unexpected("a comparison operator")
        op = self._next().text
        lit = self._next()
        if lit.kind in ("number", "string"):
            value = lit.value
        elif lit.kind == "keyword" and lit.value in ("true", "false"):
            value = lit.value == "true"
            if op not in ("=", "==", "!=", "<>"):
                raise _error(lit.pos, f"booleans compare with = and != only, not {op}")
        else:
            self._i -= 1
            raise self._unexpected("a number, a 'string', true or false")
        self._comparisons += 1
        if self._comparisons > MAX_COMPARISONS:
            raise _error(token.pos, f"more than {MAX_COMPARISONS} comparisons")
        self.names.add(name)
        return lambda row: compare(op, row(name), value)


def parse_where(text: str | None) -> Where | None:
    return None if text is None or not text.strip() else Where(text)


def row_lookup(fields: Mapping[str, Value], tags: Mapping[str, str]) -> Row:
    def lookup(name: str) -> Value | None:
        value = fields.get(name)
        return value if value is not None else tags.get(name)

    return lookup
