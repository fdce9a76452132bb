"""`import_mlebench`: a prepared MLE-bench competition turned into a crew task folder, or refused with the reason.

MLE-bench prepares each Kaggle competition as `public/` (what the agent
sees: `description.md`, train and test tables, a sample submission) and
`private/` (the test answers), and ranks a score against the competition's
`leaderboard.csv`. A competition of MLE-bench's registry (`competitions.py`)
is read as the registry says: its files, the column a submission is keyed
by, the target (one column, one probability column per class, one-hot
columns, or several targets) and the metric its grader computes. Any other
folder is read from its files: the sample submission gives the id column
(its first) and the target (the rest), the description names the metric.
`--private`/`--leaderboard` supply what `crew grade` and `crew bench` need.
An image or audio competition's files are extracted (or hard-linked) into
the task folder at the paths its registry entry gives, in a media column.
Competitions crew cannot take yet (a file layout it does not read, a grader
crew does not reproduce) are refused with the reason, never converted into a
task that means something else.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
import yaml

from crew import METRICS, CrewError, TableError, Task, read_table
from crew.workflows._run import link_or_copy
from crew.workflows.competitions import Competition, competitions, support

__all__ = ["detect_metric", "import_mlebench", "listing"]

# Metrics named with a qualifier, looked for first: "mean column-wise ROC AUC" must not read as ROC AUC, "weighted F1"
# not as F1. Each maps to crew's name when crew grades it as the competition does, or to a name for the refusal.
_QUALIFIED: list[tuple[str, str | None, str]] = [
    ("quadratic weighted kappa", "qwk", r"quadratic(ally)?[- ]weighted[- ](cohen'?s[- ])?kappa|\bqwk\b"),
    ("mean column-wise ROC AUC", "roc_auc_columns",
     r"column[- ]wise (mean )?(roc[- ])?auc|(mean|average) (of )?(the )?(individual )?(roc[- ])?auc(s)? (of|for|over|across) "
     r"(each|every|all|the) (predicted )?(column|label|class|target)|auc is (calculated|computed) (for|on) each (of the "
     r"\d+ )?(label|column|class|target)s?.{0,30}averaged"),
    ("mean column-wise Spearman correlation", "spearman_columns",
     r"(mean|average)[- ]column[- ]?wise spearman|spearman'?s? (rank )?correlation[^.]{0,80}(mean|averag)[^.]{0,40}"
     r"columns?|(mean|average) of (the )?spearman"),
    ("mean column-wise RMSE (MCRMSE)", "mcrmse", r"\bmcrmse\b|mean column[- ]?wise root mean squared? error"),
    ("mean column-wise RMSLE", "rmsle_columns", r"column[- ]?wise (mean )?(root mean squared? log(arithmic)? error|rmsle)"),
    ("weighted F1", None, r"weighted[- ](averaged? )?f1|f1[- ]weighted"),
    ("micro F1", None, r"micro[- ](averaged? )?f1|f1[- ]micro"),
    ("mean F-score over rows (samples)", None, r"mean f1[- ]score (of|over|across) (each|all|the) (row|sample)"),
    ("weighted log loss", None, r"weighted (multi[- ]?class )?log(arithmic)?[- ]?loss"),
    ("the log of an error", None, r"\blog(arithm)? of (the )?(mean absolute error|mae|mean squared error|mse)"),
]
# Phrases Kaggle descriptions use, most specific first: "root mean squared logarithmic error" must win over
# "root mean squared error", "macro F1" over "F1", "balanced accuracy" over "accuracy".
_PHRASES: list[tuple[str, str]] = [
    ("rmsle", r"root[- ]mean[- ]squared?[- ]log(arithmic)?[- ]error|\brmsle\b"),
    ("rmse", r"root[- ]mean[- ]squared?[- ]error|\brmse\b"),
    ("mae", r"mean[- ]absolute[- ]error|\bmae\b"),
    ("log_loss", r"log(arithmic)?[- ]?loss|cross[- ]entropy"),
    ("roc_auc", r"area under the (roc|receiver operating characteristic) curve|\broc[- ]auc\b|\bauc\b"),
    ("f1_macro", r"macro[- ](averaged? )?f1|f1[- ]macro|mean f1"),
    ("f1", r"\bf1[- ]score\b|\bf1\b|\bf[- ]score\b"),
    ("balanced_accuracy", r"balanced accuracy"),
    ("accuracy", r"classification accuracy|\baccuracy\b|percentage of .{0,40}correctly"),
    ("r2", r"coefficient of determination|\br\^?2\b|r-squared"),
    ("pearson", r"pearson"),
    ("spearman", r"spearman"),
]
_GENERAL = {"f1": "f1_macro", "rmse": "rmsle", "accuracy": "balanced_accuracy"}
"""A general name that a specific one found beside it explains ("the macro F1 score ... F1 is the harmonic ...")."""
# Metrics Kaggle uses that crew does not grade: named in the refusal so the user knows why.
_FOREIGN = {
    "mean average precision (MAP@k)": r"mean average precision|\bmap@\d+",
    "Dice coefficient": r"\bdice\b",
    "intersection over union": r"intersection over union|\biou\b",
    "word error rate": r"word error rate",
    "BLEU": r"\bbleu\b",
    "SMAPE": r"\bsmape\b|symmetric mean absolute percentage",
    "Gini": r"normali[sz]ed gini|\bgini\b",
    "Jaccard score": r"jaccard",
    "Levenshtein distance": r"levenshtein",
}
_MEDIA = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".dcm", ".wav", ".mp3", ".flac", ".aif", ".aiff",
          ".mp4", ".avi", ".npy", ".npz", ".h5", ".hdf5", ".nii", ".svs", ".tfrec", ".tfrecord", ".zip", ".7z"}
_TABLES = (".csv", ".parquet", ".tsv", ".json", ".jsonl")
_HEADING = re.compile(r"^\s*(?:(#{1,6})\s*(.*?)\s*#*\s*|(?:\*\*|__)\s*(.*?)\s*:?\s*(?:\*\*|__)\s*:?\s*)$")


def _evaluation_text(description: str) -> str:
    """The description's Evaluation section when it has one (so a metric named elsewhere is not picked up): from a
    heading (`#` to `######`, or a line in bold) whose title starts with "Evaluation" or "Metric" to the next heading
    of the same or a higher level, its subsections included."""
    lines = description.splitlines()
    for i, line in enumerate(lines):
        match = _HEADING.match(line)
        if not match:
            continue
        title = (match.group(2) if match.group(1) else match.group(3)) or ""
        if not re.match(r"(evaluation|metric)", title.strip().lower()):
            continue
        level = len(match.group(1)) if match.group(1) else 7  # a bold line ranks below every # heading
        body = []
        for following in lines[i + 1:]:
            other = _HEADING.match(following)
            if other and (len(other.group(1)) if other.group(1) else 7) <= level:
                break
            body.append(following)
        if "\n".join(body).strip():
            return "\n".join(body)
    return description


def detect_metric(description: str) -> str:
    """crew's name for the metric the description names; CrewError when it names none, several, or a foreign one
    (qualified names first: a "mean column-wise ROC AUC" is refused, not read as ROC AUC)."""
    text = _evaluation_text(description).lower().replace("**", "").replace("`", "")
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a markdown link reads as its text
    choices = ", ".join(METRICS)
    for label, name, pattern in _QUALIFIED:
        if re.search(pattern, text):
            if name is not None:
                return name
            raise CrewError(f"description.md: the competition is scored by {label}, which crew does not grade; fix: "
                            f"pass --metric with one of {choices} if one of them suits, knowing scores will not match "
                            "the leaderboard's")
    found: list[str] = []
    for name, pattern in _PHRASES:
        if re.search(pattern, text):
            found.append(name)
            text = re.sub(pattern, " ", text)  # "root mean squared logarithmic error" must not also read as rmse
    found = [name for name in found if _GENERAL.get(name) not in found]
    if len(found) == 1:
        return found[0]
    if found:
        raise CrewError(f"description.md names several metrics ({', '.join(found)}); fix: pass --metric with the one "
                        f"the competition is scored by ({choices})")
    foreign = [name for name, pattern in _FOREIGN.items() if re.search(pattern, text)]
    if foreign:
        raise CrewError(f"description.md: the competition is scored by {foreign[0]}, which crew does not grade; fix: "
                        f"pass --metric with one of {choices} if one of them suits, knowing scores will not match "
                        "the leaderboard's")
    raise CrewError(f"description.md: no metric recognised in its Evaluation section; fix: pass --metric ({choices})")


def _find(folder: Path, *stems: str) -> Path | None:
    """The first table named `<stem>.<csv|parquet|tsv|json|jsonl>` in `folder`, trying `stems` in order."""
    for stem in stems:
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
    """A table as crew reads it (every row scanned for types, strict UTF-8): csv and parquet by crew's reader, tsv,
    json (an array of records) and jsonl (a record per line) by polars; any failure is one line naming the file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".zip":  # MLE-bench ships some tables zipped (text-normalization's en_train.csv.zip)
            with zipfile.ZipFile(path) as archive:
                inner = [n for n in archive.namelist() if n.lower().endswith(".csv")]
                if len(inner) != 1:
                    raise CrewError(f"{path}: holds {len(inner)} csv files, expected one; fix: pass the competition's "
                                    "prepared public/ folder")
                return pl.read_csv(io.BytesIO(archive.read(inner[0])), infer_schema_length=None)
        if suffix in (".csv", ".parquet"):
            return read_table(path)
        if suffix == ".tsv":
            return pl.read_csv(path, separator="\t", infer_schema_length=None, quote_char=None)
        if suffix == ".txt":  # the comma-separated .txt tables of older competitions (mlsp's rec_id2filename.txt)
            return pl.read_csv(path, infer_schema_length=None)
        frame = pl.read_ndjson(path, infer_schema_length=None) if suffix == ".jsonl" else pl.read_json(
            path, infer_schema_length=None)
        # a list of words or a nested record becomes text a table can hold (and crew's profile can read)
        return frame.with_columns(
            [pl.col(c).list.eval(pl.element().cast(pl.String)).list.join(" ") for c, t in frame.schema.items()
             if isinstance(t, pl.List)]
            + [pl.col(c).struct.json_encode() for c, t in frame.schema.items() if isinstance(t, pl.Struct)])
    except TableError as exc:
        raise CrewError(f"{path}: {exc.message}; fix: {exc.fix}") from None
    except CrewError:
        raise
    except Exception as exc:  # polars raises many types; each means "cannot parse"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CrewError(f"{path}: could not be read as {suffix[1:]} ({reason[:160]}); fix: check the file's "
                        "format") from None


