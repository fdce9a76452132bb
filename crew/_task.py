"""`Task`: a task.yaml (TASK_FORMAT.md) read into a pydantic model and checked before any agent starts."""

from __future__ import annotations

import difflib
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import polars as pl
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from crew._llmspec import ROLES, llm_spec_problem
from crew._long import LongSubmission, cell_keys, format_problem, melt, pivot, pixel_keys
from crew._media import MediaKind, media_folder
from crew._media import problems as media_problems
from crew._metrics import METRICS, Metric, canonical_labels, get_metric
from crew._tables import TableError, read_table
from crew._units import format_duration, format_size, parse_duration, parse_size
from crew.errors import Problem, TaskError

__all__ = ["Task", "TaskBudget", "TaskData"]

_DURATION_FIX = "write a positive duration like 90s, 10m or 1h"
_SIZE_FIX = "write a positive size like 512MiB or 4GiB"


def _custom(parse: Any, fix: str) -> Any:
    def validate(value: object) -> object:
        try:
            return parse(value)
        except ValueError as exc:
            raise PydanticCustomError("crew", "{message}", {"message": str(exc), "fix": fix}) from None

    return BeforeValidator(validate)


Seconds = Annotated[float, _custom(parse_duration, _DURATION_FIX)]
Bytes = Annotated[int, _custom(parse_size, _SIZE_FIX)]


class TaskBudget(BaseModel):
    """What one run may spend; every field has the default TASK_FORMAT.md gives."""

    model_config = ConfigDict(extra="forbid")

    wall_time: Seconds = 600.0
    experiment_time: Seconds = 120.0
    memory: Bytes = 4 * 1024**3
    gpus: int = Field(default=0, ge=0)
    max_experiments: int = Field(default=50, ge=1)
    disk: Bytes = Field(default=20 * 1024**3, description="what the run's experiment folders may hold on disk in all")
    llm_spend: float | None = Field(default=None, ge=0, description="US dollars the chat models may cost in one run; "
                                    "then the expert policy decides")


class TaskData(BaseModel):
    """Where the tables are, relative to the folder of task.yaml."""

    model_config = ConfigDict(extra="forbid")

    train: str
    test: str
    sample_submission: str | None = None


