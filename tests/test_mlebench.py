"""`crew import-mlebench`: competitions in MLE-bench's prepared layout become tasks, or are refused with the reason;
and crew's medal and above-median decisions equal MLE-bench's rule at every bracket boundary."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from crew import CrewError, Task, get_metric, grade, place_on_leaderboard, read_table
from crew.workflows.mlebench import detect_metric, import_mlebench

EVALUATION = {
    "roc_auc": "Submissions are evaluated on area under the ROC curve between the predicted probability and the "
               "observed target.",
    "log_loss": "Submissions are evaluated using the multi-class logarithmic loss.",
    "rmsle": "Submissions are evaluated on the Root Mean Squared Logarithmic Error (RMSLE).",
}


def _competition(root: Path, kind: str, evaluation: str | None = None) -> Path:
    """A competition folder as MLE-bench prepares it: <id>/prepared/public and <id>/prepared/private."""
    rng = np.random.default_rng(0)
    public, private = root / kind / "prepared" / "public", root / kind / "prepared" / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    n, m = 120, 30
    x = rng.normal(size=n + m)
    frame = pl.DataFrame({"PassengerId": [f"p{i:04d}" for i in range(n + m)], "Age": rng.integers(1, 80, n + m),
                          "Fare": np.round(np.abs(x) * 30, 2), "Deck": rng.choice(["A", "B", "C"], n + m)})
    text = evaluation or EVALUATION.get(kind, "")
    (public / "description.md").write_text(f"# Overview\n\nA toy competition.\n\n## Evaluation\n\n{text}\n\n"
                                           "## Submission File\n\nSee sample_submission.csv. Accuracy matters to us!\n")
    if kind == "log_loss":
        label = pl.Series("species", rng.choice(["Adelie", "Gentoo", "Chinstrap"], n + m))
        full = frame.rename({"PassengerId": "id"}).with_columns(label)
        full[:n].write_csv(public / "train.csv")
        full[n:].drop("species").write_csv(public / "test.csv")
        classes = ["Adelie", "Chinstrap", "Gentoo"]
        pl.DataFrame({"id": full[n:]["id"], **{c: [1 / 3] * m for c in classes}}).write_csv(public / "sample_submission.csv")
        pl.DataFrame({"id": full[n:]["id"], **{c: (full[n:]["species"] == c).cast(pl.Int64) for c in classes}}) \
            .write_csv(private / "test.csv")
        return public
    target = ("Transported", (x > 0).astype(int)) if kind != "rmsle" else ("Price", np.round(np.exp(x) * 10, 2))
    full = frame.with_columns(pl.Series(target[0], target[1]))
    full[:n].write_csv(public / "train.csv")
    full[n:].drop(target[0]).write_csv(public / "test.csv")
    pl.DataFrame({"PassengerId": full[n:]["PassengerId"], target[0]: [0.5] * m}).write_csv(public / "sampleSubmission.csv")
    full[n:].select("PassengerId", target[0]).write_csv(private / "test.csv")
    return public


def test_a_binary_auc_competition_becomes_a_valid_gradable_task_with_a_leaderboard(tmp_path, cli):
    public = _competition(tmp_path, "roc_auc")
    (tmp_path / "leaderboard.csv").write_text("teamName,score\n" + "".join(f"t{i},{0.99 - i / 100}\n" for i in range(50)))
    out = tmp_path / "task"
    result = cli("import-mlebench", public, "--out", out, "--private", public.parent / "private",
                 "--leaderboard", tmp_path / "leaderboard.csv")
    assert result.exit_code == 0, result.output
    task = Task.load(out)
    assert (task.name, task.target, task.id_column, task.metric) == ("roc-auc", "Transported", "PassengerId", "roc_auc")
    assert "area under the ROC curve" in task.description
    answers = pl.read_csv(out / "grading" / "answers.csv")
    assert answers.columns == ["PassengerId", "Transported"] and answers.height == 30
    perfect = tmp_path / "perfect.csv"
    answers.with_columns(pl.col("Transported").cast(pl.Float64)).write_csv(perfect)
    report = grade(task, perfect, out / "grading" / "answers.csv")
    assert report.score == 1.0 and report.leaderboard is not None and report.leaderboard.medal == "gold"
    assert cli("validate", out).exit_code == 0


def test_per_class_probability_columns_become_one_label_target_scored_by_log_loss(tmp_path):
    public = _competition(tmp_path, "log_loss")
    path = import_mlebench(public, out=tmp_path / "task", private_dir=public.parent / "private")
    task = Task.load(path)
    assert (task.target, task.metric, sorted(task.classes)) == ("species", "log_loss", ["Adelie", "Chinstrap", "Gentoo"])
    answers = pl.read_csv(tmp_path / "task" / "grading" / "answers.csv")
    assert answers.columns == ["id", "species"] and set(answers["species"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    uniform = grade(task, public / "sample_submission.csv", tmp_path / "task" / "grading" / "answers.csv")
    assert uniform.valid_submission and uniform.score == pytest.approx(np.log(3))


def test_a_regression_competition_without_train_ids_gets_train_ids_of_its_own(tmp_path):
    public = _competition(tmp_path, "rmsle")
    train = pl.read_csv(public / "train.csv").drop("PassengerId")
    train.write_csv(public / "train.csv")
    task = Task.load(import_mlebench(public, out=tmp_path / "task", name="House Prices!"))
    assert (task.name, task.metric, task.target) == ("house-prices", "rmsle", "Price")
    ids = pl.read_parquet(task.path(task.data.train))["PassengerId"]
    assert ids[0] == "train-0" and ids.n_unique() == train.height


@pytest.mark.parametrize(
    ("description", "error"),
    [("Submissions are scored on the micro-averaged F1 score.", "micro F1, which crew does not grade"),
     ("Scored by the [weighted F1](https://en.wikipedia.org/wiki/F1) score.", "weighted F1, which crew does not grade"),
     ("We will look at your submissions carefully.", "no metric recognised.*fix: pass --metric"),
     ("Scored by RMSE for the first stage and by MAE for the second.", r"several metrics \(rmse, mae\)")],
)
def test_a_metric_it_cannot_tell_is_an_error_naming_the_flag(tmp_path, description, error):
    public = _competition(tmp_path, "roc_auc", evaluation=description)
    with pytest.raises(CrewError, match=error):
        import_mlebench(public, out=tmp_path / "task")
    assert not (tmp_path / "task").exists() and not list(tmp_path.glob("task*"))  # a refusal leaves nothing behind
    assert Task.load(import_mlebench(public, out=tmp_path / "task", metric="roc_auc")).metric == "roc_auc"


def test_the_evaluation_section_decides_and_specific_phrases_win():
    assert detect_metric("# Evaluation\nRoot Mean Squared Logarithmic Error.\n# Prizes\nAccuracy counts") == "rmsle"
    assert detect_metric("## Evaluation\nThe macro F1 score.") == "f1_macro"
    assert detect_metric("## Evaluation\nbalanced accuracy over the classes") == "balanced_accuracy"
    # a specific name explains the general one beside it; qualifiers win over the name they qualify
    assert detect_metric("## Evaluation\nScored by Macro F1. The F1 score is the harmonic mean of ...") == "f1_macro"
    assert detect_metric("## Evaluation\nquadratic weighted kappa, which ranges from -1 to 1") == "qwk"
    # correlations: us-patent-phrase-to-phrase-matching's and google-quest-challenge's own words
    assert detect_metric("## Evaluation\n\nSubmissions are evaluated on the [Pearson correlation coefficient]"
                         "(https://en.wikipedia.org/wiki/Pearson) between the predicted and actual `score`s.") == "pearson"
    assert detect_metric("## Evaluation\n\nSubmissions are evaluated on the mean column-wise [Spearman's correlation "
                         "coefficient](https://x). The Spearman's rank correlation is computed for each target "
                         "column, and the mean of these values is calculated.") == "spearman_columns"
    # bold and nested headings: the section runs to the next heading of its own level
    assert detect_metric("**Evaluation**\n\nRoot Mean Squared Error.\n\n**Prizes**\nthe best accuracy wins") == "rmse"
    assert detect_metric("# Comp\n## Evaluation\n### Metric\nmean absolute error\n### Submission\nid,y\n"
                         "## Timeline\nAUC") == "mae"
    for text, name in [("evaluated on the column-wise [root mean squared logarithmic error](https://x).",
                        "rmsle_columns"),
                       ("AUC is calculated for each of the 11 labels, then averaged.", "roc_auc_columns"),
                       ("MCRMSE, the mean columnwise root mean squared error", "mcrmse")]:
        assert detect_metric("## Evaluation\n" + text) == name  # the qualifier read, not the metric it qualifies
    with pytest.raises(CrewError, match="log of an error"):
        detect_metric("## Evaluation\nthe log of the MAE of each type, averaged")


def test_labels_tsv_and_json_tables_are_read_whole(tmp_path):
    """A train table named labels.csv (new-york-city-taxi-fare-prediction), tsv and json tables, and a column that
    is integer for 10,000 rows and decimal after them (the whole file is scanned for types)."""
    public = tmp_path / "taxi" / "prepared" / "public"
    public.mkdir(parents=True)
    n = 10_050
    fares = [float(i % 40) for i in range(n)]
    fares[-3:] = [7.25, 8.5, 9.75]
    pl.DataFrame({"key": [f"k{i}" for i in range(n)], "passengers": [i % 5 for i in range(n)], "fare_amount": fares}) \
        .write_csv(public / "labels.csv")
    pl.DataFrame({"key": ["t0", "t1"], "passengers": [1, 2]}).write_ndjson(public / "test.jsonl")
    (public / "sample_submission.tsv").write_text("key\tfare_amount\nt0\t11.3\nt1\t11.3\n")
    (public / "description.md").write_text("## Evaluation\nRoot mean squared error (RMSE).\n")
    task = Task.load(import_mlebench(public, out=tmp_path / "task"))
    assert (task.name, task.target, task.id_column, task.metric) == ("taxi", "fare_amount", "key", "rmse")
    assert task.data.train == "data/labels.csv" and task.data.test == "data/test.parquet"
    assert task.shapes["train"] == (n, 3)


def test_image_and_multi_target_competitions_are_refused_not_mangled(tmp_path):
    images = tmp_path / "cactus" / "prepared" / "public"
    (images / "train").mkdir(parents=True)
    for i in range(3):
        (images / "train" / f"{i}.jpg").write_bytes(b"\xff\xd8\xff")
    (images / "train.csv").write_text("id,has_cactus\n0.jpg,1\n")
    with pytest.raises(CrewError, match=r"holds 3 \.jpg files: not a tabular competition"):
        import_mlebench(images, out=tmp_path / "task")
    public = _competition(tmp_path, "roc_auc")
    sample = pl.read_csv(public / "sampleSubmission.csv").with_columns(pl.lit(0.5).alias("Other"))
    sample.write_csv(public / "sampleSubmission.csv")
    with pytest.raises(CrewError, match="several targets, scored by roc_auc, a one-target metric; fix: pass --metric"):
        import_mlebench(public, out=tmp_path / "task2")
    with pytest.raises(CrewError, match="no such folder"):
        import_mlebench(tmp_path / "nowhere", out=tmp_path / "task3")


# -- grader parity with MLE-bench ---------------------------------------------------------------------------


def mlebench_rank(score: float, leaderboard: list[float]) -> dict[str, bool]:
    """MLE-bench's rule as it documents it (grade_helpers.Grader.rank_score), written out independently of
    crew: the leaderboard in Kaggle's order (best first), direction read from its first and last scores,
    thresholds at kaggle.com/progression's positions, a medal for a score at least as good as the threshold,
    above-median strictly better than the median."""
    lower = leaderboard[0] < leaderboard[-1]
    n = len(leaderboard)
    if n < 100:
        positions = (max(1, int(n * 0.1)), max(1, int(n * 0.2)), max(1, int(n * 0.4)))
    elif n < 250:
        positions = (10, max(1, int(n * 0.2)), max(1, int(n * 0.4)))
    elif n < 1000:
        positions = (10 + int(n * 0.002), 50, 100)
    else:
        positions = (10 + int(n * 0.002), max(1, int(n * 0.05)), max(1, int(n * 0.1)))
    gold_t, silver_t, bronze_t = (leaderboard[p - 1] for p in positions)
    median = float(np.median(leaderboard))

    def ok(threshold: float) -> bool:
        return score <= threshold if lower else score >= threshold

    gold = ok(gold_t)
    silver = not gold and ok(silver_t)
    bronze = not gold and not silver and ok(bronze_t)
    return {"gold": gold, "silver": silver, "bronze": bronze, "above_median": score < median if lower else score > median}


@pytest.mark.parametrize("n", [99, 100, 249, 250, 999, 1000])
@pytest.mark.parametrize("higher", [True, False])
def test_medals_and_above_median_match_mlebench_at_every_bracket_boundary_with_ties(n, higher):
    metric = get_metric("roc_auc" if higher else "rmse")
    rng = random.Random(n * 2 + higher)
    # coarse scores make ties everywhere, including across the medal positions
    values = [round(rng.uniform(0, 1), 2) for _ in range(n)]
    board = sorted(values, reverse=higher)  # Kaggle's order: best first
    probes = set(board)  # every score on the board: ties with thresholds
    probes |= {v + d for v in board for d in (-0.005, 0.005)}  # just either side of each
    probes |= {float(np.median(board)), board[0] + 0.1, board[-1] - 0.1}
    checked = 0
    for score in sorted(probes):
        want = mlebench_rank(score, board)
        got = place_on_leaderboard(score, list(reversed(board)), metric)  # crew sorts: the order it gets is free
        assert got.above_median == want["above_median"], (n, higher, score)
        medal = next((m for m in ("gold", "silver", "bronze") if want[m]), None)
        assert got.medal == medal, (n, higher, score)
        checked += 1
    assert len(set(board)) < n and checked >= 2 * len(set(board))  # ties exist; each score and its sides probed


def test_ties_at_the_gold_position_give_every_tied_score_gold_as_mlebench_does():
    metric = get_metric("accuracy")
    board = [0.9] * 15 + [0.5] * 85  # N=100: gold at position 10, inside a 15-way tie
    assert mlebench_rank(0.9, board)["gold"] and place_on_leaderboard(0.9, board, metric).medal == "gold"
    assert json.loads(place_on_leaderboard(0.5, board, metric).model_dump_json())["above_median"] is False


# -- the registry: MLE-bench's own layouts ---------------------------------------------------------------------


def replica(root: Path, competition: str, *, n: int = 160, m: int = 40) -> Path:
    """A tiny copy of a registry competition's prepared layout: the same file names, key, target and submission
    columns, with synthetic rows whose features (numbers, or words for a text competition) carry the target."""
    from crew.workflows.competitions import competitions

    c = competitions()[competition]
    rng = np.random.default_rng(len(competition))
    classes = c.one_hot or (c.targets if c.output == "class_proba" else None)
    if classes:  # every class in train: the task's classes are train's
        n = max(n, 3 * len(classes))
    public, private = root / competition / "prepared" / "public", root / competition / "prepared" / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    if c.sequence is not None:
        return token_replica(public, private, c, rng, sentences=max(20, (n + m) // 4))
    if c.media is not None:
        return media_replica(public, private, c, rng, n=max(n, 3 * len(classes or [])), m=m)
    signal = rng.normal(size=n + m)
    if classes:
        code = np.arange(n + m) % len(classes)
        signal = (code - len(classes) / 2) / len(classes) * 4 + rng.normal(scale=0.3, size=n + m)
    ids = [f"r{i:05d}" for i in range(n + m)]
    frame = pl.DataFrame({c.id_column: ids})
    keyed_by_text = c.submission_columns[:1] != [c.id_column]  # detecting-insults: the comment is the key
    if c.modality == "text":
        words = np.array(["pizza", "please", "hungry", "thanks", "ghost", "night", "raven", "door", "model", "answer"])
        text = pl.Series("text", [" ".join(rng.choice(words[:5] if s > 0 else words[5:], 6)) + f" n{i}"
                                  for i, s in enumerate(signal)])
        frame = (pl.DataFrame({"Date": [f"2012{i % 12 + 1:02d}01000000Z" for i in range(n + m)],
                               c.id_column: text}) if keyed_by_text else frame.with_columns(text))
        ids = frame[c.id_column].to_list()
    else:
        frame = frame.with_columns(*[pl.Series(f"x{j}", signal * (j + 1) + rng.normal(size=n + m)) for j in range(3)])
    if classes:
        label = np.asarray(classes)[code]
        truth = {k: (label == k).astype(int) for k in classes}
        answers = pl.DataFrame({c.id_column: ids, **truth})
        train = frame.with_columns(*[pl.Series(k, v) for k, v in truth.items()]) if c.one_hot else \
            frame.with_columns(pl.Series(c.label_column, label))
    elif c.output in ("multilabel", "multi_output"):  # each column its own signal
        noise = rng.normal(scale=0.5, size=(n + m, len(c.targets)))
        truth = {t: ((signal + noise[:, j] > 0.5 * j).astype(int) if c.output == "multilabel"
                     else np.round(np.exp(signal * (j + 1) / 3 + noise[:, j] / 5), 4)) for j, t in enumerate(c.targets)}
        answers = pl.DataFrame({c.id_column: ids, **truth})
        train = frame.with_columns(*[pl.Series(t, v) for t, v in truth.items()])
    else:
        target = c.targets[0]
        if c.metric in ("roc_auc", "log_loss"):
            values = pl.Series(target, signal + rng.normal(scale=0.5, size=n + m) > 0)
            values = values if c.files.train.endswith(".json") else values.cast(pl.Int64)
        elif c.metric in ("accuracy", "qwk"):
            values = pl.Series(target, np.digitize(signal, [-0.5, 0.5]) + 1)
        else:
            values = pl.Series(target, np.round(np.exp(signal) * 5, 2))
        answers = pl.DataFrame({c.id_column: ids}).with_columns(values)
        train = frame.with_columns(values)
    sample = answers[n:].with_columns(pl.exclude(c.id_column).cast(pl.Float64) * 0 + 0.5)
    if keyed_by_text:  # the sample repeats the test's columns, in the registry's order; train repeats a comment
        sample = sample.join(frame[n:], on=c.id_column).select(c.submission_columns)
    train = pl.concat([train[:n], train[:1]]) if keyed_by_text else train[:n]
    files = {c.files.train: train, c.files.test: frame[n:],
             c.files.sample_submission: sample}
    for name, table in files.items():
        path = public / name
        if name.endswith(".json"):
            path.write_text(json.dumps(table.to_dicts()))
        else:
            table.write_csv(path)
    answers[n:].write_csv(private / c.files.answers)
    (public / "description.md").write_text(f"# {competition}\n\n## Evaluation\n\n{c.grader}\n")
    return public


def token_replica(public: Path, private: Path, c, rng: np.random.Generator, *, sentences: int) -> Path:
    """A text-normalization layout: sentences of tokens (words, some spelt letter by letter; numbers, spelt out
    in the competition's language), train/test split by sentence, each table zipped as MLE-bench prepares it."""
    import zipfile

    from num2words import num2words

    lang = "ru" if "russian" in c.id else "en"
    words = ["кот", "сидел", "на", "окне", "в", "году"] if lang == "ru" else ["the", "cat", "sat", "on", "a", "mat"]
    rows = []
    for sentence in range(sentences):
        for token in range(int(rng.integers(4, 9))):
            draw = rng.random()
            if draw < 0.2:
                number = int(rng.integers(0, 2000))
                before, after, kind = str(number), num2words(number, lang=lang), "CARDINAL"
            elif draw < 0.3:
                before, after, kind = "NASA", "n a s a", "LETTERS"
            else:
                before = str(rng.choice(words))
                after, kind = before, "PLAIN"
            rows.append((sentence, token, kind, before, after))
    frame = pl.DataFrame(rows, schema=["sentence_id", "token_id", "class", "before", "after"], orient="row")
    cut = int(sentences * 0.8)
    train, test = frame.filter(pl.col("sentence_id") < cut), frame.filter(pl.col("sentence_id") >= cut)
    test = test.with_columns(pl.col("sentence_id") - cut)  # prepare.py numbers each split's sentences from 0
    answers = test.select(pl.format("{}_{}", "sentence_id", "token_id").alias("id"), "after")
    tables = {c.files.train: train, c.files.test: test.select("sentence_id", "token_id", "before"),
              c.files.sample_submission: answers.with_columns(test["before"].alias("after"))}
    for name, table in tables.items():
        with zipfile.ZipFile(public / name, "w") as archive:
            archive.writestr(name.removesuffix(".zip"), table.write_csv())
    answers.write_csv(private / c.files.answers)
    (public / "description.md").write_text(f"# {c.id}\n\n## Evaluation\n\n{c.grader}\n")
    return public


def _media_file(kind: str, label: int, rng: np.random.Generator) -> bytes:
    """A small image (a shape that depends on the label) or a short sound (a tone whose pitch does), as file bytes."""
    import io

    if kind == "image":
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (32, 32), tuple(int(v) for v in rng.integers(0, 120, 3)))
        pen = ImageDraw.Draw(image)
        x, y = (int(v) for v in rng.integers(4, 12, 2))
        box = [x, y, x + 14 + label % 3, y + 14 + label % 3]
        (pen.ellipse if label % 2 else pen.rectangle)(box, fill=(230, 230, 230))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    import soundfile

    rate = 2000
    t = np.arange(rate // 2) / rate
    wave = 0.5 * np.sin(2 * np.pi * (200 + 500 * label) * t) + rng.normal(scale=0.05, size=t.size)
    buffer = io.BytesIO()
    soundfile.write(buffer, wave.astype(np.float32), rate, format="AIFF", subtype="PCM_16")
    return buffer.getvalue()


def birds_replica(public: Path, private: Path, c, rng: np.random.Generator, *, n: int, m: int) -> Path:
    """mlsp-2013-birds' layout as its prepare.py writes it: wav recordings named by rec_id2filename.txt, the labels
    file (species ids per rec_id, `?` for a test one, nothing for a silent one), the species list, CVfolds_2.txt,
    a long sample submission (Id = rec_id*100 + species) and long answers. Each species sings at its own pitch."""
    import soundfile

    species = ["BRCR", "PAWR", "PSFL"]
    essential = public / "essential_data"
    (essential / "src_wavs").mkdir(parents=True)
    present = rng.uniform(size=(n + m, len(species))) < 0.35
    test = set(rng.choice(n + m, m, replace=False).tolist())
    names = [f"PC{i % 13 + 1}_2009{i % 12 + 1:02d}13_0{i:05d}_0010" for i in range(n + m)]
    rate = 4000
    t = np.arange(rate // 2) / rate
    for i, name in enumerate(names):
        wave = rng.normal(scale=0.05, size=t.size)
        for j in np.flatnonzero(present[i]):
            wave += 0.4 * np.sin(2 * np.pi * (300 + 600 * j) * t)
        soundfile.write(essential / "src_wavs" / f"{name}.wav", wave.astype(np.float32), rate, subtype="PCM_16")
    lines = ["rec_id,[labels]"]
    for i in range(n + m):
        labels = ",".join(str(j) for j in np.flatnonzero(present[i]))
        lines.append(f"{i},?" if i in test else (f"{i},{labels}" if labels else f"{i}"))
    (essential / "rec_labels_test_hidden.txt").write_text("\n".join(lines) + "\n")
    pl.DataFrame({"rec_id": range(n + m), "filename": names}).write_csv(essential / "rec_id2filename.txt")
    pl.DataFrame({"rec_id": range(n + m), "fold": [int(i in test) for i in range(n + m)]}).write_csv(
        essential / "CVfolds_2.txt")
    (essential / "species_list.txt").write_text("class_id,code,species\n0,BRCR,Brown Creeper\n1,PAWR,Pacific Wren\n"
                                                "2,PSFL,Pacific-slope Flycatcher\n")
    cells = [(i * 100 + j, int(present[i, j])) for i in sorted(test) for j in range(len(species))]
    pl.DataFrame({"Id": [k for k, _ in cells], "Probability": 0}).write_csv(public / c.files.sample_submission)
    pl.DataFrame({"Id": [k for k, _ in cells], "Probability": [v for _, v in cells]}).write_csv(
        private / c.files.answers)
    (public / "description.md").write_text(f"# {c.id}\n\n## Evaluation\n\n{c.grader}\n")
    return public


def page(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A small scanned page, as uint8 grey levels: the clean one (dark strokes of text on white) and the dirty one
    (the same strokes under a smooth stain and a few blots, with sensor noise)."""
    height, width = int(rng.integers(20, 29)), int(rng.integers(30, 41))
    clean = np.full((height, width), 255.0)
    for top in range(3, height - 4, 6):
        for left in range(2, width - 6, int(rng.integers(7, 11))):
            clean[top:top + int(rng.integers(2, 4)), left:left + int(rng.integers(3, 7))] = rng.uniform(10, 60)
    rows, cols = np.mgrid[0:height, 0:width]
    stain = 255 - rng.uniform(40, 110) * np.exp(-(((rows - rng.uniform(0, height)) / height) ** 2
                                                   + ((cols - rng.uniform(0, width)) / width) ** 2) * rng.uniform(2, 6))
    dirty = np.minimum(clean, stain) + rng.normal(scale=6, size=clean.shape)
    return clean.astype(np.uint8), np.clip(dirty, 0, 255).astype(np.uint8)


def denoising_replica(public: Path, private: Path, c, rng: np.random.Generator, *, n: int, m: int) -> Path:
    """denoising-dirty-documents' layout as its prepare.py writes it: train/ and train_cleaned/ png pairs and test/
    pngs named by number, a sample submission of every test pixel (`<stem>_<row>_<col>`, value 1) and the answers
    (the clean test pixels / 255, written as its `to_df` writes them)."""
    from PIL import Image

    cells = {"id": [], "value": []}
    for i in range(n + m):
        clean, dirty = page(rng)
        stem = str(2 + 3 * i)
        folder = "train" if i < n else "test"
        for name, pixels in ((folder, dirty), *((("train_cleaned", clean),) if i < n else ())):
            (public / name).mkdir(exist_ok=True)
            Image.fromarray(pixels).save(public / name / f"{stem}.png")
        if i >= n:
            truth = np.asarray(Image.open(public / "test" / f"{stem}.png").convert("L")) * 0 + clean / 255.0
            for row in range(truth.shape[0]):
                for col in range(truth.shape[1]):
                    cells["id"].append(f"{stem}_{row + 1}_{col + 1}")
                    cells["value"].append(float(truth[row, col]))
    answers = pl.DataFrame(cells)
    answers.write_csv(private / c.files.answers)
    answers.with_columns(pl.lit(1).alias("value")).write_csv(public / c.files.sample_submission)
    (public / "description.md").write_text(f"# {c.id}\n\n## Evaluation\n\n{c.grader}\n")
    return public


def media_replica(public: Path, private: Path, c, rng: np.random.Generator, *, n: int, m: int) -> Path:
    """An image or audio competition's prepared layout: its tables, its files (named as MLE-bench names them, in
    folders or zipped as it ships them, images in the format the pattern names) and its private answers."""
    import zipfile

    from PIL import Image

    layout = c.media
    if layout.label_lists:
        return birds_replica(public, private, c, rng, n=n, m=m)
    if layout.target:  # pages: a few, since every pixel is a row
        return denoising_replica(public, private, c, rng, n=max(8, n // 10), m=max(3, m // 10))
    classes = c.one_hot or (c.targets if c.output == "class_proba" else
                            (list(range(5)) if c.metric == "qwk" else [0, 1]))
    labels = np.arange(n + m) % len(classes)
    rng.shuffle(labels)
    suffix = ".jpg" if layout.kind == "image" else ".aif"
    if layout.label_from_name:  # dogs-vs-cats, whale: train rows only in the file names
        if layout.kind == "image":
            names = [f"{'dog' if y else 'cat'}.{i}.jpg" for i, y in enumerate(labels[:n])]
            test_ids = list(range(1, m + 1))
        else:
            names = [f"20090328_0{i:05d}_010s3ms_TRAIN{i}_{y}.aif" for i, y in enumerate(labels[:n])]
            test_ids = [f"20090330_0{i:05d}_020s5ms_Test{i}.aif" for i in range(m)]
        ids: list = names + test_ids
    else:
        ids = [f"r{i:05x}" + (suffix if layout.train.endswith("{id}") else "") for i in range(n + m)]
    archives = {folder: zipfile.ZipFile(public / archive, "w") for archive, folder in layout.archives.items()}
    for i, (key, label) in enumerate(zip(ids, labels, strict=True)):
        rel = (layout.train if i < n else layout.test).format(id=key)
        data = _media_file(layout.kind, int(label), rng)
        if rel.endswith((".jpg", ".tif")):
            import io

            buffer = io.BytesIO()
            Image.open(io.BytesIO(data)).save(buffer, format="JPEG" if rel.endswith(".jpg") else "TIFF")
            data = buffer.getvalue()
        folder = rel.split("/")[0]
        if folder in archives:  # the whale's archives keep their folder, aerial-cactus's do not
            archives[folder].writestr(rel if layout.kind == "audio" else rel.split("/", 1)[1], data)
        else:
            (public / rel).parent.mkdir(parents=True, exist_ok=True)
            (public / rel).write_bytes(data)
    for archive in archives.values():
        archive.close()
    target = c.label_column if c.output == "class_proba" else c.targets[0]
    values = [classes[y] for y in labels]
    frame = pl.DataFrame({c.id_column: [str(k) for k in ids]})
    if c.id == "siim-isic-melanoma-classification":  # patient metadata beside each image
        frame = frame.with_columns(pl.Series("patient_id", [f"IP_{i % 7}" for i in range(n + m)]),
                                   pl.Series("sex", ["male", "female"] * ((n + m) // 2) + ["male"] * ((n + m) % 2)),
                                   pl.Series("age_approx", (rng.integers(2, 9, n + m) * 10).astype(float)))
    if c.one_hot or c.output == "multilabel":  # one 0/1 column per target: one-hot (plant) or several labels (ranzcr)
        columns = c.one_hot or c.targets
        flips = rng.uniform(size=(n + m, len(columns))) < (0.0 if c.one_hot else 0.1)
        truth = {k: ((labels == j % len(classes)) ^ flips[:, j]).astype(int) for j, k in enumerate(columns)}
        frame = frame.with_columns(pl.Series("PatientID", [f"p{i % 9}" for i in range(n + m)])) \
            if c.output == "multilabel" else frame
        frame[:n].with_columns(*[pl.Series(k, v[:n]) for k, v in truth.items()]).write_csv(public / c.files.train)
        if c.files.test:
            frame[n:].write_csv(public / c.files.test)
        keys = frame[n:][c.id_column]
        pl.DataFrame({c.id_column: keys, **{k: [0.5] * m for k in columns}}).write_csv(public / c.files.sample_submission)
        pl.DataFrame({c.id_column: keys, **{k: v[n:] for k, v in truth.items()}}).write_csv(private / c.files.answers)
        (public / "description.md").write_text(f"# {c.id}\n\n## Evaluation\n\n{c.grader}\n")
        return public
    if c.files.train:
        frame[:n].with_columns(pl.Series(target, values[:n])).write_csv(public / c.files.train)
    if c.files.test:
        frame[n:].write_csv(public / c.files.test)
    test_keys = frame[n:][c.id_column] if not isinstance(ids[-1], int) else pl.Series(c.id_column, ids[n:])
    if c.output == "class_proba":
        sample = pl.DataFrame({c.id_column: test_keys, **{k: [1 / len(classes)] * m for k in classes}})
        answers = pl.DataFrame({c.id_column: test_keys, **{k: (labels[n:] == j).astype(int)
                                                          for j, k in enumerate(classes)}})
    else:
        sample = pl.DataFrame({c.id_column: test_keys, c.targets[0]: [0.5] * m})
        answers = pl.DataFrame({c.id_column: test_keys, c.targets[0]: values[n:]})
    sample.write_csv(public / c.files.sample_submission)
    answers.write_csv(private / c.files.answers)
    (public / "description.md").write_text(f"# {c.id}\n\n## Evaluation\n\n{c.grader}\n")
    return public


SUPPORTED = ["aerial-cactus-identification", "aptos2019-blindness-detection", "denoising-dirty-documents",
             "detecting-insults-in-social-commentary", "dog-breed-identification",
             "dogs-vs-cats-redux-kernels-edition", "google-quest-challenge", "histopathologic-cancer-detection",
             "jigsaw-toxic-comment-classification-challenge", "leaf-classification",
             "learning-agency-lab-automated-essay-scoring-2", "lmsys-chatbot-arena", "mlsp-2013-birds",
             "new-york-city-taxi-fare-prediction", "nomad2018-predict-transparent-conductors",
             "plant-pathology-2020-fgvc7", "random-acts-of-pizza", "ranzcr-clip-catheter-line-classification",
             "siim-isic-melanoma-classification", "spooky-author-identification",
             "tabular-playground-series-dec-2021", "tabular-playground-series-may-2022",
             "text-normalization-challenge-english-language", "text-normalization-challenge-russian-language",
             "the-icml-2013-whale-challenge-right-whale-redux", "us-patent-phrase-to-phrase-matching"]


def test_the_registry_holds_the_75_and_says_what_crew_takes_of_each(cli):
    from crew.workflows.competitions import competitions
    from crew.workflows.mlebench import listing

    known = competitions()
    assert len(known) == 75 and sum(c.lite for c in known.values()) == 22
    assert known["ventilator-pressure-prediction"].row_filter == "u_out == 0"
    assert known["jigsaw-toxic-comment-classification-challenge"].metric == "roc_auc_columns"
    rows = {r["competition"]: r["status"] for r in listing()}
    assert sorted(name for name, status in rows.items() if status.startswith("imports")) == SUPPORTED
    assert "image files laid out" in rows["plant-pathology-2021-fgvc8"] and "several targets" in rows[
        "osic-pulmonary-fibrosis-progression"] and "only the rows where u_out == 0" in rows[
        "ventilator-pressure-prediction"]
    result = cli("import-mlebench", "--list", "--lite")
    assert result.exit_code == 0 and "22 of 22 import and solve offline" in result.output


@pytest.mark.parametrize("competition", SUPPORTED)
def test_a_supported_competition_imports_as_the_registry_says(tmp_path, competition):
    from crew.workflows.competitions import competitions

    c = competitions()[competition]
    public = replica(tmp_path, competition)
    task = Task.load(import_mlebench(public, out=tmp_path / "task", private_dir=public.parent / "private"))
    assert (task.metric, task.id_column) == (c.metric, c.id_column)
    assert task.submission_file_columns() == c.submission_columns or task.target_type == "binary"
    answers = pl.read_csv(tmp_path / "task" / "grading" / "answers.csv")
    cells = len(task.target_columns) if task.submission else 1  # a long submission's answers: a row per cell
    assert answers.columns == (c.submission_columns if task.submission else [c.id_column, *task.target_columns])
    test = read_table(task.path(task.data.test))
    if task.image_target:  # a row per test pixel
        assert answers.height == task.pixel_keys(test).len() and test.height == 4
    else:
        assert answers.height == cells * test.height == (cells * 40 if c.sequence is None else answers.height)
    several = c.output in ("multilabel", "multi_output") or (c.one_hot and c.metric == "roc_auc_columns")
    assert task.target_columns == (c.targets or task.target_columns if several else [task.target])


def test_a_competition_crew_cannot_take_yet_is_refused_with_the_registrys_reason(tmp_path):
    public = replica(tmp_path, "tabular-playground-series-may-2022")
    with pytest.raises(CrewError, match="ventilator-pressure-prediction: its grader scores only the rows where u_out"):
        import_mlebench(public, out=tmp_path / "task", competition="ventilator-pressure-prediction")
    assert not (tmp_path / "task").exists()
    with pytest.raises(CrewError, match="not one of MLE-bench's competitions"):
        import_mlebench(public, out=tmp_path / "task", competition="no-such-competition")


@pytest.mark.e2e
@pytest.mark.parametrize("modality", ["tables or text", "images or sound"])
def test_every_supported_lite_competition_is_solved_offline_and_graded(tmp_path, modality):
    from crew.workflows.competitions import competitions
    from crew.workflows.solve import solve

    for competition in [c for c in SUPPORTED if competitions()[c].lite
                        and (competitions()[c].media is not None) == (modality == "images or sound")]:
        public = replica(tmp_path / "data", competition)
        path = import_mlebench(public, out=tmp_path / competition, private_dir=public.parent / "private")
        columns = len(Task.load(path).target_columns)
        media = Task.load(path).media is not None
        summary = solve(path, out=tmp_path / "runs" / competition,
                        wall_time=12 if columns == 1 else 3 * columns + 20 if media else 7 * columns + 6, workers=2)
        final = summary["final"]
        assert final["kind"] != "constant", competition  # a model, not the safety net
        if columns > 1:  # a model per column: its own run's, or the joint baseline's (for files, the joint network)
            assert [f["kind"] for f in final["targets"].values()].count("constant") == 0, final
        report = grade(Task.load(path), tmp_path / "runs" / competition / "submission.csv",
                       tmp_path / competition / "grading" / "answers.csv")
        assert report.valid_submission, (competition, report.error)
        if media:  # the kept model (one per column for several targets) predicts the test files as submitted
            from crew.tools.predictor import load_predictor, read_rows

            task = Task.load(path)
            test = read_rows(task.path(task.data.test))
            again = load_predictor(tmp_path / "runs" / competition).submission(test)
            if task.submission is not None and task.image_target is None:  # mlsp: a row per cell, as the file is
                file = pl.read_csv(tmp_path / "runs" / competition / "submission.csv").to_pandas()
                key, value = task.submission.key, task.submission.value
                assert list(again.columns) == [key, value] and len(again) == len(file), (competition, again.columns)
                mine, theirs = again.set_index(key)[value], file.set_index(key)[value]
                assert np.allclose(mine.loc[theirs.index].to_numpy(float), theirs.to_numpy(float), atol=1e-5)
                continue
            reason, submitted = task.read_submitted(pl.read_csv(tmp_path / "runs" / competition / "submission.csv"),
                                                    test[task.id_column].tolist() if task.id_column else [])
            assert reason is None, (competition, reason)
            submitted = submitted.to_pandas()
            numbers = [c for c in submitted.columns[1:] if submitted[c].dtype.kind == "f"]
            assert np.allclose(again[numbers].to_numpy(float), submitted[numbers].to_numpy(float), atol=1e-5), \
                competition


def test_a_competition_keyed_by_its_text_learns_from_the_key_and_submits_it(tmp_path):
    """detecting-insults keys rows by the comment itself: the comment is the key and the text feature, train's
    repeated comment is dropped with a note, and the sample is crew's key + prediction."""
    from crew.tools.profile import profile_task

    public = replica(tmp_path, "detecting-insults-in-social-commentary")
    assert pl.read_csv(public / "train.csv").height == 161
    task = Task.load(import_mlebench(public, out=tmp_path / "task", private_dir=public.parent / "private"))
    assert task.submission_columns() == ["Comment", "Insult"] and task.target_type == "binary"
    assert read_table(task.path(task.data.train)).height == 160  # type: ignore[union-attr]
    assert "1 train row(s) repeat a Comment" in task.description and "repeats the test column(s) Date" in \
        task.description
    profile = profile_task(task)
    assert "Comment" in profile.of_kind("text")


def test_an_unknown_competition_of_several_targets_imports_with_its_column_wise_metric(tmp_path):
    """A folder the registry does not know: the sample's columns are train columns, the description names a
    column-wise metric, so each column is a target."""
    public = tmp_path / "labels-game" / "prepared" / "public"
    public.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    train = pl.DataFrame({"id": range(100), "x": x[:100], "toxic": (x[:100] > 0).astype(int),
                          "rude": (x[:100] > 0.5).astype(int)})
    train.write_csv(public / "train.csv")
    pl.DataFrame({"id": range(100, 120), "x": x[100:]}).write_csv(public / "test.csv")
    pl.DataFrame({"id": range(100, 120), "toxic": [0.5] * 20, "rude": [0.5] * 20}).write_csv(
        public / "sample_submission.csv")
    (public / "description.md").write_text("## Evaluation\nSubmissions are scored on the mean column-wise ROC AUC.\n")
    task = Task.load(import_mlebench(public, out=tmp_path / "task"))
    assert (task.metric, task.targets, task.target_type) == ("roc_auc_columns", ["toxic", "rude"], "multilabel")