def _answers(private: Path, id_column: str, target: str | list[str], classes: list[str] | None,
             known: str | None = None, long: dict[str, str] | None = None) -> pl.DataFrame:
    """The private answers as `id, target` (a one-hot table of classes becomes the class label), or as the
    competition writes them when its submission is `long` (one row per cell: key, value, which crew grade reads);
    `known`: the registry's answers file."""
    source = (private / known) if known and (private / known).is_file() else _find(
        private, "answers", "test", "gold_submission", "solution")
    if source is None:
        raise CrewError(f"{private}: --private: no answers table (answers.csv, test.csv, gold_submission.csv or "
                        "solution.csv); fix: pass the competition's prepared private/ folder")
    table = _read(source)
    if long is not None:
        missing = [c for c in (long["key"], long["value"]) if c not in table.columns]
        if missing:
            raise CrewError(f"{source}: --private: lacks the column(s) {missing}; fix: pass the private folder of "
                            "this competition")
        return table.select(long["key"], long["value"])
    if id_column not in table.columns:
        raise CrewError(f"{source}: --private: lacks the id column {id_column!r}; fix: pass the private folder of this "
                        "competition")
    if isinstance(target, list):
        missing = [t for t in target if t not in table.columns]
        if missing:
            raise CrewError(f"{source}: --private: lacks the target column(s) {missing}; fix: pass the private folder "
                            "of this competition")
        return table.select(id_column, *target)
    if target in table.columns:
        return table.select(id_column, target)
    if classes and all(c in table.columns for c in classes):
        onehot = table.select(classes).to_numpy()
        labels = [classes[i] for i in onehot.argmax(axis=1)]
        return pl.DataFrame({id_column: table[id_column], target: labels})
    raise CrewError(f"{source}: --private: lacks the target {target!r}; fix: pass the private folder of this competition")