class Task(BaseModel):
    """A task, validated: build it with `Task.load(path)` so that its data is checked too.

    Paths stay as written in task.yaml; `task.path(...)` resolves them against
    the task's folder. Facts read from the data (target type, classes) are
    filled in by `load` and exposed as `target_type` and `classes`.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9-]+$")
    kind: Literal["tabular", "kernel", "seq2seq"] = "tabular"
    description: str = ""
    data: TaskData | None = None
    target: str | None = None
    targets: list[str] | None = Field(default=None, description="several target columns, predicted side by side "
                                      "and scored by a column-wise metric (`target: [a, b]` reads the same)")
    id_column: str | None = None
    source: str | None = Field(default=None, description="kind: seq2seq: the column of train and test each row's "
                               "output is made from (a token)")
    group: str | None = Field(default=None, description="kind: seq2seq: rows sharing it form one sequence (a "
                              "sentence) in file order: a token's neighbours are its context, and validation holds "
                              "out whole groups")
    media: dict[str, MediaKind] | None = Field(default=None, description="columns of train and test whose cells are "
                                               "paths of the file each row is made from, `image` or `audio` (relative "
                                               "to the task's folder, inside a folder of it: `images/1.png`)")
    metric: str | None = None
    submission: LongSubmission | None = Field(default=None, description="several targets submitted one row per "
                                              "(test row, target) cell: `{key: Id, value: Probability, format: "
                                              "'{id}_{target}'}` (crew._long)")
    budget: TaskBudget = Field(default_factory=TaskBudget)
    output: str | None = None
    starting_solution: str | None = None
    score: str | None = None
    llm: str | dict[str, str] | None = Field(default=None, description="who thinks for the roles: `offline`, a chat "
                                             "model (`openai:gpt-4o`), or a mapping role -> either, `default` for the rest")

    _root: Path = PrivateAttr(default_factory=Path)
    _target_type: Literal["binary", "multiclass", "regression", "multilabel", "multioutput", "text", "image"] | None = PrivateAttr(
        default=None)
    _classes: list[str] = PrivateAttr(default_factory=list)
    _warnings: list[str] = PrivateAttr(default_factory=list)
    _shapes: dict[str, tuple[int, int]] = PrivateAttr(default_factory=dict)
    _media_folders: set[str] = PrivateAttr(default_factory=set)

    @model_validator(mode="before")
    @classmethod
    def _target_list(cls, raw: Any) -> Any:
        """`target: [a, b]` is `targets: [a, b]`; one name in a list is that one target."""
        if isinstance(raw, dict) and isinstance(raw.get("target"), list):
            raw = dict(raw)
            names = raw.pop("target")
            if len(names) == 1:
                raw["target"] = names[0]
            else:
                raw["targets"] = names
        return raw

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        if value is not None and value not in METRICS:
            close = difflib.get_close_matches(value, list(METRICS), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise PydanticCustomError(
                "crew", "{message}",
                {"message": f"unknown metric {value!r}", "fix": f"{hint}use one of {', '.join(METRICS)}"},
            )
        return value

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Task:
        """Read and check a task.yaml (or a folder holding one); raise TaskError listing every problem."""
        path = Path(path)
        if path.is_dir():
            path = path / "task.yaml"
        file = str(path)
        if not path.is_file():
            raise TaskError([Problem(file, "", "file does not exist", "pass the path of a task.yaml or of a folder holding one")])
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise TaskError([Problem(file, "", "is not UTF-8 text", "save task.yaml as UTF-8")]) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
            reason = getattr(exc, "problem", None) or "invalid syntax"
            raise TaskError([Problem(file, f"({where})", f"is not valid YAML: {reason}",
                                     "fix the YAML syntax there (indentation, quotes, colons)")]) from None
        return cls.from_dict(raw, root=path.parent, file=file)

    @classmethod
    def from_dict(cls, raw: object, *, root: str | Path = ".", file: str = "task.yaml") -> Task:
        """Build and check a task from already-parsed YAML; `root` is the folder paths are relative to."""
        if not isinstance(raw, dict):
            raise TaskError([Problem(file, "", "does not hold a mapping of fields",
                                     "start from the example in TASK_FORMAT.md: `name: ...`, `kind: tabular`, ...")])
        try:
            task = cls.model_validate(raw)
        except ValidationError as exc:
            raise TaskError([_problem_from_pydantic(file, err) for err in exc.errors()]) from None
        task._root = Path(root)
        problems = task._check(file)
        if problems:
            raise TaskError(problems)
        return task

    # -- facts -----------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The folder of task.yaml; relative paths in the task resolve against it."""
        return self._root

    def path(self, relative: str) -> Path:
        return self._root / relative

    @property
    def hidden(self) -> list[Path]:
        """What no experiment may read: the task folder's `grading/`, where answers and leaderboards live
        (TASK_FORMAT.md). The sandbox makes these unreadable, the critic refuses code that names them."""
        return [self._root / "grading"]

    @property
    def data_files(self) -> list[str] | None:
        """The files of the task folder an experiment reads (train, test, sample submission), relative to it;
        None for a task without tables (a kernel task, whose whole folder is its input)."""
        if self.data is None:
            return None
        tables = [f for f in (self.data.train, self.data.test, self.data.sample_submission) if f]
        return tables + sorted(self._media_folders)

    @property
    def output_name(self) -> str:
        return self.output or ("solution.py" if self.kind == "kernel" else "submission.csv")

    @property
    def metric_info(self) -> Metric:
        if self.metric is None:
            raise ValueError(f"task {self.name!r} has no metric")
        return get_metric(self.metric)

    @property
    def target_type(self) -> Literal["binary", "multiclass", "regression", "multilabel", "multioutput", "text", "image"] | None:
        """binary, multiclass or regression for one target; multilabel (0/1 columns) or multioutput (numbers)
        for several."""
        return self._target_type

    @property
    def image_target(self) -> str | None:
        """The target when it is an image (a `media` column of kind image: denoising's clean page), else None: the
        task predicts each pixel of each test row's input image, submitted one row per pixel."""
        return self.target if self.target is not None and (self.media or {}).get(self.target) == "image" else None

    @property
    def image_source(self) -> str | None:
        """An image target's input: the other image column of `media` (the dirty page), else None."""
        if self.image_target is None:
            return None
        return next((c for c, k in (self.media or {}).items() if k == "image" and c != self.target), None)

    def pixel_keys(self, rows: pl.DataFrame) -> pl.Series:
        """The submission keys of every pixel of `rows`' input images (an image target's task; rows of train or
        test), image after image, each row by row: the sizes are read from the files' headers."""
        from PIL import Image

        assert self.submission is not None and self.id_column and self.image_source
        parts = []
        for image_id, rel in zip(rows[self.id_column].to_list(), rows[self.image_source].cast(pl.Utf8).to_list(),
                                 strict=True):
            with Image.open(self.path(rel)) as image:
                width, height = image.size
            parts.append(pixel_keys(self.submission, image_id, height, width))
        return pl.concat(parts) if parts else pl.Series(self.submission.key, [], dtype=pl.Utf8)

    @property
    def target_columns(self) -> list[str]:
        """Every column to predict: `targets`, or the one `target`."""
        return list(self.targets) if self.targets else ([self.target] if self.target else [])

    def column_task(self, target: str) -> dict[str, Any]:
        """The task.yaml mapping of one column of a several-target task: that target, scored by the column-wise
        metric's per-column metric, data paths and budget as this task's (the caller points `data` at its copy)."""
        assert self.targets and target in self.targets
        spec = self.model_dump(mode="json", exclude_none=True, exclude={"targets", "submission"})
        spec.update(name=f"{self.name}-{re.sub(r'[^a-z0-9]+', '-', target.lower()).strip('-') or 'target'}"[:80],
                    target=target, metric=self.metric_info.per_column)
        spec["budget"] = {k: v for k, v in spec["budget"].items() if v is not None}
        return spec

    @property
    def classes(self) -> list[str]:
        """Canonical class labels (strings, sorted) for classification; empty for regression."""
        return list(self._classes)

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """(rows, columns) of each table `load` read: train, test, sample_submission."""
        return dict(self._shapes)

    @property
    def warnings(self) -> list[str]:
        """Things worth knowing that do not stop the task (e.g. rows without a target)."""
        return list(self._warnings)

    @property
    def _per_class_columns(self) -> bool:
        """Multi-class probability metrics take one column per class (TASK_FORMAT.md)."""
        return self.metric_info.submission == "proba" and self._target_type == "multiclass"

    def submission_columns(self) -> list[str]:
        """The columns a valid submission has, in order (TASK_FORMAT.md's submission rules)."""
        if self.image_target is not None and self.submission is not None:  # one row per pixel, already long
            return [self.submission.key, self.submission.value]
        cols = [self.id_column] if self.id_column else []
        if self.targets:
            return cols + list(self.targets)
        if self._per_class_columns:
            return cols + self.classes
        return cols + [self.target or ""]

    def as_submitted(self, predictions: pl.DataFrame) -> pl.DataFrame:
        """`predictions` (the id column, then `submission_columns()`'s) as the submission file holds them: melted
        into one row per cell for a task with a long `submission`, else unchanged."""
        if self.submission is None or self.image_target is not None:  # an image target's rows are pixels already
            return predictions
        assert self.id_column and self.targets
        return melt(self.submission, predictions, self.id_column, self.targets)

    def read_submitted(self, submitted: pl.DataFrame, ids: list[object]) -> tuple[str | None, pl.DataFrame]:
        """A submission file's table back as predictions for the rows `ids` (the inverse of `as_submitted`), or why
        it is not a complete submission; a task without a long `submission` gets `submitted` back as it is."""
        if self.submission is None or self.image_target is not None:
            return None, submitted
        assert self.id_column and self.targets
        return pivot(self.submission, submitted, ids, self.id_column, self.targets)

    def submission_file_columns(self) -> list[str]:
        """The columns of the submission file: `submission_columns()`, or the long layout's key and value."""
        return [self.submission.key, self.submission.value] if self.submission else self.submission_columns()

    def summary(self) -> dict[str, object]:
        """What `crew validate` prints: enough to see the task was read as intended."""
        out: dict[str, object] = {"name": self.name, "kind": self.kind}
        if self.kind != "kernel":
            assert self.data is not None
            train, test = self._shapes.get("train", (0, 0)), self._shapes.get("test", (0, 0))
            out.update({
                "train": f"{self.data.train} ({train[0]:,} rows x {train[1]} columns)",
                "test": f"{self.data.test} ({test[0]:,} rows x {test[1]} columns)",
                "target": (f"{', '.join(self.targets)} ({self._target_type}, {len(self.targets)} columns)" if self.targets
                           else f"{self.target} ({self._target_type}"
                           + (f", {len(self._classes)} classes: {', '.join(self._classes[:10])}" if self._classes else "")
                           + ")"),
                "id_column": self.id_column or "-",
                "metric": f"{self.metric} ({'higher' if self.metric_info.higher_is_better else 'lower'} is better)",
            })
            if self.kind == "seq2seq":
                out.update({"source": self.source, "group": self.group or "- (the whole table is one sequence)"})
            if self.submission:
                cell = "test pixel" if self.image_target else "test row and target"
                out["submission"] = (f"one row per {cell}: {self.submission.key} ({self.submission.format}), "
                                     f"{self.submission.value}")
            if self.media:
                out["media"] = ", ".join(f"{c} ({k} files in {', '.join(sorted(self._media_folders)) or '-'})"
                                         for c, k in self.media.items())
        else:
            out.update({"starting_solution": self.starting_solution, "score": self.score})
        b = self.budget
        out["budget"] = (f"wall_time {format_duration(b.wall_time)}, experiment_time {format_duration(b.experiment_time)}, "
                         f"memory {format_size(b.memory)}, gpus {b.gpus}, max_experiments {b.max_experiments}")
        out["output"] = self.output_name
        return out

    # -- checks ----------------------------------------------------------------------------

    def _check(self, file: str) -> list[Problem]:
        problems: list[Problem] = []
        if self.output is not None and (PurePosixPath(self.output).is_absolute() or ".." in PurePosixPath(self.output).parts):
            problems.append(Problem(file, "output", f"{self.output!r} points outside the run folder",
                                    "give a plain file name such as submission.csv"))
        problems += self._check_llm(file)
        if self.media and self.kind != "tabular":
            problems.append(Problem(file, "media", f"is only used by kind: tabular, not {self.kind}",
                                    "remove `media` or set `kind: tabular`"))
        if self.kind == "kernel":
            return problems + self._check_kernel(file) + self._check_seq2seq_fields(file)
        return problems + self._check_tabular(file)

    def _check_llm(self, file: str) -> list[Problem]:
        items = self.llm.items() if isinstance(self.llm, dict) else ([("default", self.llm)] if self.llm else [])
        problems = []
        for role, spec in items:
            field = "llm" if not isinstance(self.llm, dict) else f"llm.{role}"
            if role not in (*ROLES, "default"):
                problems.append(Problem(file, field, f"{role!r} is not a role of the team",
                                        f"name one of {', '.join(ROLES)}, or `default` for the others"))
            elif (problem := llm_spec_problem(spec)) is not None:
                problems.append(Problem(file, field, problem, "e.g. `llm: openai:gpt-4o` or `llm: {modeler: "
                                                              "ollama:llama3.1, default: offline}`"))
        return problems

    def _check_kernel(self, file: str) -> list[Problem]:
        problems = []
        for field in ("starting_solution", "score"):
            value = getattr(self, field)
            if value is None:
                problems.append(Problem(file, field, "is required for kind: kernel",
                                        f"add `{field}: {'solution.py' if field == 'starting_solution' else 'score.py'}`"))
            elif not self.path(value).is_file():
                problems.append(Problem(str(self.path(value)), field, "file does not exist",
                                        "check the path (relative to task.yaml's folder)"))
        return problems

    def _check_tabular(self, file: str) -> list[Problem]:
        problems = []
        required = {"data": "add a `data:` mapping with `train:` and `test:` paths",
                    "target": "add `target: <column of train to predict>`",
                    "metric": f"add `metric: <one of {', '.join(METRICS)}>`"}
        for field, fix in required.items():
            if getattr(self, field) is None and not (field == "target" and self.targets):
                problems.append(Problem(file, field, f"is required for kind: {self.kind}", fix))
        if self.target is not None and self.targets:
            problems.append(Problem(file, "targets", "is given beside `target`", "name every column in `targets` "
                                                                                "and remove `target`"))
        if self.metric is not None and not problems:
            columnwise = [m for m, info in METRICS.items() if info.per_column]
            if self.targets and not self.metric_info.per_column:
                problems.append(Problem(file, "metric", f"{self.metric} scores one target, but the task has "
                                                        f"{len(self.targets)}", f"use a column-wise metric: "
                                                                                 f"{', '.join(columnwise)}"))
            elif not self.targets and self.metric_info.per_column:
                problems.append(Problem(file, "metric", f"{self.metric} scores several target columns, but the "
                                                        "task has one",
                                        f"list the columns as `targets: [a, b]`, or use {self.metric_info.per_column}"))
        for field in ("starting_solution", "score"):
            if getattr(self, field) is not None:
                problems.append(Problem(file, field, "is only used by kind: kernel", f"remove `{field}` or set `kind: kernel`"))
        problems += self._check_seq2seq_fields(file)
        image_out = self.image_target is not None
        if image_out and (self.metric_info.submission != "value" or self.metric_info.per_column):
            problems.append(Problem(file, "metric", f"{self.metric} does not score an image's pixels",
                                    "use rmse or mae (each pixel's intensity, from 0 to 1)"))
        if image_out and not any(k == "image" and c != self.target for c, k in (self.media or {}).items()):
            problems.append(Problem(file, "media", f"the target {self.target!r} is an image, but no other column is",
                                    "name the column of input images too: `media: {image: image, "
                                    f"{self.target}: image}}`"))
        if image_out and (self.submission is None or not self.id_column):
            problems.append(Problem(file, "submission", f"the target {self.target!r} is an image: its submission "
                                                        "holds one row per pixel, keyed by the image's id",
                                    "add `id_column` and `submission: {key: id, value: value, format: "
                                    "'{id}_{row}_{col}'}`"))
        elif self.submission is not None:
            if not image_out and (not self.targets or not self.id_column):
                problems.append(Problem(file, "submission", "a long submission needs several `targets` (or an image "
                                                            "target) and an `id_column`",
                                        "remove `submission`, or add them"))
            elif (why := format_problem(self.submission, image=image_out)) is not None:
                problems.append(Problem(file, "submission.format", why, "e.g. `format: '{id}_{row}_{col}'`" if
                                        image_out else "e.g. `format: '{id}_{target}'`"))
        if problems or self.data is None:
            return problems

        tables: dict[str, pl.DataFrame] = {}
        for role in ("train", "test", "sample_submission"):
            rel = getattr(self.data, role)
            if rel is None:
                continue
            try:
                tables[role] = read_table(self.path(rel))
            except TableError as exc:
                problems.append(exc.problem(str(self.path(rel)), f"data.{role}"))
                continue
            self._shapes[role] = tables[role].shape
            if tables[role].height == 0:
                problems.append(Problem(str(self.path(rel)), f"data.{role}", "has no data rows", "add rows below the header"))
        train, test = tables.get("train"), tables.get("test")
        train_file, test_file = str(self.path(self.data.train)), str(self.path(self.data.test))
        for target in self.target_columns:
            if train is not None and target not in train.columns:
                close = difflib.get_close_matches(target, train.columns, n=1)
                problems.append(Problem(file, "targets" if self.targets else "target",
                                        f"column {target!r} is not in {train_file}",
                                        f"did you mean {close[0]!r}?" if close else f"use one of {train.columns[:12]}"))
            if test is not None and target in test.columns:
                problems.append(Problem(test_file, "data.test", f"holds the target column {target!r}",
                                        "drop the target from the test file; answers belong in grading/, never beside "
                                        "the task"))
        if self.id_column is not None:
            for _role, frame, rel_file in (("train", train, train_file), ("test", test, test_file)):
                if frame is None:
                    continue
                if self.id_column not in frame.columns:
                    problems.append(Problem(rel_file, "id_column", f"column {self.id_column!r} is not in this file",
                                            "add the id column or remove `id_column`"))
                    continue
                ids = frame[self.id_column]
                dupes = ids.filter(ids.is_duplicated()).unique().sort().head(3).to_list()
                if ids.null_count() or dupes:
                    what = f"{ids.null_count()} missing ids" if ids.null_count() else f"duplicated ids (e.g. {dupes})"
                    problems.append(Problem(rel_file, "id_column", f"{self.id_column!r} has {what}",
                                            "give every row a unique id, or remove `id_column`"))
        if train is not None and train.height:
            if self.targets:
                per_column = get_metric(str(self.metric_info.per_column))
                for target in self.targets:
                    if target in train.columns and train[target].drop_nulls().n_unique() < 2:
                        self._warnings.append(f"{target!r} has one value in train; it is predicted as that value")
                    elif target in train.columns:
                        problems += self._check_target(file, train[target], per_column, target)
                self._classes = []
                self._target_type = "multioutput" if per_column.task == "regression" else "multilabel"
            elif self.kind == "seq2seq":
                problems += self._check_seq2seq_columns(file, train, test)
            elif self.image_target is not None:
                self._target_type = "image"  # its files are checked with the other media (_check_media)
            elif self.target in train.columns:
                problems += self._check_target(file, train[self.target], self.metric_info, str(self.target))
        if problems:
            return problems
        assert train is not None and test is not None
        features = [c for c in train.columns if c not in (*self.target_columns, self.id_column)]
        missing = [c for c in features if c not in test.columns]
        if missing:
            self._warnings.append(f"columns in train but not in test (experiments cannot use them): {missing[:10]}")
        if self.submission is not None and self.id_column and self.targets:
            keys = cell_keys(self.submission, test[self.id_column].to_list(), list(self.targets or []))
            if keys.is_duplicated().any():
                dupes = keys.filter(keys.is_duplicated()).unique().head(3).to_list()
                return problems + [Problem(file, "submission.format", f"{self.submission.format!r} gives several "
                                           f"cells the same key (e.g. {dupes})", "put {id} and {target} in it")]
        if "sample_submission" in tables:
            problems += self._check_sample(tables["sample_submission"], test)
        return problems + self._check_media(file, train, test)

    def _check_media(self, file: str, train: pl.DataFrame, test: pl.DataFrame) -> list[Problem]:
        """Every media cell names a file inside a folder of the task folder that decodes as its kind; the first few
        that do not are named (crew._media)."""
        problems: list[Problem] = []
        for column, kind in (self.media or {}).items():
            if column == self.id_column or (column in self.target_columns and kind != "image"):
                problems.append(Problem(file, f"media.{column}", "is the target or the id column",
                                        "name the column of file paths"))
                continue
            assert self.data is not None
            sides = [(train, self.data.train)] + ([] if column == self.target else [(test, self.data.test)])
            for frame, rel in sides:  # an image target is in train only
                if column not in frame.columns:
                    problems.append(Problem(file, f"media.{column}", f"column {column!r} is not in {self.path(rel)}",
                                            f"use one of {frame.columns[:12]}"))
                    continue
                cells = frame[column].cast(pl.Utf8).to_list()
                failed, shown = media_problems(self._root, cells, kind)
                if failed:
                    problems.append(Problem(str(self.path(rel)), f"media.{column}",
                                            f"{failed} of {len(cells)} {kind} files cannot be read: {', '.join(shown)}",
                                            "fix or remove those rows; paths are relative to the task folder"))
                else:
                    self._media_folders.update(media_folder(c) for c in cells)
        return problems

    def _check_seq2seq_fields(self, file: str) -> list[Problem]:
        """`source` and `group` belong to kind: seq2seq, whose output is text scored by exact match."""
        if self.kind != "seq2seq":
            return [Problem(file, field, "is only used by kind: seq2seq", f"remove `{field}` or set `kind: seq2seq`")
                    for field in ("source", "group") if getattr(self, field) is not None]
        problems = []
        if self.source is None:
            problems.append(Problem(file, "source", "is required for kind: seq2seq",
                                    "add `source: <the column each output is made from>`"))
        if self.id_column is None:  # each token's output is submitted beside its id
            problems.append(Problem(file, "id_column", "is required for kind: seq2seq",
                                    "add `id_column: <the column naming each token in test>`"))
        if self.targets:
            problems.append(Problem(file, "targets", "kind: seq2seq predicts one column", "name it in `target`"))
        if self.metric is not None and self.metric != "accuracy":
            problems.append(Problem(file, "metric", f"kind: seq2seq is scored by exact match, not {self.metric}",
                                    "use `metric: accuracy`"))
        return problems

    def _check_seq2seq_columns(self, file: str, train: pl.DataFrame, test: pl.DataFrame | None) -> list[Problem]:
        problems = []
        for field in ("source", "group"):
            column = getattr(self, field)
            for frame, rel in ((train, self.data.train), (test, self.data.test)):  # type: ignore[union-attr]
                if column is not None and frame is not None and column not in frame.columns:
                    problems.append(Problem(file, field, f"column {column!r} is not in {self.path(rel)}",
                                            f"use one of {frame.columns[:12]}"))
        self._target_type = "text"
        return problems

    def _check_target(self, file: str, y: pl.Series, metric: Metric, target: str) -> list[Problem]:
        """Whether `metric` can score the column `target` (its classes and type are then the task's)."""
        if y.null_count():
            self._warnings.append(f"{y.null_count()} train rows have no {target!r}; experiments drop them")
        y = y.drop_nulls()
        if y.len() == 0:
            return [Problem(file, "target", f"column {target!r} has no values in train", "fill in the target")]
        sample = y.cast(pl.Utf8).head(1).to_list()[0]
        numeric = y.dtype.is_numeric()
        if metric.task == "regression":
            if not numeric:
                return [Problem(file, "metric", f"{metric.name} needs a numeric target, but {target!r} holds text (e.g. {sample!r})",
                                "use a classification metric (accuracy, f1_macro, log_loss, roc_auc) or a numeric target")]
            if metric.nonnegative and y.min() < 0:  # type: ignore[operator]
                return [Problem(file, "metric", f"{metric.name} needs a target >= 0, but {target!r} goes down to "
                                                f"{y.min()!r}",
                                "use rmse or mae for targets that can be negative")]
            self._target_type = "regression"
            return []
        if y.dtype.is_float() and not (y == y.round(0)).all():
            return [Problem(file, "metric", f"{metric.name} is a classification metric, but {target!r} holds "
                                            f"continuous numbers (e.g. {sample})",
                            "use a regression metric (rmse, mae, rmsle, r2)")]
        classes = sorted(set(canonical_labels(y.unique().to_list())))
        if len(classes) < 2:
            return [Problem(file, "target", f"{target!r} has a single class ({classes[0]!r}) in train",
                            "a classification target needs two or more classes")]
        if numeric and len(classes) > 50 and len(classes) > 0.5 * y.len():
            return [Problem(file, "metric", f"{metric.name} is a classification metric, but {target!r} has "
                                            f"{len(classes)} distinct numbers in {y.len()} rows",
                            "use a regression metric (rmse, mae, rmsle, r2)")]
        if metric.ordinal and not numeric:
            return [Problem(file, "metric", f"{metric.name} weighs a miss by how far apart two ratings are, but "
                                            f"{target!r} holds text (e.g. {sample!r})",
                            "encode the ratings as numbers (1, 2, 3, ...) or use accuracy or f1_macro")]
        if metric.binary_only and len(classes) != 2:
            return [Problem(file, "metric", f"{metric.name} needs a binary target, but {target!r} has {len(classes)} classes",
                            "use f1_macro for more than two classes")]
        self._classes = classes
        self._target_type = "binary" if len(classes) == 2 else "multiclass"
        return []

    def _check_pixel_sample(self, file: str, sample: pl.DataFrame, test: pl.DataFrame) -> list[Problem]:
        """An image target's sample submission: the key and value columns, a row per pixel of the test images (their
        sizes read from the files' headers), and the first image's keys as the format writes them."""
        from PIL import Image

        assert self.submission is not None and self.id_column and self.media
        expected = [self.submission.key, self.submission.value]
        if sorted(sample.columns) != sorted(expected):
            return [Problem(file, "data.sample_submission", f"has columns {sample.columns}, expected {expected}",
                            f"give it the columns {expected}")]
        sizes = []
        for rel in test[str(self.image_source)].cast(pl.Utf8).to_list():
            try:
                with Image.open(self.path(rel)) as image:
                    sizes.append(image.size)
            except OSError:
                return []  # _check_media names the file that does not decode
        pixels = sum(w * h for w, h in sizes)
        if sample.height != pixels:
            return [Problem(file, "data.sample_submission", f"has {sample.height} rows but the test images have "
                                                            f"{pixels} pixels", "write one row per test pixel")]
        width, height = sizes[0]
        first = pixel_keys(self.submission, test[self.id_column][0], height, width).cast(pl.Utf8)
        if not first.is_in(sample[self.submission.key].cast(pl.Utf8).implode()).all():
            return [Problem(file, "data.sample_submission", f"lacks the keys of test image {test[self.id_column][0]!r} "
                                                            f"(e.g. {first[0]!r})",
                            f"key each pixel as `{self.submission.format}`")]
        return []

    def _check_sample(self, sample: pl.DataFrame, test: pl.DataFrame) -> list[Problem]:
        assert self.data is not None and self.data.sample_submission is not None
        file = str(self.path(self.data.sample_submission))
        if self.image_target is not None and self.submission is not None:
            return self._check_pixel_sample(file, sample, test)
        if self.submission is not None and self.id_column:
            why, _ = self.read_submitted(sample, test[self.id_column].to_list())
            return [] if why is None else [Problem(file, "data.sample_submission", why, "write the test rows' "
                                                   "cells in the layout `submission` names")]
        expected = self.submission_columns()
        if sorted(sample.columns) != sorted(expected):
            fix = f"give it the columns {expected}"
            if self._per_class_columns:
                fix = f"multi-class {self.metric} needs one probability column per class: {expected}"
            return [Problem(file, "data.sample_submission", f"has columns {sample.columns}, expected {expected}", fix)]
        if sample.height != test.height:
            return [Problem(file, "data.sample_submission", f"has {sample.height} rows but test has {test.height}",
                            "write one row per test row")]
        if self.id_column and set(sample[self.id_column].cast(pl.Utf8).to_list()) != set(test[self.id_column].cast(pl.Utf8).to_list()):
            return [Problem(file, "data.sample_submission", "its ids differ from the test file's ids", "use the test ids")]
        return []


