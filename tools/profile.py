"""Data profiling with polars: column kinds, missing values, cardinality, target balance and leakage suspects."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import polars as pl
from pydantic import BaseModel, Field
from sklearn.model_selection import cross_val_score
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from crew import Task, canonical_labels, read_table
from crew.tools.artifacts import count_rows, file_stamp, read_columns
from crew.tools.script import parse_dates

__all__ = ["ColumnProfile", "DataProfile", "TargetProfile", "TextProfile", "profile_task", "profile_text",
           "text_chars_per_row"]

ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text", "id", "constant"]
_LEAK_SAMPLE = 20_000
_TEXT_SAMPLE = 20_000
_COMMON_WORDS = {
    "en": {"the", "and", "of", "to", "is", "in", "that", "it", "you", "for"},
    "ru": {"и", "в", "не", "на", "что", "я", "с", "он", "это", "как"},
    "de": {"und", "der", "die", "das", "nicht", "ist", "ich", "zu", "den", "mit"},
    "fr": {"le", "les", "et", "est", "pas", "une", "des", "que", "pour", "dans"},
    "es": {"el", "los", "y", "que", "en", "es", "por", "una", "las", "del"},
    "pt": {"não", "é", "um", "uma", "para", "com", "os", "em", "que", "do"},
    "it": {"il", "che", "non", "di", "è", "per", "una", "sono", "con", "gli"},
}
"""Ten of each language's most frequent words: a language hint, not a detector."""


class TextProfile(BaseModel):
    """What a text column holds: how long, how varied, in which writing system and (a hint) language. The critic
    prices text features by `chars`; a person reads the rest before trusting a text model."""

    chars: int = Field(description="characters in train and test together (what a TF-IDF experiment reads)")
    mean_chars: float
    max_chars: int
    mean_words: float
    vocabulary: int = Field(description=f"distinct lower-case words in up to {_TEXT_SAMPLE:,} train rows")
    script: str = Field(description="the writing system most letters are in (latin, cyrillic, cjk, arabic, ...)")
    language: str | None = Field(default=None, description="a hint from the most common words (en, ru, de, fr, es, "
                                 "pt, it); None when none stands out")


class ColumnProfile(BaseModel):
    name: str
    dtype: str
    kind: ColumnKind
    missing: float = Field(description="fraction of train rows that are missing")
    n_unique: int
    examples: list[str] = Field(default_factory=list)
    text: TextProfile | None = None


class TargetProfile(BaseModel):
    type: Literal["binary", "multiclass", "regression"]
    classes: dict[str, int] = Field(default_factory=dict, description="class -> train count")
    imbalance: float | None = Field(default=None, description="largest class count / smallest")
    mean: float | None = None
    std: float | None = None
    skew: float | None = None
    minimum: float | None = None
    missing: int = 0


class DataProfile(BaseModel):
    """What the analyst knows about a task's data; small enough to put in an LLM prompt."""

    train_rows: int
    test_rows: int
    columns: list[ColumnProfile]
    target: TargetProfile
    duplicate_rows: int
    leakage_suspects: dict[str, float] = Field(default_factory=dict, description="column -> single-feature CV score")

    def of_kind(self, *kinds: ColumnKind) -> list[str]:
        return [c.name for c in self.columns if c.kind in kinds]


def profile_task(task: Task, *, seed: int = 0) -> DataProfile:
    """Profile train (and test sizes) of a tabular task; leakage is tested with one-feature trees."""
    assert task.data is not None and task.target is not None
    train = read_table(task.path(task.data.train))
    test = read_table(task.path(task.data.test))
    features = [c for c in train.columns if c != task.target and c in test.columns]
    columns = [_profile_column(train[c], train.height) for c in features]
    # the id column only keys the rows, unless it is free text (detecting-insults keys its rows by the comment)
    columns = [c for c in columns if c.name != task.id_column or c.kind == "text"]
    features = [c.name for c in columns]
    columns = [c.model_copy(update={"text": profile_text(train[c.name], test[c.name])}) if c.kind == "text" else c
               for c in columns]
    target = _profile_target(train[task.target], task)
    duplicates = int(train.select(features).is_duplicated().sum()) if features else 0
    labelled = train.filter(pl.col(task.target).is_not_null())
    suspects = _leakage_suspects(labelled, [c for c in columns if c.kind not in ("constant", "text")], task, seed)
    return DataProfile(train_rows=train.height, test_rows=test.height, columns=columns, target=target,
                       duplicate_rows=duplicates, leakage_suspects=suspects)


