"""Row transforms declared per sink: filter rows, include/exclude, mask and rename columns.

The filter is a small expression language with Python's syntax, parsed by :mod:`ast` and
evaluated by walking a whitelist of node types — never ``eval``. Allowed: column names,
literals (strings, numbers, ``true``/``false``/``null`` and Python's spellings), lists of
literals, comparisons (``== != < <= > >= in not in is is not``), ``and``, ``or``, ``not``.
Anything else (calls, attributes, subscripts, arithmetic) is refused when the config is
loaded. A column missing from the row is null. A number compared with a string that holds a
number (Postgres ``numeric`` arrives as a string with every digit) compares as numbers.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.sink.search.config import TransformConfig

__all__ = ["FilterError", "RowFilter", "Transform", "validate_filter"]

MASK = "***"

_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
}


MAX_FILTER_CHARS = 1000


class FilterError(ValueError):
    """A row's values cannot be compared as the filter asks (e.g. a string with a number)."""


def validate_filter(text: str) -> str:
    """For the config model: raise ValueError naming what is not allowed."""
    RowFilter(text)
    return text


class RowFilter:
    """A compiled filter expression; ``matches(row)`` says whether the row is kept."""

    def __init__(self, text: str) -> None:
        self.text = text
        if len(text) > MAX_FILTER_CHARS:
            # Not only a sanity limit: on CPython 3.11 an expression nested a few thousand
            # levels deep makes ast.parse raise RecursionError and leaves the interpreter's
            # AST state broken, so that every later ast.parse in the process fails.
            raise ValueError(
                f"filter is {len(text)} characters long; at most {MAX_FILTER_CHARS} are "
                "allowed: a filter is a simple expression over a row's columns"
            )
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"filter {text!r} is not a valid expression: {exc.msg}") from None
        _check(tree.body, text)
        self._body = tree.body

    def matches(self, row: Mapping[str, Any]) -> bool:
        return bool(self._eval(self._body, row))

    def _eval(self, node: ast.expr, row: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._eval(v, row) for v in node.values)
            return any(self._eval(v, row) for v in node.values)
        if isinstance(node, ast.UnaryOp):
            return not self._eval(node.operand, row)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, row)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comparator, row)
                if not self._compare(op, left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            return row.get(node.id)
        if isinstance(node, ast.List | ast.Tuple):
            return [self._eval(e, row) for e in node.elts]
        if isinstance(node, ast.Constant):
            return node.value
        raise AssertionError(f"unchecked node {ast.dump(node)}")  # _check refused it

    def _compare(self, op: ast.cmpop, left: Any, right: Any) -> bool:
        fn = _COMPARE[type(op)]
        if left is None or right is None:
            # As in SQL, null is neither less nor greater than anything; it equals only null.
            if isinstance(op, ast.Is | ast.Eq):
                return left is None and right is None
            if isinstance(op, ast.IsNot | ast.NotEq):
                return (left is None) != (right is None)
            if isinstance(op, ast.In | ast.NotIn) and isinstance(right, list):
                return fn(left, right)
            return False
        try:
            if isinstance(op, ast.In | ast.NotIn):
                items = [_numeric(i, left) for i in right] if isinstance(right, list) else right
                return fn(_numeric(left, items[0] if items else None), items)
            left, right = _numeric(left, right), _numeric(right, left)
            return fn(left, right)
        except TypeError:
            raise FilterError(
                f"filter {self.text!r} compares {left!r} with {right!r}, which have "
                "different types"
            ) from None


def _numeric(value: Any, other: Any) -> Any:
    """``value`` as a Decimal when it or ``other`` is a number and both read as numbers."""
    if isinstance(value, bool) or isinstance(other, bool):
        return value
    if isinstance(value, int | float) or (
        isinstance(value, str) and isinstance(other, int | float | Decimal)
    ):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return value
    return value


def _check(node: ast.expr, text: str) -> None:
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, text)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise ValueError(f"filter {text!r}: operator {type(op).__name__} not allowed")
        for sub in (node.left, *node.comparators):
            _check(sub, text)
    elif isinstance(node, ast.List | ast.Tuple):
        for e in node.elts:
            if not isinstance(e, ast.Constant) and not (
                isinstance(e, ast.Name) and e.id in _CONSTANTS
            ):
                raise ValueError(f"filter {text!r}: lists may hold only literals")
    elif isinstance(node, ast.Name | ast.Constant):
        pass
    else:
        raise ValueError(
            f"filter {text!r}: {type(node).__name__} is not allowed; use column names, "
            "literals, comparisons, and/or/not, in [...], is null"
        )


@dataclass(frozen=True)
class Transform:
    """The row transforms of one sink (or one nested field), compiled."""

    filter: RowFilter | None
    include: frozenset[str] | None
    exclude: frozenset[str]
    mask: frozenset[str]
    rename: Mapping[str, str]

    @classmethod
    def of(cls, config: TransformConfig) -> Transform:
        return cls(
            RowFilter(config.filter) if config.filter else None,
            frozenset(config.include) if config.include is not None else None,
            frozenset(config.exclude),
            frozenset(config.mask),
            dict(config.rename),
        )

    @property
    def is_identity(self) -> bool:
        """:meth:`apply` would return a copy of the row, unchanged."""
        return self.include is None and not (self.exclude or self.mask or self.rename)

    def keeps(self, row: Mapping[str, Any]) -> bool:
        """Whether ``row`` passes the filter (raises :class:`FilterError`)."""
        return self.filter is None or self.filter.matches(row)

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The document fields for ``row``: include/exclude, then mask, then rename."""
        out: dict[str, Any] = {}
        for column, value in row.items():
            if (self.include is not None and column not in self.include) or (
                column in self.exclude
            ):
                continue
            masked = MASK if column in self.mask and value is not None else value
            out[self.rename.get(column, column)] = masked
        return out
