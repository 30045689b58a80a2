"""Python bindings of the purchase engine's SQL functions, each built from ONE declaration.

A binding names every argument of the SQL function together with where its value comes from. The statement
is generated from that list in PostgreSQL's named notation (`f(p_id => $1, ...)`), so the parameter order
is never mirrored by hand and a renamed or missing argument is refused by the database instead of shifting
values into the wrong parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SqlFunction:
    """`SELECT <returns> FROM <name>(<arg> => $n, ...)`; `args` pairs each SQL argument with the key of its
    value. Names come from code (declarations in this package), never from input."""

    name: str
    returns: str
    args: tuple[tuple[str, str], ...]
    statement: str = field(init=False)

    def __post_init__(self) -> None:
        named = ", ".join(f"{arg} => ${n}" for n, (arg, _) in enumerate(self.args, 1))
        object.__setattr__(self, "statement", f"SELECT {self.returns} FROM {self.name}({named})")  # noqa: S608

    def values(self, source: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters for `statement`, read from `source` by each argument's key."""
        return tuple(source[key] for _, key in self.args)


__all__ = ["SqlFunction"]
