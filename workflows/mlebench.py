"""`import_mlebench`: a prepared MLE-bench competition turned into a crew task folder, or refused with the reason.

MLE-bench prepares each Kaggle competition as `public/` (what the agent
sees: `description.md`, train and test tables, a sample submission) and
`private/` (the test answers), and ranks a score against the competition's
`leaderboard.csv`. crew reads the same three things: the sample submission
gives the id column (its first) and the target (the rest: one column, or
one probability column per class), the description names the metric, and
`--private`/`--leaderboard` supply what `crew grade` and `crew bench` need.
Competitions crew cannot solve as a table (images, audio, text corpora in
folders, several independent targets, a metric crew does not grade) are
refused with what was found, never converted into a task that means
something else.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from crew import METRICS, CrewError, Task

__all__ = ["detect_metric", "import_mlebench"]

# Phrases Kaggle descriptions use, most specific first: "root mean squared logarithmic error" must win over
# "root mean squared error", "macro F1" over "F1", "balanced accuracy" over "accuracy".
_PHRASES: list[tuple[str, str]] = [
    ("rmsle", r"root[- ]mean[- ]squared?[- ]log(arithmic)?[- ]error|\brmsle\b"),
    ("rmse", r"root[- ]mean[- ]squared?[- ]error|\brmse\b"),
    ("mae", r"mean[- ]absolute[- ]error|\bmae\b"),
    ("log_loss", r"log(arithmic)?[- ]?loss|cross[- ]entropy"),
    ("roc_auc", r"area under the (roc|receiver operating characteristic) curve|\broc[- ]auc\b|\bauc\b"),
    ("f1_macro", r"macro[- ](averaged )?f1|f1[- ]macro|mean f1"),
    ("f1", r"\bf1[- ]score\b|\bf1\b"),
    ("balanced_accuracy", r"balanced accuracy"),
    ("accuracy", r"classification accuracy|\baccuracy\b|percentage of .{0,40}correctly"),
    ("r2", r"coefficient of determination|\br\^?2\b|r-squared"),
]
# Metrics Kaggle uses that crew does not grade: named in the refusal so the user knows why.
_FOREIGN = {
    "quadratic weighted kappa": r"quadratic(ally)? weighted kappa|\bqwk\b",
    "mean average precision (MAP@k)": r"mean average precision|\bmap@\d+",
    "Dice coefficient": r"\bdice\b",
    "intersection over union": r"intersection over union|\biou\b",
    "Spearman correlation": r"spearman",
    "Pearson correlation": r"pearson",
    "mean column-wise AUC": r"mean column-wise",
    "word error rate": r"word error rate",
    "BLEU": r"\bbleu\b",
    "SMAPE": r"\bsmape\b|symmetric mean absolute percentage",
    "Gini": r"normali[sz]ed gini|\bgini\b",
}
_MEDIA = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".dcm", ".wav", ".mp3", ".flac", ".aif", ".aiff",
          ".mp4", ".avi", ".npy", ".npz", ".h5", ".hdf5", ".nii", ".svs", ".tfrec", ".tfrecord", ".zip", ".7z"}
_TABLES = (".csv", ".parquet")


def _evaluation_text(description: str) -> str:
    """The description's Evaluation section when it has one (so a metric named elsewhere is not picked up)."""
    match = re.search(r"^#+\s*evaluation\b.*?$(.*?)(?=^#+\s|\Z)", description, re.IGNORECASE | re.MULTILINE | re.DOTALL)
    return match.group(1) if match and match.group(1).strip() else description


