"""The single exception type of the data layer."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input data: says what was wrong and where.

    Attributes (each ``None`` when it does not apply):

    * ``reason``: what was wrong, without the location prefix.
    * ``path``: the file (its path as given, a stream's ``name``, or ``"<stream>"``).
    * ``line``: 1-based physical line in the file (for a record spanning several lines
      because of a quoted newline, the line where the record starts).
    * ``column``: 1-based column (field) number.
    * ``column_name``: the column's name when known.
    * ``row``: 0-based row index, for errors in in-memory arrays (``path`` is then ``None``).

    The message starts with the location, compiler style, e.g.
    ``iris.csv:17:5 (column 'species'): expected 5 fields, found 4``; for arrays it uses
    numpy indexing (0-based), e.g. ``X[3, 1] (column 'colour'): ...``.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        column_name: str | None = None,
        row: int | None = None,
        array: str = "X",
    ) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        self.column = column
        self.column_name = column_name
        self.row = row
        self.array = array
        super().__init__(self._render())

    def _render(self) -> str:
        name = f" {self.column_name!r}" if self.column_name is not None else ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
                    if self.column_name is not None:
                        where += f" (column {self.column_name!r})"
            elif self.column is not None:
                where += f" (column {self.column}{name})"
            return f"{where}: {self.reason}"
        if self.row is None and self.column is None:
            return self.reason
        row = ":" if self.row is None else str(self.row)
        if self.column is None:
            where = f"{self.array}[{row}]"
        else:
            where = f"{self.array}[{row}, {self.column - 1}]"
        if self.column_name is not None:
            where += f" (column {self.column_name!r})"
        return f"{where}: {self.reason}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only __init__ would otherwise break copy/pickle of the exception object
        # (e.g. by pytest-xdist or logging handlers); data never crosses processes this way.
        return (
            _rebuild,
            (self.reason, self.path, self.line, self.column, self.column_name, self.row,
             self.array),
        )


def _rebuild(
    reason: str,
    path: str | None,
    line: int | None,
    column: int | None,
    column_name: str | None,
    row: int | None,
    array: str,
) -> DataError:
    return DataError(
        reason, path=path, line=line, column=column, column_name=column_name, row=row,
        array=array,
    )
