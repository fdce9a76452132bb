"""The long submission layout: one row per cell, keyed by a format (a target of a row, or a pixel of an image).

Some competitions want a multi-label answer not as a column per label but
as one row per cell (mlsp-2013-birds: `Id = rec_id*100 + species`,
`Probability`). crew keeps predicting the columns side by side (each a model
of its own) and turns them into that layout only where the submission file
is written and read back: `melt` when it is written, `pivot` when grading or
a resumed run reads it. A task whose target is an image
(denoising-dirty-documents) is submitted one row per pixel of each test
image (`{id}_{row}_{col}`, from 1), and graded cell by cell (`align`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LongSubmission", "align", "cell_keys", "format_problem", "melt", "pivot", "pixel_keys"]

_FIELDS = {"id", "target", "index"}
_PIXEL_FIELDS = {"id", "row", "col"}
_INTEGER = re.compile(r"-?\d+")


class LongSubmission(BaseModel):
    """`submission:` of a several-target task whose file holds one row per cell."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="the column of the submission that names the cell")
    value: str = Field(description="the column of the submission that holds the cell's prediction")
    format: str = Field(default="{id}_{target}", description="a cell's key, from `{id}` (the test row's id), "
                        "`{target}` (the column's name) and `{index}` (its place in `targets`, from 0), or, for an image "
                        "target, `{id}`, `{row}` and `{col}` (a pixel's, from 1), with Python's format specs "
                        "(`{index:02d}`); keys made only of digits are written as integers")

    def melt(self, wide: pl.DataFrame, id_column: str, targets: Sequence[str]) -> pl.DataFrame:
        """Wide predictions (`id_column`, then one column per target) as this file's rows: key, value."""
        return melt(self, wide, id_column, targets)


def format_problem(spec: LongSubmission, *, image: bool = False) -> str | None:
    """Why `spec.format` cannot key every cell apart (or None): it must name the row and the column (the image and
    the pixel's row and column, for an `image` target)."""
    try:
        fields = {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(spec.format)
                  if name is not None}
    except ValueError as exc:
        return f"{spec.format!r} is not a format string ({exc})"
    allowed = _PIXEL_FIELDS if image else _FIELDS
    unknown = sorted(fields - allowed)
    if unknown:
        return f"{spec.format!r} names {unknown}, which is not {', '.join(sorted(allowed))}"
    if image and fields != _PIXEL_FIELDS:
        return f"{spec.format!r} must name the image ({{id}}) and the pixel ({{row}} and {{col}})"
    if not image and ("id" not in fields or not fields & {"target", "index"}):
        return f"{spec.format!r} must name the row ({{id}}) and the column ({{target}} or {{index}})"
    return None


def _typed(name: str, keys: list[str]) -> pl.Series:
    """Keys as written in a csv and read back: integers when every key is digits only."""
    if keys and all(_INTEGER.fullmatch(k) for k in keys):
        return pl.Series(name, [int(k) for k in keys], dtype=pl.Int64)
    return pl.Series(name, keys, dtype=pl.Utf8)


def cell_keys(spec: LongSubmission, ids: Sequence[object], targets: Sequence[str]) -> pl.Series:
    """Every cell's key, row by row (the first row's targets, then the next row's); integers when every key is
    digits only, so that `{id}{index:02d}` gives mlsp's `rec_id*100 + species` as the number a csv reads back."""
    return _typed(spec.key, [spec.format.format(id=row, target=target, index=j) for row in ids
                             for j, target in enumerate(targets)])


def pixel_keys(spec: LongSubmission, image_id: object, height: int, width: int) -> pl.Series:
    """The keys of an image's pixels, row by row (`{row}` and `{col}` count from 1, as MLE-bench's
    denoising-dirty-documents does). A format of plain fields is built column-wise (the reviewer keys every
    held-out and test pixel of each experiment: millions); one with format specs is formatted pixel by pixel."""
    parts = list(string.Formatter().parse(spec.format))
    if not all(not fmt_spec and not conversion for _, _, fmt_spec, conversion in parts):
        return _typed(spec.key, [spec.format.format(id=image_id, row=r, col=c) for r in range(1, height + 1)
                                 for c in range(1, width + 1)])
    grid = pl.DataFrame({"row": np.repeat(np.arange(1, height + 1), width),
                         "col": np.tile(np.arange(1, width + 1), height)})
    pieces: list[pl.Expr] = []
    for literal, field, _, _ in parts:
        if literal:
            pieces.append(pl.lit(literal))
        if field == "id":
            pieces.append(pl.lit(str(image_id)))
        elif field is not None:
            pieces.append(pl.col(field).cast(pl.Utf8))
    keys = grid.select(pl.concat_str(pieces).alias(spec.key))[spec.key]
    if keys.len() and keys.str.contains(r"^-?\d+$").all():  # as `_typed` reads digit-only keys back
        return keys.cast(pl.Int64)
    return keys


