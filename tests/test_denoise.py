"""Image in, image out (denoising-dirty-documents): an image target in the task format, per-pixel submissions and
grading, the experiment script and the reviewer's recomputation from the clean pages, and the critic's pricing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from crew import Task, TaskError, grade
from crew.roles.critic import Critic
from crew.tools.cost import CostModel, read_media_workload
from crew.tools.review import audit_pixels
from crew.workflows.media import DENOISE_LADDER, script_for
from crew.workflows.mlebench import import_mlebench

from .test_mlebench import replica

GiB = 1024**3


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """denoising-dirty-documents' layout, 16 train and 4 test pages of about 24 x 35, imported as a crew task."""
    root = tmp_path_factory.mktemp("pages")
    public = replica(root / "data", "denoising-dirty-documents")
    return import_mlebench(public, out=root / "task", private_dir=public.parent / "private")


def _rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_an_image_target_is_a_task_of_pixels(pages: Path) -> None:
    task = Task.load(pages)
    assert (task.image_target, task.image_source, task.target_type) == ("train_cleaned", "image", "image")
    assert task.submission_columns() == ["id", "value"] and "one row per test pixel" in task.summary()["submission"]
    test = pl.read_parquet(task.path(task.data.test))
    keys = task.pixel_keys(test)
    assert keys.len() == pl.read_csv(task.path(task.data.sample_submission)).height
    assert keys[0] == f"{test['id'][0]}_1_1"


@pytest.mark.parametrize(("old", "new", "error"), [
    ("metric: rmse", "metric: accuracy", "accuracy does not score an image's pixels"),
    ("format: '{id}_{row}_{col}'", "format: '{id}_{row}'", "must name the image"),
    ("  image: image\n", "", "is an image, but no other column is"),
])
def test_a_wrong_image_target_task_names_the_field(pages: Path, tmp_path: Path, old: str, new: str,
                                                   error: str) -> None:
    import shutil

    shutil.copytree(pages.parent, tmp_path / "t")
    path = tmp_path / "t" / "task.yaml"
    assert old in path.read_text()
    _rewrite(path, old, new)
    with pytest.raises(TaskError, match=error):
        Task.load(path)