def _write_task(out: Path, public: Path, train_path: Path, test_path: Path, sample_path: Path, train: pl.DataFrame,
                test: pl.DataFrame, id_column: str, target: str | list[str], classes: list[str] | None, metric: str,
                description: str, name: str | None, private_dir: str | Path | None, leaderboard: str | Path | None,
                budget: dict[str, Any] | None, *, train_changed: bool = False, answers_file: str | None = None,
                sample: pl.DataFrame | None = None, sequence: dict[str, str] | None = None,
                media: dict[str, str] | None = None, submission: dict[str, str] | None = None) -> None:
    """The task folder's files: data (csv and parquet copied, other formats written as parquet), task.yaml, the
    answers and the leaderboard. `sample`: the sample submission as crew writes it, when it differs from the
    file's."""
    (out / "data").mkdir(parents=True, exist_ok=True)
    data: dict[str, str] = {}
    for role, source, frame in (("train", train_path, train), ("test", test_path, test),
                                ("sample_submission", sample_path, sample)):
        target_path = out / "data" / source.name
        changed = ((role == "train" and train_changed) or (role == "sample_submission" and sample is not None)
                   or (role == "test" and (sequence is not None or media is not None)))
        if role == "train" and id_column not in train.columns:
            # crew carries the id through every table; train rows get ids of their own, never a test id
            frame = train.with_row_index(id_column).with_columns(pl.format("train-{}", pl.col(id_column)).alias(id_column))
            changed = True
        if changed or source.suffix.lower() not in (".csv", ".parquet"):  # crew's tables are csv or parquet
            target_path = target_path.with_name(Path(source.name.split(".")[0]).name + ".parquet")
            (frame if frame is not None else _read(source)).write_parquet(target_path)
        else:
            shutil.copyfile(source, target_path)
        data[role] = f"data/{target_path.name}"
    slug = re.sub(r"[^a-z0-9]+", "-", (name or _competition_id(public)).lower()).strip("-") or "competition"
    spec: dict[str, Any] = {"name": slug, "kind": "tabular", "description": description.strip() or f"MLE-bench: {slug}",
                            "data": data, **({"targets": target} if isinstance(target, list) else {"target": target}),
                            "id_column": id_column, "metric": metric}
    if sequence is not None:  # token in, token out (workflows/seq2seq.py)
        spec = {**spec, "kind": "seq2seq", **sequence}
    if media is not None:  # each row a file (workflows/media.py)
        spec["media"] = media
    if submission is not None:  # one row per (row, target) cell
        spec["submission"] = submission
    if budget:
        spec["budget"] = budget
    (out / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100),
                                   encoding="utf-8")
    if private_dir is not None:
        (out / "grading").mkdir(exist_ok=True)
        _answers(Path(private_dir), id_column, target, classes, answers_file, submission).write_csv(
            out / "grading" / "answers.csv")
    if leaderboard is not None:
        board = _read(Path(leaderboard))
        if "score" not in board.columns:
            raise CrewError(f"{leaderboard}: --leaderboard: no `score` column; fix: pass the competition's "
                            "leaderboard.csv (one row per team, a score column)")
        board.select("score").write_csv(out / "leaderboard.csv")