def align(spec: LongSubmission, long: pl.DataFrame, keys: pl.Series) -> tuple[str | None, pl.Series]:
    """Why `long` does not hold a value for each of `keys` (and nothing else), or None; and its values in the order
    of `keys` (a per-pixel submission against the answers' pixels)."""
    empty = pl.Series(spec.value, [], dtype=pl.Float64)
    expected = [spec.key, spec.value]
    if sorted(long.columns) != sorted(expected):
        return f"has columns {long.columns}; a submission has columns {expected}", empty
    if long.height != keys.len():
        return f"has {long.height} rows, expected {keys.len()} (one per test pixel)", empty
    mine = long[spec.key].cast(pl.Utf8)
    dupes = mine.filter(mine.is_duplicated()).unique().sort().head(3).to_list()
    if dupes:
        return f"duplicated {spec.key}(s) {dupes}", empty
    want = keys.cast(pl.Utf8)
    unknown = mine.filter(~mine.is_in(want.implode())).head(3).to_list()
    if unknown:
        return f"{spec.key}(s) {unknown} name no test pixel", empty
    value = long[spec.value]
    if not value.dtype.is_numeric():
        return f"column {spec.value!r} is not numeric", empty
    joined = pl.DataFrame({"__key": want}).join(pl.DataFrame({"__key": mine, "__value": value.cast(pl.Float64)}),
                                                on="__key", how="left", maintain_order="left")
    values = joined["__value"]
    if values.null_count() or values.is_nan().any():
        return f"column {spec.value!r} has missing values", empty
    if not values.is_finite().all():
        return f"column {spec.value!r} has infinite values", empty
    return None, values.alias(spec.value)


def melt(spec: LongSubmission, wide: pl.DataFrame, id_column: str, targets: Sequence[str]) -> pl.DataFrame:
    """The wide predictions (the id column, then one column per target) as the long file: key, value."""
    values = wide.select([pl.col(t).cast(pl.Float64) for t in targets]).to_numpy().reshape(-1)
    return pl.DataFrame([cell_keys(spec, wide[id_column].to_list(), targets), pl.Series(spec.value, values)])


def pivot(spec: LongSubmission, long: pl.DataFrame, ids: Sequence[object], id_column: str, targets: Sequence[str]
          ) -> tuple[str | None, pl.DataFrame]:
    """Why `long` is not a complete long submission for the rows `ids` (or None), and its values as the wide table:
    `id_column` (the ids, in order), then one column per target."""
    expected = [spec.key, spec.value]
    if sorted(long.columns) != sorted(expected):
        return f"has columns {long.columns}; a submission has columns {expected}", long
    cells = len(ids) * len(targets)
    if long.height != cells:
        return (f"has {long.height} rows, expected {cells} (one per test row and target: {len(ids)} x "
                f"{len(targets)})"), long
    keys = long[spec.key].cast(pl.Utf8)
    dupes = keys.filter(keys.is_duplicated()).unique().sort().head(3).to_list()
    if dupes:
        return f"duplicated {spec.key}(s) {dupes}", long
    want = cell_keys(spec, ids, targets).cast(pl.Utf8)
    unknown = sorted(set(keys.to_list()) - set(want.to_list()))[:3]
    if unknown:
        return f"{spec.key}(s) {unknown} name no test row and target", long
    value = long[spec.value]
    if not value.dtype.is_numeric():
        return f"column {spec.value!r} is not numeric", long
    ordered = pl.DataFrame({"__key": want}).join(
        pl.DataFrame({"__key": keys, "__value": value.cast(pl.Float64)}), on="__key", how="left", maintain_order="left")
    matrix = ordered["__value"].to_numpy().reshape(len(ids), len(targets))
    return None, pl.DataFrame([pl.Series(id_column, list(ids)),
                               *[pl.Series(t, matrix[:, j]) for j, t in enumerate(targets)]])
