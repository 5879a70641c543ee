"""The benchmark's tables: one type for every section, and how figures are written in them.

Shared by the harness and the time-to-accuracy section (:mod:`cnnlab.bench.tta`), which both
build :class:`Table` rows; imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Table:
    """One table of the report: a title, column names, rows, and notes printed under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt(value: float | None, spec: str = ",.0f") -> str:
    """``value`` formatted with ``spec``; "n/a" when there is none."""
    return "n/a" if value is None else format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as "1.23x"; "n/a" when either is missing or zero."""
    return "n/a" if not a or not b else f"{a / b:.2f}x"


def print_tables(tables: list[Table], log: Callable[[str], None] = print) -> None:
    """The tables as aligned plain text, for the terminal."""
    for table in tables:
        widths = [max(len(str(x)) for x in col) for col in zip(table.columns, *table.rows)]
        log("")
        log(table.title)
        log("  ".join(c.ljust(w) for c, w in zip(table.columns, widths)))
        for row in table.rows:
            log("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
        for note in table.notes:
            log(note)