def _competition_id(public: Path) -> str:
    """MLE-bench's layout is <competition>/prepared/public: the folder names the competition."""
    return public.parent.parent.name if public.name == "public" and public.parent.name == "prepared" else public.name


def _known_files(public: Path, known: Competition) -> tuple[Path, Path, Path]:
    paths = []
    for role in ("train", "test", "sample_submission"):
        file = getattr(known.files, role)
        if file is None and known.media is not None:  # rows read from the files (train) or the sample (test)
            paths.append(public / f"{role}.csv")
            continue
        assert file is not None  # support() refused a competition without one
        if not (public / file).is_file():
            raise CrewError(f"{public}: lacks {file}, the {role} table MLE-bench prepares for {known.id}; fix: pass "
                            "the competition's prepared public/ folder (mlebench prepare -c " + known.id + ")")
        paths.append(public / file)
    return paths[0], paths[1], paths[2]


def _one_hot_label(train: pl.DataFrame, columns: list[str], sample_path: Path) -> tuple[pl.DataFrame, str]:
    """A target given as one-hot train columns (lmsys-chatbot-arena's winner_model_a/b, winner_tie) as one label
    column named `label`, the one-hot columns dropped (they would give the answer away)."""
    missing = [c for c in columns if c not in train.columns]
    if missing:
        raise CrewError(f"{sample_path}: the train table lacks the one-hot column(s) {missing}; fix: pass the "
                        "competition's prepared public/ folder")
    name = next(n for n in ("label", "_label", "__label") if n not in train.columns)
    picks = train.select(columns).to_numpy().argmax(axis=1)
    return train.drop(columns).with_columns(pl.Series(name, [columns[i] for i in picks])), name


