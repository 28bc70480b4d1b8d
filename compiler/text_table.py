"""Plain-text tables that fit a terminal's width (`finegrain report`): columns keep their
natural width when the table fits; otherwise cells wrap onto more lines, only where a reader
would break them (after a space, ``,``, ``+``, ``/``, ``|``, ``;``), and the room is shared
out by narrowing the widest column first.  A word is cut only when one alone is wider than
its whole column could be (a name longer than the terminal). Columns of numbers break only at
spaces: 1,398 stays whole."""

from __future__ import annotations

import re
import shutil
import textwrap

GAP = "  "  # between columns
# a break is allowed after these (a space itself is dropped at a line end)
_PIECES = re.compile(r"[^ ,+/|;]*[,+/|;]+|[^ ,+/|;]+ *| +")
_WORDS = re.compile(r"[^ ]+ *| +")


def terminal_width() -> int:
    """Columns to fill: $COLUMNS if set, else the terminal's, else 80 (not a terminal)."""
    return shutil.get_terminal_size(fallback=(80, 24)).columns


def pieces(text: str, marks: bool = True) -> list[str]:
    """``text`` cut where a line may break (after spaces and, with ``marks``, after
    ``, + / | ;``); joined back they give ``text``."""
    return (_PIECES if marks else _WORDS).findall(text)


def wrap_cell(text: str, width: int, marks: bool = True) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken only between `pieces` (a
    piece wider than ``width`` is cut)."""
    lines, line = [], ""
    for piece in pieces(text, marks):
        while len(piece.rstrip()) > width:  # wider than the column: cut (only a very long word)
            if line.rstrip():
                lines.append(line.rstrip())
                line = ""
            lines.append(piece[:width])
            piece = piece[width:]
        if len((line + piece).rstrip()) > width:
            lines.append(line.rstrip())
            line = piece.lstrip()
        else:
            line += piece
    if line.rstrip() or not lines:
        lines.append(line.rstrip())
    return lines


def _floors(rows: list[tuple[str, ...]], right: tuple[int, ...]) -> list[int]:
    """Each column's longest unbreakable piece."""
    return [max([len(p.rstrip()) for r in rows for p in pieces(r[i], i not in right)] or [1])
            for i in range(len(rows[0]))]


def column_widths(rows: list[tuple[str, ...]], width: int, right: tuple[int, ...] = ()) -> list[int]:
    """Each column's width so the table is at most ``width`` wide: the natural widths if they
    fit; else, one character at a time, the widest column is narrowed while it is wider than
    its longest unbreakable piece, and only when none is left so, below that.  The first column
    (the rows' names) keeps its natural width while that is at most a third of the table."""
    ncols = len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(ncols)]
    room = width - len(GAP) * (ncols - 1)
    floor = _floors(rows, right)
    if widths[0] <= room // 3:
        floor[0] = widths[0]
    while sum(widths) > room:
        narrow = [i for i in range(ncols) if widths[i] > floor[i]] or [i for i in range(ncols) if widths[i] > 1]
        if not narrow:
            break
        widths[max(narrow, key=lambda k: widths[k])] -= 1
    return widths


def format_table(rows: list[tuple[str, ...]], width: int, right: tuple[int, ...] = (),
                 short: dict[int, str] | None = None) -> list[str]:
    """``rows`` (the first is the header) as lines of at most ``width`` characters; columns
    whose index is in ``right`` are aligned right (numbers).  ``short``: abbreviated headers
    by column, used (with a legend line under the table) when the full ones would leave some
    column too narrow for its longest word."""
    legend = []
    if short and sum(_floors(rows, right)) > width - len(GAP) * (len(rows[0]) - 1):
        legend = wrap_text("; ".join(f"{short[i]}: {rows[0][i]}" for i in sorted(short)), width)
        rows = [tuple(short.get(i, h) for i, h in enumerate(rows[0])), *rows[1:]]
    widths = column_widths(rows, width, right)
    lines = []
    for row in rows:
        cells = [wrap_cell(c, w, i not in right) for i, (c, w) in enumerate(zip(row, widths))]
        for k in range(max(len(c) for c in cells)):
            parts = []
            for i, (cell, w) in enumerate(zip(cells, widths)):
                text = cell[k] if k < len(cell) else ""
                parts.append(text.rjust(w) if i in right else text.ljust(w))
            lines.append(GAP.join(parts).rstrip())
    return lines + legend


def wrap_text(text: str, width: int, indent: str = "  ") -> list[str]:
    """A paragraph in lines of at most ``width``, continuation lines indented (long words kept
    whole unless wider than a line)."""
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]