def text_chars_per_row(task: Task, columns: Sequence[str]) -> float:
    """Characters of text per train or test row over `columns` (what the critic prices text features by): only
    those columns read, once per file version (`crew.tools.artifacts.read_columns`)."""
    assert task.data is not None
    chars = rows = 0
    for path in (task.path(task.data.train), task.path(task.data.test)):
        stamp = file_stamp(path)
        scan = pl.scan_csv(path) if path.suffix.lower() == ".csv" else pl.scan_parquet(path)
        names = set(scan.collect_schema().names())  # a script may name a column the file does not hold
        present = tuple(c for c in columns if c in names)
        rows += count_rows(stamp)
        if present:
            frame = read_columns(stamp, present)
            chars += sum(int(frame[c].cast(pl.Utf8).fill_null("").str.len_chars().sum() or 0) for c in present)
    return chars / max(1, rows)


def profile_text(train: pl.Series, test: pl.Series | None = None) -> TextProfile:
    """Lengths over every row of train and test; vocabulary, script and language from a sample of train."""
    both = pl.concat([train, test]) if test is not None else train
    lengths = both.cast(pl.Utf8).fill_null("").str.len_chars()
    sample = train.drop_nulls().cast(pl.Utf8).head(_TEXT_SAMPLE)
    words = sample.str.to_lowercase().str.extract_all(r"\w+").explode().drop_nulls()
    counts: dict[str, int] = {}
    for ch in "".join(sample.head(2000).to_list())[:200_000]:
        if ch.isalpha():
            name = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
            name = "cjk" if name in ("CJK", "HIRAGANA", "KATAKANA") else name.lower()
            counts[name] = counts.get(name, 0) + 1
    script = max(counts, key=counts.__getitem__) if counts else "none"
    common = words.head(200_000).value_counts(sort=True).head(50)
    top = dict(zip(common[common.columns[0]].to_list(), common["count"].to_list(), strict=True))
    total = max(1, min(words.len(), 200_000))
    shares = {lang: sum(top.get(w, 0) for w in vocab) / total for lang, vocab in _COMMON_WORDS.items()}
    language = max(shares, key=shares.__getitem__) if shares else None
    mean_chars = lengths.cast(pl.Float64).mean()
    return TextProfile(chars=int(lengths.sum() or 0),
                       mean_chars=round(mean_chars, 1) if isinstance(mean_chars, float) else 0.0,
                       max_chars=int(lengths.max() or 0),  # type: ignore[arg-type]
                       mean_words=round(float(words.len()) / max(1, sample.len()), 1),
                       vocabulary=int(words.n_unique()), script=script,
                       language=language if language and shares[language] >= 0.05 else None)


def _profile_column(series: pl.Series, rows: int) -> ColumnProfile:
    if series.dtype == pl.Utf8 and (numbers := _numeric_text(series)) is not None:
        series = numbers  # "?" or "n/a" among numbers: the experiments read them as missing (script.numbers)
    non_null = series.drop_nulls()
    n_unique = int(non_null.n_unique())
    examples = [str(v) for v in non_null.unique(maintain_order=True).head(5).to_list()]
    dtype = series.dtype
    kind: ColumnKind
    if n_unique <= 1:
        kind = "constant"
    elif dtype == pl.Boolean or (n_unique == 2 and dtype.is_numeric()):
        kind = "boolean"
    elif dtype.is_temporal():
        kind = "datetime"
    elif dtype.is_numeric():
        is_int = dtype.is_integer()
        kind = "id" if is_int and n_unique == rows and _is_sequence(non_null) else "numeric"
    elif dtype == pl.Utf8:
        kind = _string_kind(non_null, n_unique, rows)
    else:
        kind = "categorical"
    missing = series.null_count() / rows if rows else 0.0
    return ColumnProfile(name=series.name, dtype=str(dtype), kind=kind, missing=round(missing, 4),
                         n_unique=n_unique, examples=examples)