_FIELD_FIXES = {
    "name": "use lowercase letters, digits and dashes, e.g. `name: penguins-species`",
    "kind": "use `kind: tabular`, `kind: seq2seq` or `kind: kernel`",
    "data.train": "add `train: data/train.csv` under `data:`",
    "data.test": "add `test: data/test.csv` under `data:`",
    "budget.gpus": "use a whole number of GPUs, 0 or more",
    "budget.max_experiments": "use a whole number, 1 or more",
}


def _problem_from_pydantic(file: str, err: Any) -> Problem:
    field = ".".join(str(part) for part in err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "crew":
        return Problem(file, field, ctx["message"], ctx["fix"])
    if kind == "extra_forbidden":
        allowed = _allowed_fields(err["loc"][:-1])
        close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
        fix = f"did you mean `{close[0]}`?" if close else "remove it;"
        return Problem(file, field, "is not a known field", f"{fix} known fields here: {', '.join(allowed)}")
    if kind == "missing":
        return Problem(file, field, "is required", _FIELD_FIXES.get(field, f"add `{field}`"))
    message = err["msg"][0].lower() + err["msg"][1:]
    if "input" in err and not isinstance(err["input"], (dict, list)):
        message = f"{err['input']!r}: {message}"
    return Problem(file, field, message, _FIELD_FIXES.get(field, "see TASK_FORMAT.md for this field"))


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Task
    for part in loc:
        annotation = model.model_fields[str(part)].annotation
        model = next(a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type) and issubclass(a, BaseModel))
    return list(model.model_fields)