def test_a_sample_that_misses_pixels_is_refused(pages: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(pages.parent, tmp_path / "t")
    sample = tmp_path / "t" / "data" / "sampleSubmission.csv"
    pl.read_csv(sample)[1:].write_csv(sample)
    with pytest.raises(TaskError, match="rows but the test images have"):
        Task.load(tmp_path / "t" / "task.yaml")


def test_per_pixel_grading_matches_by_key_and_names_what_is_wrong(pages: Path, tmp_path: Path) -> None:
    task = Task.load(pages)
    answers = pages.parent / "grading" / "answers.csv"
    truth = pl.read_csv(answers)
    guess = truth.with_columns((pl.col("value") * 0.5 + 0.25).alias("value"))
    guess.write_csv(tmp_path / "ordered.csv")
    guess.sample(fraction=1.0, shuffle=True, seed=1).write_csv(tmp_path / "shuffled.csv")
    ordered = grade(task, tmp_path / "ordered.csv", answers)
    assert ordered.valid_submission and ordered.score == pytest.approx(
        float(((truth["value"] * 0.5 - 0.25) ** 2).mean() ** 0.5))
    assert grade(task, tmp_path / "shuffled.csv", answers).score == pytest.approx(ordered.score)
    guess[1:].write_csv(tmp_path / "short.csv")
    assert "expected" in grade(task, tmp_path / "short.csv", answers).error
    guess.with_columns(pl.col("id").str.replace(r"_1$", "_999")).write_csv(tmp_path / "odd.csv")
    assert "name no test pixel" in grade(task, tmp_path / "odd.csv", answers).error


def _run_script(task: Task, config: dict, workdir: Path) -> None:
    workdir.mkdir(parents=True)
    (workdir / "code.py").write_text(script_for(task, config))
    proc = subprocess.run([sys.executable, "code.py"], cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CREW_DATA": str(task.root), "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_reviewer_recomputes_the_score_from_the_clean_pages(pages: Path, tmp_path: Path) -> None:
    task = Task.load(pages)
    workdir = tmp_path / "exp"
    _run_script(task, {**dict(DENOISE_LADDER[0][1]), "sample": 20000, "estimators": 60}, workdir)
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["cv"] < 0.5 * metrics["input_score"]  # much cleaner than the dirty pages
    review = audit_pixels(task, {"reason": "ok", "workdir": str(workdir)})
    assert not review.failures and review.score == pytest.approx(metrics["cv"], rel=1e-4)
    (workdir / "metrics.json").write_text(json.dumps({**metrics, "cv": metrics["cv"] / 2}))
    assert any("reports" in f for f in audit_pixels(task, {"reason": "ok", "workdir": str(workdir)}).failures)
    (workdir / "metrics.json").write_text(json.dumps(metrics))
    predictions = pl.read_csv(workdir / "predictions.csv")
    predictions[:-1].write_csv(workdir / "predictions.csv")
    review = audit_pixels(task, {"reason": "ok", "workdir": str(workdir)})
    assert any(f.startswith("predictions.csv has") for f in review.failures)


def test_the_critic_prices_pages_and_cuts_the_denoisers_epochs(pages: Path) -> None:
    task = Task.load(pages)
    code = script_for(task, {**dict(DENOISE_LADDER[1][1]), "page_side": 480, "epochs": 400})
    work = read_media_workload(code, rows=115, test_rows=29, threads=2)
    assert (work.deep, work.crops, work.crop, work.image_size) == ("denoiser", 512, 48, 480)
    slow = CostModel().estimate(work)
    assert slow.seconds > 10 * CostModel().estimate(work.model_copy(update={"epochs": 20})).seconds
    assert "pages of about 480x480" in slow.basis
    pixels = read_media_workload(script_for(task, {**dict(DENOISE_LADDER[0][1]), "page_side": 480}), rows=115,
                                 test_rows=29, threads=2)
    assert pixels.deep == "pixels" and CostModel().estimate(pixels).seconds > 60  # every pixel of 144 pages
    critic = Critic()
    context = critic.context({"task": str(pages), "proposal": {"id": "x", "code": code, "insights": ["denoiser"],
                                                                "threads": 2},
                              "remaining": {"wall_time": 120.0, "experiment_time": 120.0, "memory": 8 * GiB,
                                            "gpus": 0}})
    context["estimate"] = slow
    verdict = critic.expert(context)
    assert verdict.verdict == "approve_variant" and set(verdict.changes) == {"epochs"}
    assert verdict.changes["epochs"] < 400


@pytest.mark.parametrize("fmt", ["{id}_{row}_{col}", "p{id}-{col}x{row}!", "{id:>03}_{row:02d}_{col}"])
def test_pixel_keys_are_the_format_applied_to_each_pixel(fmt: str) -> None:
    """Built column-wise for plain fields, pixel by pixel for format specs: either way, each key is what
    `fmt.format` gives, in row-major order, beside its clipped value."""
    import numpy as np

    from crew.tools import denoise

    pages = [np.linspace(-0.5, 1.5, 12, dtype=np.float32).reshape(3, 4), np.full((2, 5), 0.25, dtype=np.float32)]
    frame = denoise.pixel_frame([7, "b"], pages, task={"format": fmt, "key": "id", "value": "value"})
    expected = [fmt.format(id=i, row=r, col=c) for i, page in zip([7, "b"], pages, strict=True)
                for r in range(1, page.shape[0] + 1) for c in range(1, page.shape[1] + 1)]
    assert frame["id"].to_list() == expected and frame.height == 22
    assert frame["value"].to_list()[:2] == [0.0, 0.0] and frame["value"][11] == 1.0 and frame["value"][12] == 0.25
    assert denoise.pixel_frame([], [], task={"format": fmt, "key": "id", "value": "value"}).height == 0


@pytest.mark.parametrize("fmt", ["{id}_{row}_{col}", "{id}{row}{col}", "p{col}x{row}-{id}", "{id}_{row:03d}_{col}"])
@pytest.mark.parametrize("image_id", [3, "ab", -2])
def test_the_graders_pixel_keys_are_the_format_applied_and_typed_as_a_csv_reads_them(fmt: str, image_id: object
                                                                                       ) -> None:
    """The keys the reviewer and grading match pixels by: what `fmt.format` gives, row by row, as integers when
    every key is digits only (a csv reads them back so)."""
    from crew._long import LongSubmission, pixel_keys

    keys = pixel_keys(LongSubmission(key="id", value="v", format=fmt), image_id, 5, 7)
    expected = [fmt.format(id=image_id, row=r, col=c) for r in range(1, 6) for c in range(1, 8)]
    digits = all(k.lstrip("-").isdigit() for k in expected)
    assert keys.dtype == (pl.Int64 if digits else pl.Utf8)
    assert keys.to_list() == ([int(k) for k in expected] if digits else expected)
