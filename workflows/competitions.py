"""MLE-bench's 75 competitions as crew knows them (`mlebench.yaml`), and what crew can do with each today.

The registry is data transcribed from each competition's `config.yaml`,
`prepare.py` and `grade.py` in openai/mle-bench: the prepared files, the
column a submission is keyed by, the columns the grader scores, its metric
in crew's name when crew grades it the same way (or in words when not), row
filters and per-group averaging. `crew import-mlebench` reads a known
competition from it instead of guessing from file names and the
description; `support` says, in one line, why crew cannot take one yet, and
`crew import-mlebench --list` shows that for all of them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from crew import METRICS

__all__ = ["Competition", "CompetitionFiles", "MediaLayout", "TokenSequence", "competitions", "support"]

REGISTRY = Path(__file__).with_name("mlebench.yaml")


class CompetitionFiles(BaseModel):
    """The prepared files: train, test and sample submission in `public/`, the answers in `private/`."""

    model_config = ConfigDict(extra="forbid")

    train: str | None
    test: str | None
    sample_submission: str | None
    answers: str | None
    other: list[str] = []


class TokenSequence(BaseModel):
    """How a seq2seq competition's rows form sequences: the input token, the sequence it belongs to and its place
    there (the submission's id is `<group>_<position>`)."""

    model_config = ConfigDict(extra="forbid")

    source: str
    group: str
    position: str


class MediaLayout(BaseModel):
    """Where an image or audio competition's files are: each row's file from its id, relative to `public/` once the
    archives are extracted; and, for a competition with no train table, the train rows read from the file names."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["image", "audio"]
    train: str
    """A train row's file, `{id}` its id (`train/{id}.jpg`)."""
    test: str
    archives: dict[str, str] = {}
    """Archive in public/ -> the folder its files are extracted into (by file name, whatever folders it holds)."""
    label_from_name: str | None = None
    """No train table: every file of the train folder is a train row, its id its name and its target this regular
    expression's `label` group, mapped by `labels`."""
    labels: dict[str, int | str] = {}
    label_lists: str | None = None
    """No train table: the rows are this file's lines, `<id>,<label>,<label>...` after a header (a row with no label
    has none; `?` marks a test row); each label is a class id of `classes`, one 0/1 target per class."""
    classes: str | None = None
    """With `label_lists`: the table of the classes, its first column the class id, its second the target's name."""
    target: str | None = None
    """An image target (image in, image out): each train row's target image (`train_cleaned/{id}.png`), a column
    named after its folder; with no train table, the rows are the files of the train and test folders."""
    names: str | None = None
    """A table keyed by the id whose other columns the file patterns name (`src_wavs/{filename}.wav`)."""


class Competition(BaseModel):
    """One competition: its files, keys, targets and grader (see `mlebench.yaml`'s header for the fields)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    lite: bool
    modality: Literal["tabular", "text", "image", "audio", "seq2seq", "video", "other"]
    output: Literal["label", "value", "class_proba", "multilabel", "multi_output", "text", "other"]
    files: CompetitionFiles
    id_column: str | None
    submission_columns: list[str]
    targets: list[str]
    label_column: str | None
    metric: str | None
    grader: str
    higher_is_better: bool
    row_filter: str | None
    group_by: str | None
    clip: str | None
    notes: str = ""
    sequence: TokenSequence | None = None
    """A seq2seq competition's token columns (its test table has no id column of its own)."""
    media: MediaLayout | None = None
    """An image or audio competition crew reads: where its files are."""
    submission: dict[str, str] | None = None
    """A submission of one row per (row, target) cell: the task's `submission:` (`key`, `value`, `format`)."""

    @property
    def one_hot(self) -> list[str]:
        """The train columns of a target given one-hot (`label_column: "one-hot: a, b, c"`), else []."""
        if self.label_column and self.label_column.startswith("one-hot:"):
            return [c.strip() for c in self.label_column.removeprefix("one-hot:").split(",")]
        return []


@functools.cache
def competitions() -> dict[str, Competition]:
    """Every competition of the registry, by id."""
    raw = yaml.safe_load(REGISTRY.read_text(encoding="utf-8"))["competitions"]
    return {name: Competition(id=name, **fields) for name, fields in raw.items()}


def support(competition: Competition, *, metric_given: bool = False) -> str | None:
    """None when crew imports the competition and solves it offline; otherwise why not, in one line.
    `metric_given`: the user chose the metric (--metric), so a grader crew does not reproduce is their call."""
    c = competition
    if c.modality in ("image", "audio", "video") and c.media is None:
        return f"its inputs are {c.modality} files laid out in a way crew does not read yet ({c.notes[:80]})"
    if c.media is not None and c.output == "multilabel" and not (c.metric in METRICS and METRICS[c.metric].per_column):
        return f"it scores several targets per {c.media.kind} file by {c.grader[:60]}, which crew does not grade yet"
    if c.modality == "other":
        return f"its inputs are not tables or text ({c.notes[:90]})"
    if c.modality == "seq2seq" and c.sequence is None:
        return "a token-normalisation task whose token columns the registry does not name"
    if c.output == "other" or (c.output == "text" and c.modality != "seq2seq"):
        return f"it predicts {'text' if c.output == 'text' else 'structured answers'} per row ({c.grader[:80]})"
    columnwise = c.metric in METRICS and METRICS[c.metric].per_column is not None
    if c.output in ("multilabel", "multi_output") and not columnwise:
        return f"it scores several targets ({', '.join(c.targets[:4])}{', ...' if len(c.targets) > 4 else ''}) " \
               f"by {c.grader[:80]}, which crew does not grade yet"
    if c.files.train is None and (c.media is None or (c.media.label_from_name or c.media.label_lists
                                                      or c.media.target) is None):
        return "its train rows are folders of files, not tables"
    if c.files.test is None and c.media is None:
        return "its test rows are folders of files, not tables"
    if c.id_column is not None and c.id_column not in c.submission_columns and c.submission is None:
        return f"its submission ({', '.join(c.submission_columns)}) is keyed by no column crew can write"
    if metric_given:
        return None
    if c.metric is None or c.metric not in METRICS:
        return f"its grader computes {c.grader[:120]}, which crew does not grade yet"
    if c.row_filter and not (columnwise and c.row_filter.replace(" ", "").endswith(">=0")):
        # a column-wise metric skips the rows whose answers are all negative (Kaggle's "not scored" -1 rows) itself
        return f"its grader scores only the rows where {c.row_filter}, which crew's grading does not reproduce yet"
    if c.group_by:
        return f"its grader scores each {c.group_by} apart and averages them, which crew does not reproduce yet"
    return None