def _extract(archive: Path, folder: Path) -> None:
    """Every file of `archive` written into `folder` by its own name (whatever folders the archive holds)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                name = Path(member.filename).name
                if member.is_dir() or not name or name.startswith(".") or "__MACOSX" in member.filename:
                    continue
                with zipped.open(member) as source, open(folder / name, "wb") as target:
                    shutil.copyfileobj(source, target)
    except zipfile.BadZipFile as exc:
        raise CrewError(f"{archive}: is not a readable zip archive ({exc}); fix: pass the competition's prepared "
                        "public/ folder") from None


def _label_lists(public: Path, known: Competition) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Train and test rows from a file of `<id>,<label>,...` lines (mlsp-2013-birds' rec_labels_test_hidden.txt;
    `?` marks a test row): train with one 0/1 column per class of the classes table, test with the ids; and the
    targets' names, in class-id order."""
    layout, id_column = known.media, str(known.id_column)
    assert layout is not None and layout.label_lists is not None and layout.classes is not None
    for name in (layout.label_lists, layout.classes):
        if not (public / name).is_file():
            raise CrewError(f"{public}: lacks {name}, the file MLE-bench prepares for {known.id}; fix: pass the "
                            f"competition's prepared public/ folder (mlebench prepare -c {known.id})")
    table = _read(public / layout.classes)
    if table.width < 2 or table.height == 0:
        raise CrewError(f"{public / layout.classes}: expected a class id and a name per row; fix: pass the "
                        "competition's prepared public/ folder")
    ids = [str(v) for v in table[table.columns[0]].to_list()]
    targets = [str(v) for v in table[table.columns[1]].to_list()]
    train_rows, test_ids = [], []
    lines = (public / layout.label_lists).read_text(encoding="utf-8").splitlines()[1:]
    for number, line in enumerate(lines, start=2):
        row, *labels = [part.strip() for part in line.split(",")]
        if not row:
            continue
        if labels == ["?"]:
            test_ids.append(row)
            continue
        unknown = [label for label in labels if label and label not in ids]
        if unknown:
            raise CrewError(f"{public / layout.label_lists}: line {number} names the class(es) {unknown}, not in "
                            f"{layout.classes}; fix: pass the competition's prepared public/ folder")
        train_rows.append([row] + [int(i in labels) for i in ids])
    if not train_rows or not test_ids:
        raise CrewError(f"{public / layout.label_lists}: no {'train' if not train_rows else 'test (?)'} rows; fix: "
                        "pass the competition's prepared public/ folder")
    train = pl.DataFrame(train_rows, schema=[id_column, *targets], orient="row")
    test = pl.DataFrame({id_column: test_ids})
    cast = pl.Int64 if all(r[0].lstrip("-").isdigit() for r in train_rows) and all(
        t.lstrip("-").isdigit() for t in test_ids) else pl.Utf8
    return train.with_columns(pl.col(id_column).cast(cast)), test.with_columns(pl.col(id_column).cast(cast)), targets