def _is_sequence(values: pl.Series) -> bool:
    """Row numbers and surrogate keys: unique integers with near-constant steps carry no signal."""
    span = float(values.max()) - float(values.min())  # type: ignore[arg-type]
    return span <= 2 * len(values)


MISSING_MARKERS = ("", "na", "n/a", "nan", "null", "none", "nil", "-", "--", "?", ".", "missing", "#n/a", "unknown")
"""Text that stands for a missing value in a column of numbers (compared stripped and lower-case)."""


def _numeric_text(values: pl.Series) -> pl.Series | None:
    """A text column of numbers with missing-value markers: its values as floats (markers missing); else None."""
    stripped = values.str.strip_chars()
    marker = stripped.str.to_lowercase().is_in(list(MISSING_MARKERS))
    numbers = stripped.cast(pl.Float64, strict=False)
    if marker.all() or (numbers.is_null() & ~marker & values.is_not_null()).any():
        return None
    return numbers.rename(values.name)


def _is_date(values: pl.Series) -> bool:
    """Text that the experiments' `parse_dates` reads as dates, in one format that names a year and a month."""
    sample = pd.Series(values.head(1000).to_list(), dtype="string")
    try:
        parsed, fmt = parse_dates(sample)  # quiet: it silences pandas' format warnings itself
    except (ValueError, TypeError, OverflowError):
        return False
    named = fmt == "ISO8601" or (("%Y" in fmt or "%y" in fmt) and any(m in fmt for m in ("%m", "%b", "%B")))
    return named and float(parsed.notna().mean()) >= 0.95


def _string_kind(values: pl.Series, n_unique: int, rows: int) -> ColumnKind:
    if _is_date(values):
        return "datetime"
    mean_words = values.str.count_matches(r"\s+").cast(pl.Float64).mean()
    if isinstance(mean_words, float) and mean_words >= 3:
        return "text"
    if n_unique == rows and rows > 20:
        return "id"
    return "categorical"


def _profile_target(y: pl.Series, task: Task) -> TargetProfile:
    missing = y.null_count()
    y = y.drop_nulls()
    if task.target_type == "regression":
        values = y.cast(pl.Float64)
        return TargetProfile(type="regression", mean=float(values.mean()), std=float(values.std() or 0.0),  # type: ignore[arg-type]
                             skew=float(values.skew() or 0.0), minimum=float(values.min()),  # type: ignore[arg-type]
                             missing=missing)
    labels, counts = np.unique(canonical_labels(y.to_list()).astype(str), return_counts=True)
    classes = {str(label): int(count) for label, count in zip(labels, counts, strict=True)}
    kind: Literal["binary", "multiclass"] = "binary" if task.target_type == "binary" else "multiclass"
    return TargetProfile(type=kind, classes=dict(sorted(classes.items())),
                         imbalance=round(max(classes.values()) / min(classes.values()), 3), missing=missing)


def _leakage_suspects(train: pl.DataFrame, columns: list[ColumnProfile], task: Task, seed: int) -> dict[str, float]:
    """Columns that alone predict the target almost perfectly (CV accuracy or R^2 >= 0.99)."""
    if train.height < 20:
        return {}
    sample = train.sample(n=min(train.height, _LEAK_SAMPLE), seed=seed)
    classification = task.target_type != "regression"
    y = sample[task.target or ""].cast(pl.Utf8).to_numpy() if classification else sample[task.target or ""].cast(pl.Float64).to_numpy()
    if classification:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() < 3:
            return {}
        baseline = counts.max() / counts.sum()
    suspects: dict[str, float] = {}
    for column in columns:
        series = sample[column.name]
        if series.dtype.is_numeric():
            x = series.cast(pl.Float64).fill_null(np.nan).to_numpy()  # trees split on NaN natively
        else:
            x = series.cast(pl.Utf8).fill_null("").rank("dense").cast(pl.Float64).to_numpy()
        model = (DecisionTreeClassifier if classification else DecisionTreeRegressor)(max_depth=6, random_state=seed)
        score = float(np.mean(cross_val_score(model, x.reshape(-1, 1), y, cv=3, scoring="accuracy" if classification else "r2")))
        if score >= 0.99 and (not classification or score > baseline + 0.05):
            suspects[column.name] = round(score, 4)
    return suspects