def detect_metric(description: str) -> str:
    """crew's name for the metric the description names; CrewError when it names none, several, or a foreign one."""
    text = _evaluation_text(description).lower()
    found: list[str] = []
    for name, pattern in _PHRASES:
        if re.search(pattern, text):
            found.append(name)
            text = re.sub(pattern, " ", text)  # "root mean squared logarithmic error" must not also read as rmse
    if len(found) == 1:
        return found[0]
    choices = ", ".join(METRICS)
    if found:
        raise CrewError(f"description.md names several metrics ({', '.join(found)}); fix: pass --metric with the one "
                        f"the competition is scored by ({choices})")
    foreign = [name for name, pattern in _FOREIGN.items() if re.search(pattern, text)]
    if foreign:
        raise CrewError(f"description.md: the competition is scored by {foreign[0]}, which crew does not grade; fix: "
                        f"pass --metric with one of {choices} if one of them suits, knowing scores will not match "
                        "the leaderboard's")
    raise CrewError(f"description.md: no metric recognised in its Evaluation section; fix: pass --metric ({choices})")


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in _TABLES:
        for candidate in sorted(folder.iterdir()):
            if candidate.is_file() and candidate.name.lower() == f"{stem}{suffix}":
                return candidate
    return None


def _refuse_non_tabular(public: Path) -> None:
    media: dict[str, int] = {}
    folders = []
    for path in public.rglob("*"):
        if path.is_dir():
            folders.append(path.relative_to(public))
        elif path.suffix.lower() in _MEDIA:
            media[path.suffix.lower()] = media.get(path.suffix.lower(), 0) + 1
    if media:
        what = ", ".join(f"{n} {suffix} files" for suffix, n in sorted(media.items(), key=lambda kv: -kv[1])[:4])
        raise CrewError(f"{public}: holds {what}: not a tabular competition; crew imports competitions whose data "
                        "are train and test tables (csv or parquet); fix: pick a tabular competition")
    if folders:
        raise CrewError(f"{public}: holds folders ({', '.join(str(f) for f in folders[:4])}): not a flat tabular "
                        "competition; fix: pick a competition whose data are train and test tables")


def _read(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema_length=10_000)


def _answers(private: Path, id_column: str, target: str, classes: list[str] | None) -> pl.DataFrame:
    """The private answers as `id, target` (a one-hot table of classes becomes the class label)."""
    source = next((p for p in (_find(private, "answers"), _find(private, "test"), _find(private, "gold_submission"),
                               _find(private, "solution")) if p is not None), None)
    if source is None:
        raise CrewError(f"{private}: --private: no answers table (answers.csv, test.csv, gold_submission.csv or "
                        "solution.csv); fix: pass the competition's prepared private/ folder")
    table = _read(source)
    if id_column not in table.columns:
        raise CrewError(f"{source}: --private: lacks the id column {id_column!r}; fix: pass the private folder of this "
                        "competition")
    if target in table.columns:
        return table.select(id_column, target)
    if classes and all(c in table.columns for c in classes):
        onehot = table.select(classes).to_numpy()
        labels = [classes[i] for i in onehot.argmax(axis=1)]
        return pl.DataFrame({id_column: table[id_column], target: labels})
    raise CrewError(f"{source}: --private: lacks the target {target!r}; fix: pass the private folder of this competition")