def _media_rows(public: Path, known: Competition, sample: pl.DataFrame, staging: Path
                ) -> tuple[pl.DataFrame, pl.DataFrame, str, list[str]]:
    """An image or audio competition's train and test rows, each with the path of its file (a new column), the
    files extracted or linked into `staging` at those paths; the name of that column, and the targets."""
    layout, id_column = known.media, known.id_column
    assert layout is not None and id_column is not None
    extracted: set[str] = set()
    for archive, folder in layout.archives.items():
        if not (public / archive).is_file():
            raise CrewError(f"{public}: lacks {archive}, the archive MLE-bench prepares for {known.id}; fix: pass the "
                            f"competition's prepared public/ folder (mlebench prepare -c {known.id})")
        _extract(public / archive, staging / folder)
        extracted.add(folder)
    if layout.label_from_name is not None:
        folder = str(PurePosixPath(layout.train).parent)
        pattern = re.compile(layout.label_from_name)
        rows = [(p.name, layout.labels[m.group("label")]) for p in sorted((staging / folder).iterdir())
                if (m := pattern.search(p.name))]
        if not rows:
            raise CrewError(f"{public}: no train file in {folder}/ is named as {known.id}'s are "
                            f"({layout.label_from_name}); fix: pass the competition's prepared public/ folder")
        train = pl.DataFrame({id_column: [r[0] for r in rows], known.targets[0]: [r[1] for r in rows]})
    elif layout.label_lists is not None:
        train, test, targets = _label_lists(public, known)
    elif layout.target is not None:  # image in, image out: the rows are the train and test folders' files
        frames = []
        for role, pattern_text in (("train", layout.train), ("test", layout.test)):
            folder, name = PurePosixPath(pattern_text).parent, PurePosixPath(pattern_text).name
            prefix, suffix = name.split("{id}")
            stems = sorted(p.name[len(prefix):len(p.name) - len(suffix)] for p in (public / folder).glob(f"{prefix}*{suffix}")
                           if p.is_file()) if (public / folder).is_dir() else []
            if not stems:
                raise CrewError(f"{public}: no {role} image in {folder}/ ({name}); fix: pass the competition's "
                                f"prepared public/ folder (mlebench prepare -c {known.id})")
            frames.append(pl.DataFrame({id_column: stems}))
        train, test = frames
        column_name = PurePosixPath(layout.target).parts[0]
        paths = [layout.target.format(id=stem) for stem in train[id_column].to_list()]
        missing = [p for p in paths if not (public / p).is_file()]
        if missing:
            raise CrewError(f"{public}: {len(missing)} train image(s) have no target image (e.g. {', '.join(missing[:3])}); "
                            "fix: pass the competition's complete prepared public/ folder")
        for path in paths:
            link_or_copy(public / path, staging / path)
        train = train.with_columns(pl.Series(column_name, paths))
        targets = [column_name]
    else:
        assert known.files.train is not None
        train = _read(public / known.files.train)
    if layout.label_lists is None and layout.target is None:
        test = _read(public / known.files.test) if known.files.test else sample.select(id_column)
        targets = list(known.targets)
    names = None
    if layout.names is not None:  # the columns the file patterns name, by id (mlsp's rec_id -> filename)
        if not (public / layout.names).is_file():
            raise CrewError(f"{public}: lacks {layout.names}, the file MLE-bench prepares for {known.id}; fix: pass "
                            f"the competition's prepared public/ folder (mlebench prepare -c {known.id})")
        names = _read(public / layout.names)
        if id_column not in names.columns:
            raise CrewError(f"{public / layout.names}: lacks the id column {id_column!r}; fix: pass the "
                            "competition's prepared public/ folder")
        names = names.with_columns(pl.col(id_column).cast(pl.Utf8))
    column = layout.kind if layout.kind not in (*train.columns, *test.columns) else "file"
    frames = []
    for frame, pattern_text in ((train, layout.train), (test, layout.test)):
        keys = frame[id_column].cast(pl.Utf8)
        fields: list[dict[str, Any]] = [{"id": key} for key in keys.to_list()]
        if names is not None:
            found = pl.DataFrame({id_column: keys}).join(names, on=id_column, how="left", maintain_order="left")
            lost = found.filter(pl.any_horizontal(pl.all().is_null()))[id_column].head(3).to_list()
            if lost:
                raise CrewError(f"{public / layout.names}: names no file for the id(s) {lost}; fix: pass the "
                                "competition's prepared public/ folder")
            fields = [{**row, "id": row[id_column]} for row in found.to_dicts()]
        paths = [pattern_text.format(**row) for row in fields]
        folder = PurePosixPath(pattern_text).parts[0]
        missing = [p for p in paths if not (staging / p if folder in extracted else public / p).is_file()]
        if missing:
            raise CrewError(f"{public}: {len(missing)} of {len(paths)} files the rows name are missing (e.g. "
                            f"{', '.join(missing[:3])}); fix: pass the competition's complete prepared public/ folder")
        if folder not in extracted:
            for path in paths:  # a large image set costs no space
                link_or_copy(public / path, staging / path)
        frames.append(frame.with_columns(pl.Series(column, paths)))
    return frames[0], frames[1], column, targets


def listing(*, lite_only: bool = False) -> list[dict[str, Any]]:
    """Every registry competition with what crew does with it today: `status` is "imports, solves offline" or the
    reason it cannot (`competitions.support`)."""
    rows = []
    for c in competitions().values():
        if lite_only and not c.lite:
            continue
        reason = support(c)
        rows.append({"competition": c.id, "lite": c.lite, "modality": c.modality, "output": c.output,
                     "metric": c.metric or "-", "status": "imports, solves offline" if reason is None else reason})
    return rows


