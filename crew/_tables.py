"""Reading the task's tables (csv or parquet) with polars, turning every failure into a Problem."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from crew.errors import Problem

SUFFIXES = (".csv", ".parquet", ".pq")


class TableError(Exception):
    """A table that could not be read; carries the user-facing reason and fix."""

    def __init__(self, message: str, fix: str):
        self.message = message
        self.fix = fix
        super().__init__(message)

    def problem(self, file: str, field: str) -> Problem:
        return Problem(file=file, field=field, message=self.message, fix=self.fix)


def read_table(path: Path, *, as_text: bool = False) -> pl.DataFrame:
    """Read a csv or parquet file strictly: non-UTF-8 text or ragged rows are errors, not guesses. `as_text`:
    every field as text, as written in a csv ("1.0" stays "1.0", an empty field is ""), for outputs compared as
    text.

    The whole file is scanned for types (`infer_schema_length=None`) because a
    column that turns from integers to text at row 10,000 is common in real
    data and a silent mis-parse would poison every experiment downstream.
    """
    path = Path(path)
    if not path.exists():
        raise TableError(f"file {path} does not exist", "check the path (relative to task.yaml's folder)")
    if path.is_dir():
        raise TableError(f"{path} is a folder, not a file", "name a .csv or .parquet file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise TableError(f"{path.name} is neither csv nor parquet", "convert it to .csv or .parquet")
    try:
        if suffix == ".csv":
            if path.stat().st_size == 0:
                raise TableError(f"{path.name} is empty", "write a header row and at least one data row")
            frame = (pl.read_csv(path, infer_schema=False, encoding="utf8", raise_if_empty=True) if as_text else
                     pl.read_csv(path, infer_schema_length=None, encoding="utf8", raise_if_empty=True))
        else:
            frame = pl.read_parquet(path)
        if as_text:  # a csv read as text is text already; a parquet column is cast
            frame = frame.with_columns(pl.all().cast(pl.Utf8).fill_null(""))
    except TableError:
        raise
    except Exception as exc:  # polars raises many types; each means "cannot parse"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "utf-8" in text.lower() or "utf8" in text.lower():
            raise TableError(
                f"{path.name} is not valid UTF-8 text",
                "re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`",
            ) from exc
        raise TableError(
            f"{path.name} could not be parsed ({text[:160]})",
            "check that every row has the same number of fields and the file is csv or parquet",
        ) from exc
    # polars renames a repeated header `x` to `x_duplicated_0`; repeated names are ambiguous, so refuse.
    duplicated = sorted({re.sub(r"_duplicated_\d+$", "", c) for c in frame.columns if re.search(r"_duplicated_\d+$", c)})
    if duplicated:
        raise TableError(f"{path.name} repeats the column name(s) {duplicated}", "give every column a unique name")
    return frame