def import_mlebench(public_dir: str | Path, *, out: str | Path, metric: str | None = None, name: str | None = None,
                    private_dir: str | Path | None = None, leaderboard: str | Path | None = None,
                    budget: dict[str, Any] | None = None) -> Path:
    """Write `out/task.yaml` (data copied under `out/data/`, answers under `out/grading/` when `private_dir` is
    given, `out/leaderboard.csv` when `leaderboard` is) and return its path, after `Task.load` accepted it."""
    public = Path(public_dir)
    if not public.is_dir():
        raise CrewError(f"{public}: no such folder; fix: pass a prepared competition's public/ folder "
                        "(e.g. ~/.cache/mle-bench/data/<competition>/prepared/public)")
    if metric is not None and metric not in METRICS:
        raise CrewError(f"--metric: unknown metric {metric!r}; fix: use one of {', '.join(METRICS)}")
    _refuse_non_tabular(public)
    train_path, test_path = _find(public, "train"), _find(public, "test")
    sample_path = next((p for p in sorted(public.iterdir()) if p.is_file() and p.suffix.lower() in _TABLES
                        and re.search(r"sample[_-]?submission", p.name, re.IGNORECASE)), None)
    missing = [label for label, p in (("train", train_path), ("test", test_path), ("sample_submission", sample_path))
               if p is None]
    if missing:
        raise CrewError(f"{public}: no {' or '.join(missing)} table (csv or parquet); fix: pass a prepared MLE-bench "
                        "public/ folder with train, test and sample_submission files")
    assert train_path and test_path and sample_path
    description_path = public / "description.md"
    description = description_path.read_text(encoding="utf-8") if description_path.is_file() else ""
    if metric is None:
        if not description:
            raise CrewError(f"{public}: no description.md to read the metric from; fix: pass --metric "
                            f"({', '.join(METRICS)})")
        try:
            metric = detect_metric(description)
        except CrewError as exc:
            raise CrewError(f"{description_path}: {exc.args[0].removeprefix('description.md: ')}") from None

    train, test, sample = _read(train_path), _read(test_path), _read(sample_path)
    id_column, *targets = sample.columns
    if not targets:
        raise CrewError(f"{sample_path}: has only the column {id_column!r}; fix: pass a competition whose sample "
                        "submission holds an id and a target")
    if id_column not in test.columns:
        raise CrewError(f"{sample_path}: its first column {id_column!r} is not in {test_path.name}; fix: pass a "
                        "competition whose sample submission is keyed by a test column")
    classes: list[str] | None = None
    if len(targets) == 1:
        target = targets[0]
        if target not in train.columns:
            raise CrewError(f"{sample_path}: the target {target!r} is not a column of {train_path.name}; fix: pass a "
                            "competition whose train table holds the submitted column")
    else:
        # one probability column per class: the label is the train column whose values are those class names
        labels = [c for c in train.columns if c not in test.columns
                  and {str(v) for v in train[c].drop_nulls().unique().to_list()} == set(targets)]
        if not labels:
            raise CrewError(f"{sample_path}: submits {len(targets)} columns ({', '.join(targets[:5])}...) that are "
                            f"not the classes of one {train_path.name} column: several targets, which crew does not "
                            "solve; fix: pick a competition with one target")
        target, classes = labels[0], targets
        if metric not in ("log_loss",):
            raise CrewError(f"{sample_path}: submits one probability column per class, scored by {metric}; crew "
                            "scores per-class probabilities with log_loss only; fix: pass --metric log_loss if that "
                            "is the competition's metric")

    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    data: dict[str, str] = {}
    for role, source, frame in (("train", train_path, train), ("test", test_path, test),
                                ("sample_submission", sample_path, None)):
        target_path = out / "data" / source.name
        if role == "train" and id_column not in train.columns:
            # crew carries the id through every table; train rows get ids of their own, never a test id
            frame = train.with_row_index(id_column).with_columns(pl.format("train-{}", pl.col(id_column)).alias(id_column))
            frame.write_csv(target_path := target_path.with_suffix(".csv"))
        else:
            shutil.copyfile(source, target_path)
        data[role] = f"data/{target_path.name}"
    # MLE-bench's layout is <competition>/prepared/public: the competition names the task
    default = public.parent.parent.name if public.name == "public" and public.parent.name == "prepared" else public.name
    slug = re.sub(r"[^a-z0-9]+", "-", (name or default).lower()).strip("-") or "competition"
    spec: dict[str, Any] = {"name": slug, "kind": "tabular", "description": description.strip() or f"MLE-bench: {slug}",
                            "data": data, "target": target, "id_column": id_column, "metric": metric}
    if budget:
        spec["budget"] = budget
    (out / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100),
                                   encoding="utf-8")
    if private_dir is not None:
        (out / "grading").mkdir(exist_ok=True)
        _answers(Path(private_dir), id_column, target, classes).write_csv(out / "grading" / "answers.csv")
    if leaderboard is not None:
        board = _read(Path(leaderboard))
        if "score" not in board.columns:
            raise CrewError(f"{leaderboard}: --leaderboard: no `score` column; fix: pass the competition's "
                            "leaderboard.csv (one row per team, a score column)")
        board.select("score").write_csv(out / "leaderboard.csv")
    return Task.load(out / "task.yaml").root / "task.yaml"