def import_mlebench(public_dir: str | Path, *, out: str | Path, metric: str | None = None, name: str | None = None,
                    private_dir: str | Path | None = None, leaderboard: str | Path | None = None,
                    budget: dict[str, Any] | None = None, competition: str | None = None) -> Path:
    """Write `out/task.yaml` (data copied under `out/data/`, answers under `out/grading/` when `private_dir` is
    given, `out/leaderboard.csv` when `leaderboard` is) and return its path, after `Task.load` accepted it.

    A competition the registry knows (by `competition`, else by the folder layout) is read as the registry
    says: its files, the column a submission is keyed by, the target and the metric as its grader computes it;
    one crew cannot take yet is refused with the reason (`competitions.support`). Any other folder is read from
    its file names and its description."""
    public = Path(public_dir)
    if not public.is_dir():
        raise CrewError(f"{public}: no such folder; fix: pass a prepared competition's public/ folder "
                        "(e.g. ~/.cache/mle-bench/data/<competition>/prepared/public)")
    if metric is not None and metric not in METRICS:
        raise CrewError(f"--metric: unknown metric {metric!r}; fix: use one of {', '.join(METRICS)}")
    known = competitions().get(competition or _competition_id(public))
    if competition is not None and known is None:
        raise CrewError(f"--competition: {competition!r} is not one of MLE-bench's competitions; fix: see crew "
                        "import-mlebench --list")
    if known is not None:
        reason = support(known, metric_given=metric is not None)
        if reason is not None:
            raise CrewError(f"{public}: {known.id}: {reason}; fix: pick a competition `crew import-mlebench --list` "
                            "marks as supported" + ("" if metric else ", or pass --metric to grade it your way"))
        train_path, test_path, sample_path = _known_files(public, known)
    else:
        _refuse_non_tabular(public)
        found = _find(public, "train", "labels", "training"), _find(public, "test"), next(
            (p for p in sorted(public.iterdir()) if p.is_file() and p.suffix.lower() in _TABLES
             and re.search(r"sample[_-]?submission", p.name, re.IGNORECASE)), None)
        missing = [label for label, p in zip(("train", "test", "sample_submission"), found, strict=True) if p is None]
        if missing:
            raise CrewError(f"{public}: no {' or '.join(missing)} table (csv, parquet, tsv or json); fix: pass a "
                            "prepared MLE-bench public/ folder with train (or labels), test and sample_submission "
                            "files")
        train_path, test_path, sample_path = found  # type: ignore[assignment]
    description_path = public / "description.md"
    description = description_path.read_text(encoding="utf-8") if description_path.is_file() else ""
    if metric is None and known is not None:
        metric = known.metric
    if metric is None:
        if not description:
            raise CrewError(f"{public}: no description.md to read the metric from; fix: pass --metric "
                            f"({', '.join(METRICS)})")
        try:
            metric = detect_metric(description)
        except CrewError as exc:
            raise CrewError(f"{description_path}: {exc.args[0].removeprefix('description.md: ')}") from None

    out = Path(out)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    media: dict[str, str] | None = None
    media_targets: list[str] = []
    sample = _read(sample_path)
    if known is not None and known.media is not None:
        staging.mkdir(parents=True)
        try:
            train, test, column, media_targets = _media_rows(public, known, sample, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        media = {column: known.media.kind, **({media_targets[0]: "image"} if known.media.target else {})}
    else:
        train, test = _read(train_path), _read(test_path)
    train_source = None if media else train
    if known is not None and known.id_column is not None:
        id_column, targets = known.id_column, (media_targets if media else list(known.targets))
    else:
        id_column, *targets = sample.columns
    sequence = None
    if known is not None and known.sequence is not None:
        # a token's id is <sentence>_<token> in test (the submission's key); train's ids never equal a test id
        seq = known.sequence
        for role, frame in (("train", train), ("test", test)):
            missing = [c for c in (seq.source, seq.group, seq.position) if c not in frame.columns]
            if missing:
                raise CrewError(f"{train_path if role == 'train' else test_path}: lacks the column(s) {missing}; fix: "
                                "pass the competition's prepared public/ folder")
        test = test.with_columns(pl.format("{}_{}", seq.group, seq.position).alias(id_column))
        train = train.with_columns(pl.format("train-{}_{}", seq.group, seq.position).alias(id_column))
        sequence = {"source": seq.source, "group": seq.group}
    if not targets:
        raise CrewError(f"{sample_path}: has only the column {id_column!r}; fix: pass a competition whose sample "
                        "submission holds an id and a target")
    if id_column not in test.columns:
        raise CrewError(f"{sample_path}: its first column {id_column!r} is not in {test_path.name}; fix: pass a "
                        "competition whose sample submission is keyed by a test column")
    classes: list[str] | None = None
    target: str | list[str]
    if known is not None and known.output in ("multilabel", "multi_output"):
        missing = [t for t in targets if t not in train.columns]
        if missing:
            raise CrewError(f"{train_path}: lacks the target column(s) {missing}; fix: pass the competition's "
                            "prepared public/ folder")
        target = targets
    elif known is not None and known.one_hot and METRICS[metric].per_column:
        target = known.one_hot  # one-hot columns scored column by column (plant-pathology): each its own target
    elif known is not None and known.one_hot:
        train, target = _one_hot_label(train, known.one_hot, sample_path)
        classes = targets
    elif known is not None and known.output == "class_proba" and known.label_column:
        target, classes = known.label_column, targets
    elif len(targets) == 1:
        target = targets[0]
        if target not in train.columns:
            raise CrewError(f"{sample_path}: the target {target!r} is not a column of {train_path.name}; fix: pass a "
                            "competition whose train table holds the submitted column")
    elif METRICS[metric].per_column and all(t in train.columns and t not in test.columns for t in targets):
        target = targets  # several targets, each a train column, scored column by column
    else:
        # one probability column per class: the label is the train column whose values are those class names
        labels = [c for c in train.columns if c not in test.columns
                  and {str(v) for v in train[c].drop_nulls().unique().to_list()} == set(targets)]
        if not labels:
            columnwise = ", ".join(m for m, info in METRICS.items() if info.per_column)
            raise CrewError(f"{sample_path}: submits {len(targets)} columns ({', '.join(targets[:5])}...) that are "
                            f"not the classes of one {train_path.name} column: several targets, scored by "
                            f"{metric}, a one-target metric; fix: pass --metric with the column-wise metric the "
                            f"competition uses ({columnwise}) when each column is a train column")
        target, classes = labels[0], targets
    if classes is not None and metric not in ("log_loss",):
        raise CrewError(f"{sample_path}: submits one probability column per class, scored by {metric}; crew "
                        "scores per-class probabilities with log_loss only; fix: pass --metric log_loss if that "
                        "is the competition's metric")
    notes: list[str] = []
    copied = [c for c in sample.columns if c != id_column and c not in targets and c in test.columns]
    crew_sample = None
    if copied:
        # test columns repeated in the sample (detecting-insults writes Insult, Date, Comment): the graders read
        # the key and the prediction by name, so crew's submission is the key and the prediction
        crew_sample = sample.select(id_column, *[c for c in sample.columns if c not in copied and c != id_column])
        notes.append(f"the sample submission repeats the test column(s) {', '.join(copied)}; crew's submission "
                     f"holds {id_column} and the prediction, which is what the grader reads")
    if id_column in train.columns and train[id_column].is_duplicated().any():
        # crew aligns train rows by the key, so each must be unique; a key that is the input itself repeats when
        # the same comment was posted twice (detecting-insults): its first row is kept
        before = train.height
        train = train.unique(subset=[id_column], keep="first", maintain_order=True)
        notes.append(f"{before - train.height} train row(s) repeat a {id_column} seen earlier in train; the import "
                     "kept the first of each")
    if notes:
        description = description.rstrip() + "\n\nImport notes (crew import-mlebench):\n" + "".join(
            f"- {n}\n" for n in notes)

    try:
        _write_task(staging, public, train_path, test_path, sample_path, train, test, id_column, target, classes,
                    metric, description, name, private_dir, leaderboard, budget, train_changed=train is not train_source,
                    answers_file=known.files.answers if known else None, sample=crew_sample, sequence=sequence,
                    media=media, submission=known.submission if known else None)
        Task.load(staging / "task.yaml")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a refused import leaves nothing behind
        raise
    out.mkdir(parents=True, exist_ok=True)
    for item in staging.iterdir():  # what an earlier import wrote there is replaced, anything else kept
        if (out / item.name).is_dir():
            shutil.rmtree(out / item.name)
        else:
            (out / item.name).unlink(missing_ok=True)
        item.rename(out / item.name)
    staging.rmdir()
    return Task.load(out / "task.yaml").root / "task.yaml"
